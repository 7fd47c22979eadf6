"""The IDX file format of MNIST and Fashion-MNIST: reading and writing."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from pvae.files import write_atomically

__all__ = ["read_idx", "write_idx"]

# IDX type codes (LeCun et al.'s format) and the big-endian NumPy dtypes they stand for.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an array from an IDX file [1], raw or gzip-compressed.

    The format: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``k``, ``k``
    big-endian uint32 sizes, then the entries, big-endian, in C order. Compression is recognised
    by gzip's magic bytes ``1f 8b``, whatever the file is called (a raw IDX file starts with
    ``00``, so the two cannot be confused).

    :param path: the file.
    :returns: an array of the stored shape and type, in native byte order (a writable copy).
    :raises FileNotFoundError: if ``path`` is not a file.
    :raises ValueError: naming the file and the offending value, if the gzip stream is corrupt,
        the first two bytes are not zero, the type code is unknown, there are no dimensions, or
        the data are shorter (truncated) or longer (trailing bytes) than the sizes say.

    [1] LeCun, Y., Bottou, L., Bengio, Y. & Haffner, P. (1998). Gradient-based learning applied
        to document recognition. Proceedings of the IEEE 86(11). File format described at
        http://yann.lecun.com/exdb/mnist/.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist (or is not a file)")
    content = path.read_bytes()
    if content[:2] == _GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(
                f"IDX file {str(path)!r} starts like gzip (1f 8b) but is not a valid gzip "
                f"stream: {error}"
            ) from error
    if len(content) < 4:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: {len(content)} bytes, fewer than the 4 of "
            "the header's magic number"
        )
    if content[:2] != b"\x00\x00":
        raise ValueError(
            f"IDX file {str(path)!r} is not an IDX file: it must start with bytes 00 00, "
            f"got {content[:2].hex(' ')}"
        )
    code, num_dims = content[2], content[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in _IDX_DTYPES.items())
        raise ValueError(
            f"IDX file {str(path)!r} has unknown type code 0x{code:02X}; known: {known}"
        )
    if num_dims == 0:
        raise ValueError(f"IDX file {str(path)!r} declares 0 dimensions; it needs at least one")
    header_bytes = 4 + 4 * num_dims
    if len(content) < header_bytes:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated in its header: {num_dims} dimensions need "
            f"{header_bytes} header bytes, got {len(content)}"
        )
    shape = struct.unpack(f">{num_dims}I", content[4:header_bytes])
    dtype = _IDX_DTYPES[code]
    # Python integers: a product of uint32 sizes can overflow int64.
    expected = dtype.itemsize * math.prod(shape)
    actual = len(content) - header_bytes
    if actual < expected:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: shape {shape} of {dtype.name} needs "
            f"{expected} data bytes, got {actual}"
        )
    if actual > expected:
        raise ValueError(
            f"IDX file {str(path)!r} has {actual - expected} trailing bytes: shape {shape} of "
            f"{dtype.name} needs {expected} data bytes, got {actual}"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(shape)
    # astype copies: the result is writable (torch.from_numpy warns on a read-only buffer).
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array) -> Path:
    """Write ``array`` as an IDX file (see :func:`read_idx`), gzip-compressed if ``path`` ends
    in ``.gz``; the inverse of :func:`read_idx`. The file is written to a temporary file next to
    ``path`` and renamed, so a reader never sees half of it. Compression stores no time stamp,
    so the same array always gives the same bytes (and the same md5).

    :param path: the file to write (its directory must exist).
    :param array: array-like of dtype uint8, int8, int16, int32, float32 or float64 (any byte
        order), with 1 to 255 dimensions, each of size below :math:`2^{32}`.
    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises ValueError: on another dtype, no dimensions, or a size that IDX cannot store.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        supported = ", ".join(d.name for d in _IDX_CODES)
        raise ValueError(f"array has dtype {array.dtype}, which IDX cannot store; use {supported}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions for IDX, got shape {array.shape}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"array has shape {array.shape}; IDX sizes must be below 2**32")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, _IDX_CODES[native], array.ndim, *array.shape)
    content = header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    if path.name.endswith(".gz"):
        content = gzip.compress(content, mtime=0)
    write_atomically(path, [content])
    return path
