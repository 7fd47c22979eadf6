"""Ctrl-C while the ``pvae`` command starts: importing torch and Pyro takes a second or two,
before :func:`pvae.cli.main` can catch anything. Without this, a Ctrl-C there prints
Python's traceback (or, inside torch's import, an ImportError it leaves behind)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

__all__ = [
    "COMMANDS",
    "catch_interrupt_while_starting",
    "interrupted_while_starting",
    "record_interrupts",
    "recording_interrupts",
]

#: How the ``pvae`` command is started: its console script, and ``python -m pvae.cli``.
COMMANDS = ("pvae", "__main__.py")


def record_interrupts() -> list[int]:
    """Make SIGINT raise KeyboardInterrupt, as Python's own handler does, and also append the
    signal to the returned list: the list says a Ctrl-C came even where an import swallowed
    its KeyboardInterrupt and failed some other way."""
    interrupted: list[int] = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    return interrupted


@contextlib.contextmanager
def recording_interrupts():
    """For the block, record every SIGINT in the list it yields, then do what the handler
    before it does (Python's raises KeyboardInterrupt); restore that handler afterwards.

    A signal handled while Python runs a finalizer (a ``__del__``, a weakref callback) raises
    its KeyboardInterrupt there, and Python reports and ignores it; the list still has it, so
    a long loop can stop at its next safe point (``pvae train``: after the epoch's checkpoint).
    Outside the main thread, or where SIGINT is ignored, the block runs as it is and the list
    stays empty."""
    received: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield received
        return

    def on_sigint(signum, frame):
        received.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


#: The SIGINTs the ``pvae`` command received while it imported torch and Pyro.
_STARTING: list[int] = []


def interrupted_while_starting() -> bool:
    """Whether the ``pvae`` command received a Ctrl-C while it started
    (:func:`catch_interrupt_while_starting` defers it to here)."""
    return bool(_STARTING)


def catch_interrupt_while_starting(argv0: str | None = None) -> bool:
    """When this process is the ``pvae`` command (``argv0``, default ``sys.argv[0]``, names
    its console script or ``python -m pvae.cli``), a Ctrl-C while it imports is recorded, not
    raised (:func:`interrupted_while_starting`; :func:`pvae.cli.run` then ends with one line
    and status 130), and an uncaught KeyboardInterrupt, or any error raised after a Ctrl-C,
    ends the same way. In any other process (a notebook, a script of the user's) nothing
    changes.

    :returns: whether the hook was installed.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(argv0) not in COMMANDS or (
        argv0.endswith("__main__.py") and os.path.basename(os.path.dirname(argv0)) != "cli"
    ):
        return False
    previous = sys.excepthook
    interrupted = _STARTING

    def defer(signum, frame):
        # Raising here could land inside torch's C++ import code, where a KeyboardInterrupt
        # aborts the process (pybind11's error_already_set, std::terminate): record it, and
        # let pvae.cli.run end the command once the imports are done.
        interrupted.append(signum)

    signal.signal(signal.SIGINT, defer)

    def hook(kind, error, traceback) -> None:
        # A Ctrl-C inside an import can surface as another error with no trace of it (an
        # AttributeError of a half-imported numpy): the flag, not the chain, says so.
        cause, seen = error, set()
        while cause is not None and id(cause) not in seen and not interrupted:
            if isinstance(cause, KeyboardInterrupt):
                interrupted.append(signal.SIGINT)
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        if interrupted:
            sys.stderr.write("pvae: interrupted while starting; nothing was run\n")
            sys.stderr.flush()
            os._exit(130)  # what the command returns for Ctrl-C once it runs
        previous(kind, error, traceback)

    sys.excepthook = hook
    return True
