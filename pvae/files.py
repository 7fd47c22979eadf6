"""Files written whole or not at all, and the plain values a checkpoint holds."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import numbers
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "FOLDER_LOCK",
    "TEMPORARY_EXTRA",
    "RunLocked",
    "atomic_write",
    "check_output_path",
    "folder_lock",
    "locking_folder",
    "plain",
    "run_lock",
    "save_figure",
    "write_arrays",
    "write_atomically",
    "write_text",
]


def plain(value, where: str):
    """``value`` as plain Python values that ``torch.load(weights_only=True)`` reads back (a
    checkpoint's config and history, a fit state's history); errors name ``where``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has a key {key!r} that is not a string")
        return {key: plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}); a checkpoint's config and history "
        "and a fit state hold plain values (str, int, float, bool, None, and lists and dicts "
        "of them)"
    )


@contextlib.contextmanager
def atomic_write(path) -> Iterator[BinaryIO]:
    """Write a file whole or not at all: a binary handle on a temporary file
    ``.<name>.<random hex>.part`` in the folder of ``path``, which is flushed, fsynced and
    renamed over ``path`` (:func:`os.replace`) when the ``with`` block ends. If the block
    raises, KeyboardInterrupt included, the temporary file is removed and ``path`` is left as
    it was (absent, or the previous file). The file's permissions follow the umask, as for
    ``open(path, "wb")``.

    :param path: the file to write; its folder must exist.
    :returns: (as the ``with`` target) the temporary file, open for binary writing.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    # os.open with mode 0o666 lets the umask decide the final permissions, as for open(path,
    # "wb"); tempfile would leave every file readable by its owner only.
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:  # named by the file asked for, not by its temporary
        extra = f" (with the {TEMPORARY_EXTRA} characters of its temporary)"
        raise _renamed(error, path, extra if error.errno == errno.ENAMETOOLONG else "") from None
    try:
        with open(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(temporary, path)
        except OSError as error:  # e.g. a folder at path
            raise _renamed(error, path, "") from None
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None:  # a write or fsync: a full disk, a file-size limit
            raise _renamed(error, path, "") from None
        raise
    except BaseException:
        # Also on KeyboardInterrupt: a partial file must never be left behind.
        temporary.unlink(missing_ok=True)
        raise


#: What :func:`atomic_write` adds to a file's name for its temporary: ``.`` + ``.`` + 16 hex
#: digits + ``.part``.
TEMPORARY_EXTRA = 23


def check_output_path(path, name: str, *, folder: bool = False) -> Path:
    """Check, before a run spends any time, that ``path`` can be written: a file (or, with
    ``folder``, a folder) whose existing ancestors are folders, and whose name, with the 23
    characters of :func:`atomic_write`'s temporary, fits the file system's limit. Errors name
    ``name`` (a flag, an argument) and the path.

    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises ValueError: on a folder where a file should be, a file where a folder should be
        (the path or an ancestor), or a name too long.
    """
    path = Path(path)
    if path.name in ("", ".", "..") and not folder:
        raise ValueError(f"{name} {str(path)!r} is a folder; name a file in it")
    if path.is_dir() and not folder:
        raise ValueError(f"{name} {str(path)!r} is a folder; name a file in it")
    if path.exists() and not path.is_dir() and folder:
        raise ValueError(f"{name} {str(path)!r} is a file; the results go into a folder")
    blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(
            f"{name} {str(path)!r} is under {str(blocker)!r}, which is a file, not a folder"
        )
    existing = next((p for p in path.parents if p.is_dir()), Path("."))
    limit = os.pathconf(existing, "PC_NAME_MAX")
    for part in path.parts if folder else path.parent.parts:
        if len(os.fsencode(part)) > limit:
            raise ValueError(f"{name} {str(path)!r}: the folder name {part[:40]!r}... is too long")
    if not folder and len(os.fsencode(path.name)) + TEMPORARY_EXTRA > limit:
        raise ValueError(
            f"{name} {str(path)!r}: the file name is {len(os.fsencode(path.name))} bytes; this "
            f"file system allows {limit - TEMPORARY_EXTRA} here ({limit} less the "
            f"{TEMPORARY_EXTRA} of the temporary file it is written to first)"
        )
    return path


def _renamed(error: OSError, path: Path, extra: str) -> OSError:
    """``error`` as the same kind of OS error, naming ``path`` alone."""
    return type(error)(error.errno, (error.strerror or str(error)) + extra, str(path))


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (:func:`atomic_write`). The
    rename replaces whatever entry ``path`` is, a symlink included, and never writes through
    it to the file it points to."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(text.encode())
    return path


def write_arrays(path, arrays: dict, *, compressed: bool = False) -> Path:
    """NumPy's ``.npz`` archive of ``arrays`` (name → array) at ``path``, whole or not at all
    (:func:`atomic_write`); ``compressed`` as :func:`numpy.savez_compressed`."""
    import numpy as np

    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


def save_figure(figure, path, **options) -> Path:
    """``figure.savefig`` to ``path`` whole or not at all, in the format of its suffix,
    replacing a symlink at ``path`` rather than writing through it; ``options`` go to
    ``savefig`` (e.g. ``dpi``)."""
    path = Path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lstrip(".") or "png", **options)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return path


def write_atomically(path: Path, chunks, *, md5: str | None = None, source: str = "") -> str:
    """Write the byte strings ``chunks`` to ``path`` by :func:`atomic_write`, so ``path`` is
    either absent, as before, or complete. With ``md5``, a mismatch discards what was written
    and raises, naming ``source``.

    :returns: the md5 hex digest of what was written.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with atomic_write(path) as handle:
        for chunk in chunks:
            digest.update(chunk)
            handle.write(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"md5 mismatch for {source or str(path)!r}: expected {md5}, got "
                f"{digest.hexdigest()}; the download was discarded"
            )
    return digest.hexdigest()


class RunLocked(RuntimeError):
    """Another live process holds the lock of a run's output (:func:`run_lock`)."""


@contextlib.contextmanager
def run_lock(path, *, names: tuple[str, ...] = ()) -> Iterator[Path]:
    """Hold the lock of the run writing ``path`` for the ``with`` block: an exclusive
    ``flock`` on ``<path>.lock`` (created beside it, holding the holder's pid), which the
    kernel releases when the process ends however it ends, so a killed run never leaves a
    stale lock. Once it holds the lock it removes the stray temporaries
    (``.<name>.<hex>.part``, :func:`atomic_write`) that a dead run left of ``path`` and of the
    sibling files ``names``: no live writer can own them.

    :param path: the run's main output (a checkpoint).
    :param names: other file names of the run in the same folder.
    :raises RunLocked: if another process holds the lock, naming its pid and the lock file.
    :returns: (as the ``with`` target) the lock file's path.
    """
    path = Path(path)
    patterns = [f".{name}.*.part" for name in (path.name, *names)]
    with _holding(path.with_name(path.name + ".lock"), path, path.parent, patterns) as lock:
        yield lock


#: The lock file of a results folder, inside it (:func:`folder_lock`).
FOLDER_LOCK = ".pvae.lock"


@contextlib.contextmanager
def folder_lock(folder) -> Iterator[Path]:
    """:func:`run_lock` for a run that writes a results folder (an experiment's ``--out``):
    the lock is the file :data:`FOLDER_LOCK` inside the folder, which must exist, and taking
    it removes the stray temporaries of every file in the folder.

    :raises RunLocked: if another process holds it.
    """
    folder = Path(folder)
    with _holding(folder / FOLDER_LOCK, folder, folder, [".*.part"]) as lock:
        yield lock


def locking_folder(function):
    """Decorate ``function(out_dir, ...)``, an experiment writing its results into the folder
    ``out_dir``, to run holding :func:`folder_lock` on it: a second run into the same folder
    is refused instead of mixing its tables and figures with the first one's. ``out_dir``
    must be a path (str or path-like) that is not a file."""

    @functools.wraps(function)
    def wrapper(out_dir, *args, **kwargs):
        if not isinstance(out_dir, str | os.PathLike):
            raise TypeError(f"out_dir must be a folder's path, got {type(out_dir).__name__}")
        folder = check_output_path(out_dir, "out_dir", folder=True)
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with folder_lock(folder):
                return function(out_dir, *args, **kwargs)
        except BaseException:
            # A call refused before it wrote anything leaves no folder it made behind.
            if created and [p.name for p in folder.iterdir()] == [FOLDER_LOCK]:
                (folder / FOLDER_LOCK).unlink()
                folder.rmdir()
            raise

    return wrapper


@contextlib.contextmanager
def _holding(lock: Path, path: Path, strays_in: Path, patterns: list[str]) -> Iterator[Path]:
    """Hold the flock on ``lock`` for the run writing ``path``, then remove the files
    matching ``patterns`` in ``strays_in``."""
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(
                f"another pvae run (pid {holder}) is writing {str(path)!r} (it holds "
                f"{str(lock)!r}); wait for it to end or choose another output"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        if strays_in.is_dir():
            for pattern in patterns:
                for stray in strays_in.glob(pattern):
                    stray.unlink(missing_ok=True)
        yield lock
    finally:
        os.close(descriptor)  # releases the flock; the file stays, harmless and reused
