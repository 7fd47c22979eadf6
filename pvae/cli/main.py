"""The entry point of the ``pvae`` command."""

from __future__ import annotations

import errno
import logging
import signal
import sys

from pvae.cli.evaluate import evaluate_command
from pvae.cli.experiment import demo_command, experiment_command
from pvae.cli.impute import impute_command
from pvae.cli.parser import build_parser
from pvae.cli.train import train_command
from pvae.files import RunLocked
from pvae.startup import interrupted_while_starting, record_interrupts
from pvae.tasks import TasksFailed

__all__ = ["main", "run"]

#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


def _os_message(error: OSError) -> str:
    """An OS error as one line naming the path: ``[Errno 21] Is a directory: 'x'`` reads
    "Is a directory: 'x'", and a full disk "no space left on the device (the disk is full):
    'runs/model.pt'"."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason = "no space left on the device (the disk is full)"
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{reason}: {' -> '.join(repr(p) for p in paths)}" if paths else reason


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvae`` command: runs one command and turns its foreseeable
    errors into one line on stderr (``--debug`` shows the traceback instead). Exit status 2
    for bad input (a flag, a file, a setting, an optional extra not installed), 1 for a run
    that failed (a divergence, the disk, memory), 130 for Ctrl-C."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    commands = {
        "train": train_command,
        "evaluate": evaluate_command,
        "impute": impute_command,
        "demo": demo_command,
        "experiment": experiment_command,
    }
    name = " ".join(filter(None, (args.command, getattr(args, "experiment", None))))
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, RunLocked, ImportError) as error:
        # ImportError: an optional extra missing (--ray without Ray), its message the install.
        if args.debug:
            raise
        message = _os_message(error) if isinstance(error, OSError) and error.strerror else error
        print(f"pvae {name}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        if args.debug:
            raise
        print(f"pvae {name}: interrupted{'; ' + str(error) if str(error) else ''}", file=sys.stderr)
        return INTERRUPTED
    except TasksFailed as error:
        # Which tasks failed and with what settings, and where the finished ones are kept.
        if args.debug:
            raise
        print(f"pvae {name}: error: {error}", file=sys.stderr)
        return 1
    except (OSError, FloatingPointError, MemoryError, RuntimeError) as error:
        # The disk (full, read-only, a folder where a file should be), a divergence
        # (NonFiniteError), memory: the run failed, its message says where.
        if args.debug:
            raise
        if isinstance(error, OSError):
            message = _os_message(error)
        elif isinstance(error, MemoryError):
            message = f"out of memory{': ' + str(error) if str(error) else ''}"
        else:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"pvae {name}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 1


def run() -> int:
    """The ``pvae`` console command: :func:`main` on ``sys.argv``, and Ctrl-C at any moment
    one line with status 130. A Ctrl-C that an import swallowed and turned into another error
    still reads as an interruption; once the command is done, Ctrl-C no longer cuts the
    interpreter's exit short (its files are written by then). In-process callers (tests, a
    notebook) use :func:`main`, which leaves the SIGINT handler as it was."""
    interrupted = record_interrupts()
    if interrupted_while_starting():  # a Ctrl-C while the imports ran, deferred to here
        print("pvae: interrupted while starting; nothing was run", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return INTERRUPTED
    try:
        return main()
    except BaseException as error:
        if not interrupted or isinstance(error, SystemExit):
            raise
        print("pvae: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
