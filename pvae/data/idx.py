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
from pvae.validation import check_positive_int

__all__ = ["MAX_IDX_BYTES", "read_idx", "write_idx"]

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


# NumPy's limit on an array's dimensions (NPY_MAXDIMS: 32 before NumPy 2, 64 since).
_MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32

#: The most data bytes :func:`read_idx` reads by default (1 GiB; MNIST's training images are
#: 47 MB): a header or a gzip stream asking for more is refused before it is read.
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | os.PathLike, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an array from an IDX file [1], raw or gzip-compressed.

    The format: two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions ``k``, ``k``
    big-endian uint32 sizes, then the entries, big-endian, in C order. Compression is recognised
    by gzip's magic bytes ``1f 8b``, whatever the file is called (a raw IDX file starts with
    ``00``, so the two cannot be confused). The file is read as a stream: the header first,
    then exactly the data bytes it declares and one more (to find trailing bytes), so a gzip
    stream that expands beyond what its header says (a gzip bomb) is never decompressed whole.

    :param path: the file.
    :param int max_bytes: refuse a header declaring more data bytes than this (default
        :data:`MAX_IDX_BYTES`).
    :returns: an array of the stored shape and type, in native byte order (a writable copy).
    :raises FileNotFoundError: if ``path`` is not a file.
    :raises ValueError: naming the file and the offending value, if the gzip stream is corrupt,
        the first two bytes are not zero, the type code is unknown, there are no dimensions,
        the declared size exceeds ``max_bytes``, or the data are shorter (truncated) or longer
        (trailing bytes) than the sizes say.

    [1] LeCun, Y., Bottou, L., Bengio, Y. & Haffner, P. (1998). Gradient-based learning applied
        to document recognition. Proceedings of the IEEE 86(11). File format described at
        http://yann.lecun.com/exdb/mnist/.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist (or is not a file)")
    check_positive_int(max_bytes, "max_bytes")
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open if compressed else open)(path, "rb") as stream:
            return _read_idx_stream(stream, str(path), max_bytes)
    except (OSError, EOFError, zlib.error) as error:
        if not compressed:
            raise
        raise ValueError(
            f"IDX file {str(path)!r} starts like gzip (1f 8b) but is not a valid gzip "
            f"stream: {error}"
        ) from error


def _read_up_to(stream, size: int, chunk: int = 1 << 20) -> bytearray:
    """At most ``size`` bytes of ``stream``, read in chunks: memory grows with what the file
    holds, never with what its header claims."""
    content = bytearray()
    while len(content) < size and (part := stream.read(min(chunk, size - len(content)))):
        content += part
    return content


def _read_idx_stream(stream, name: str, max_bytes: int) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4:
        raise ValueError(
            f"IDX file {name!r} is truncated: {len(head)} bytes, fewer than the 4 of "
            "the header's magic number"
        )
    if head[:2] != b"\x00\x00":
        raise ValueError(
            f"IDX file {name!r} is not an IDX file: it must start with bytes 00 00, "
            f"got {head[:2].hex(' ')}"
        )
    code, num_dims = head[2], head[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in _IDX_DTYPES.items())
        raise ValueError(f"IDX file {name!r} has unknown type code 0x{code:02X}; known: {known}")
    if num_dims == 0:
        raise ValueError(f"IDX file {name!r} declares 0 dimensions; it needs at least one")
    if num_dims > _MAX_DIMS:
        raise ValueError(
            f"IDX file {name!r} declares {num_dims} dimensions; NumPy arrays have at most "
            f"{_MAX_DIMS}"
        )
    sizes = stream.read(4 * num_dims)
    if len(sizes) < 4 * num_dims:
        raise ValueError(
            f"IDX file {name!r} is truncated in its header: {num_dims} dimensions need "
            f"{4 + 4 * num_dims} header bytes, got {4 + len(sizes)}"
        )
    shape = struct.unpack(f">{num_dims}I", sizes)
    dtype = _IDX_DTYPES[code]
    # Python integers: a product of uint32 sizes can overflow int64.
    expected = dtype.itemsize * math.prod(shape)
    if expected > max_bytes:
        raise ValueError(
            f"IDX file {name!r} declares shape {shape} of {dtype.name}, {expected} data bytes, "
            f"more than max_bytes = {max_bytes}; pass a larger max_bytes to read it"
        )
    content = _read_up_to(stream, expected)
    if len(content) < expected:
        raise ValueError(
            f"IDX file {name!r} is truncated: shape {shape} of {dtype.name} needs "
            f"{expected} data bytes, got {len(content)}"
        )
    if stream.read(1):
        rest = 1  # counted in chunks, never held, and at most max_bytes of them
        while rest <= max_bytes and (chunk := stream.read(1 << 20)):
            rest += len(chunk)
        if rest > max_bytes:
            raise ValueError(
                f"IDX file {name!r} has more than {max_bytes} trailing bytes: shape {shape} "
                f"of {dtype.name} needs {expected} data bytes"
            )
        raise ValueError(
            f"IDX file {name!r} has {rest} trailing bytes: shape {shape} of "
            f"{dtype.name} needs {expected} data bytes, got {expected + rest}"
        )
    array = np.frombuffer(content, dtype=dtype).reshape(shape)
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
