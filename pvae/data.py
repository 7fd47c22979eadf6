"""Data: sklearn's bundled digits, MNIST-style IDX files and synthetic linear-Gaussian data, as
torch tensors."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import math
import os
import secrets
import struct
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pvae.validation import (
    check_bool,
    check_choice,
    check_data,
    check_finite_float,
    check_float_dtype,
    check_labels,
    check_num_levels,
    check_positive_float,
    check_positive_int,
    check_seed,
)

__all__ = [
    "DIGITS_LEVELS",
    "Split",
    "data_with_spectrum",
    "fetch",
    "from_levels",
    "linear_gaussian_data",
    "load_array",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "split",
    "write_idx",
]

logger = logging.getLogger(__name__)

DIGITS_LEVELS = 17  # sklearn's digits are 8x8 images with grey levels 0..16


@dataclass
class Split:
    """A train/held-out split. ``*_labels`` are class labels where the data has them."""

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    @property
    def data_dim(self) -> int:
        return self.train.shape[1]


def split(
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Shuffle ``data`` (and ``labels``) with ``seed`` and hold out ``test_fraction`` of it.

    :param torch.Tensor data: ``(n, d)``, finite.
    :param labels: integer class labels, shape ``(n,)``, or ``None``.
    :param float test_fraction: held-out share, in (0, 1) (default 0.2).
    :param int seed: seed of the shuffle, in ``[0, 2**32 − 1]`` (default 0).
    """
    check_data(data, "data")
    if not 0 < check_finite_float(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    check_seed(seed)
    num_points = data.shape[0]
    num_test = round(test_fraction * num_points)
    if num_test in (0, num_points):
        raise ValueError(
            f"test_fraction={test_fraction} of {num_points} points leaves an empty split"
        )
    if labels is not None:
        check_labels(labels, num_points)
    order = torch.randperm(num_points, generator=torch.Generator().manual_seed(seed))
    test, train = order[:num_test], order[num_test:]
    return Split(
        train=data[train],
        test=data[test],
        train_labels=None if labels is None else labels[train],
        test_labels=None if labels is None else labels[test],
    )


def from_levels(
    levels: torch.Tensor,
    num_levels: int,
    labels: torch.Tensor | None = None,
    *,
    binarize: bool = False,
    dequantize: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    r"""A train/held-out split of images given as integer grey levels ``0..num_levels − 1``.

    By default the levels are scaled to [0, 1] as :math:`x / (L - 1)`. Options:

    - ``dequantize=True``: uniform dequantization [1], :math:`(x + u) / L` with
      :math:`u \sim U[0, 1)` per pixel (drawn once, with ``seed``), so values lie in [0, 1) and a
      continuous density cannot grow without bound merely because the data are discrete;
    - ``binarize=True``: :math:`x / (L - 1) > 0.5` as 0/1 values, for Bernoulli likelihoods.

    :param torch.Tensor levels: float32 or float64 tensor ``(n, d)`` of whole numbers in
        ``[0, num_levels − 1]``.
    :param int num_levels: L, the number of grey levels (17 for sklearn's digits, 256 for 8-bit).
    :param labels: integer class labels, one per image, or ``None``.
    :param bool binarize: threshold at one half (default ``False``).
    :param bool dequantize: uniform dequantization (default ``False``).
    :param float test_fraction: held-out share (default 0.2).
    :param int seed: seed of the shuffle and of the dequantization noise, in
        ``[0, 2**32 − 1]``.

    [1] Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
        models. ICLR.
    """
    check_data(levels, "levels")
    check_float_dtype(levels.dtype, "levels.dtype", allow_none=False)
    num_levels = check_num_levels(num_levels)
    check_bool(binarize, "binarize")
    check_bool(dequantize, "dequantize")
    check_seed(seed)
    if binarize and dequantize:
        raise ValueError("binarize and dequantize exclude each other; choose one")
    bad = (levels != levels.round()) | (levels < 0) | (levels > num_levels - 1)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"levels must be whole numbers in [0, {num_levels - 1}] (num_levels={num_levels}), "
            f"but levels[{row}, {col}] = {levels[row, col].item():g}"
        )
    data = _scale_levels(
        levels,
        num_levels,
        binarize=binarize,
        dequantize=dequantize,
        generator=torch.Generator().manual_seed(seed),
    )
    return split(data, labels, test_fraction=test_fraction, seed=seed)


def _scale_levels(
    levels: torch.Tensor,
    num_levels: int,
    *,
    binarize: bool,
    dequantize: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """The scaling of :func:`from_levels` (see there), for levels already checked to be whole
    numbers in ``[0, num_levels − 1]``. Dequantization noise is drawn from ``generator``, so
    that a caller scaling several arrays can give each its own stream.

    Dequantized values lie in [0, 1) in the levels' dtype too: the sum ``L − 1 + u`` at the
    top level rounds up to ``L`` when ``u`` is within half a spacing of 1 (in float32 for
    L = 256, a draw in 2**17), which would put the pixel at exactly 1; such values are set to
    the largest number below 1 instead."""
    if dequantize:
        noise = torch.rand(levels.shape, generator=generator, dtype=levels.dtype)
        data = levels + noise
        # In place: for MNIST-sized data each temporary costs hundreds of megabytes.
        data /= num_levels
        below_one = torch.nextafter(data.new_ones(()), data.new_zeros(()))
        return data.clamp_(max=below_one)
    if binarize:
        return (levels / (num_levels - 1) > 0.5).to(levels.dtype)
    return levels / (num_levels - 1)


def load_digits(
    *,
    binarize: bool = False,
    dequantize: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Split:
    """sklearn's bundled handwritten digits (1,797 images of 8×8 = 64 pixels, no download),
    17 grey levels, split and scaled by :func:`from_levels` (see there for ``binarize``,
    ``dequantize``, ``test_fraction`` and ``seed``).

    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_float_dtype(dtype)
    bunch = sklearn_digits()
    levels = torch.as_tensor(bunch.data, dtype=dtype or torch.get_default_dtype())
    return from_levels(
        levels,
        DIGITS_LEVELS,
        torch.as_tensor(bunch.target),
        binarize=binarize,
        dequantize=dequantize,
        test_fraction=test_fraction,
        seed=seed,
    )


def load_array(
    path,
    num_levels: int = 256,
    *,
    binarize: bool = False,
    dequantize: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Split:
    """Images stored as a NumPy file of integer grey levels: ``.npy`` with one array of shape
    ``(n, ...)`` (each image flattened to a row), or ``.npz`` with that array under ``x`` (and
    optional labels under ``y``); split and scaled by :func:`from_levels`. Binary images are
    ``num_levels=2``.

    :param path: the ``.npy`` or ``.npz`` file.
    :param int num_levels: grey levels (default 256: 8-bit images).
    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    :raises FileNotFoundError: if ``path`` is not a file.
    :raises ValueError: naming the file, if it cannot be read, holds no ``x``, or holds images
        that are not a non-empty numeric ``(n, ...)`` array or labels that are not integers,
        one per image; and as :func:`from_levels` does, naming the first bad pixel.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist (or is not a file)")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"data file must be .npy or .npz, got {str(path)!r}")
    num_levels = check_num_levels(num_levels)
    check_float_dtype(dtype)
    labels = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive:
                    raise ValueError(
                        f"{str(path)!r} has no array 'x' (it has {sorted(archive.files)})"
                    )
                array = archive["x"]
                labels = archive["y"] if "y" in archive else None
        else:
            array = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"data file {str(path)!r} could not be read: {error}") from error
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"data in {str(path)!r} must be numeric grey levels (bool, integer or float), got "
            f"dtype {array.dtype}"
        )
    if array.ndim < 2 or array.size == 0:
        raise ValueError(
            f"data in {str(path)!r} must be a non-empty (n, ...) array of images, "
            f"got shape {array.shape}"
        )
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (len(array),):
            raise ValueError(
                f"labels 'y' in {str(path)!r} must be integer classes, one per image, shape "
                f"({len(array)},), got shape {labels.shape} of {labels.dtype}"
            )
        labels = torch.from_numpy(labels.astype(np.int64))
    levels = torch.as_tensor(
        array.reshape(len(array), -1), dtype=dtype or torch.get_default_dtype()
    )
    return from_levels(
        levels,
        num_levels,
        labels,
        binarize=binarize,
        dequantize=dequantize,
        test_fraction=test_fraction,
        seed=seed,
    )


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
_CHUNK_BYTES = 1 << 20


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
    _write_atomically(path, [content])
    return path


def _write_atomically(path: Path, chunks, *, md5: str | None = None, source: str = "") -> str:
    """Write the byte strings ``chunks`` to ``path`` through a temporary file in the same
    directory (fsync, then :func:`os.replace`), so ``path`` is either absent, as before, or
    complete. With ``md5``, a mismatch removes the temporary file and raises, naming ``source``.

    :returns: the md5 hex digest of what was written.
    """
    digest = hashlib.md5(usedforsecurity=False)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.part")
    # os.open with mode 0o666 lets the umask decide the final permissions, as for open(path,
    # "wb"); tempfile would leave every file readable by its owner only.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        if md5 is not None and digest.hexdigest() != md5:
            raise ValueError(
                f"md5 mismatch for {source or str(path)!r}: expected {md5}, got "
                f"{digest.hexdigest()}; the download was discarded"
            )
        os.replace(temporary, path)
    except BaseException:
        # Also on KeyboardInterrupt: a partial file must never be left behind.
        temporary.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5_argument(md5, name: str) -> str | None:
    if md5 is None:
        return None
    if (
        not isinstance(md5, str)
        or len(md5) != 32
        or any(c not in "0123456789abcdef" for c in md5.lower())
    ):
        raise ValueError(f"{name} must be an md5 digest of 32 hex digits or None, got {md5!r}")
    return md5.lower()


def _is_url(source) -> bool:
    return isinstance(source, str) and "://" in source


def _download_chunks(url: str, response):
    """Yield the body of ``response`` and check its length against Content-Length, so a
    connection that closes early is an error rather than a short file."""
    expected = response.headers.get("Content-Length")
    received = 0
    while chunk := response.read(_CHUNK_BYTES):
        received += len(chunk)
        yield chunk
    if expected is not None and expected.isdigit() and received != int(expected):
        raise OSError(
            f"could not download {url!r}: received {received} bytes of the {expected} announced"
        )


def fetch(
    source: str | os.PathLike,
    *,
    md5: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """A local file for ``source``, downloaded first if it is a URL, with its md5 checked.

    A URL (``http://``, ``https://`` or ``file://``) is downloaded with :mod:`urllib` into
    ``cache_dir/<key>/<file name>``, where ``<key>`` is the first 16 hex digits of the URL's
    SHA-256 (so that, e.g., MNIST's and Fashion-MNIST's ``train-images-idx3-ubyte.gz`` do not
    overwrite each other). The download goes to a temporary file in that folder, is fsynced,
    checked, and only then renamed into place, so the cache never holds a partial or rejected
    file. A file already in the cache is used as it is if it has the requested md5 (or if no
    md5 is given: it was complete when it was renamed there); one with another md5 is downloaded
    again.

    :param source: a local path, or a URL.
    :param str md5: the expected md5 hex digest, or ``None`` (default) for no check.
    :param cache_dir: download folder (default ``~/.cache/pvae``; created if needed). Unused
        for a local path.
    :returns: the path of the local (or cached) file.
    :raises FileNotFoundError: if a local ``source`` does not exist.
    :raises ValueError: on an md5 mismatch, naming the file, the expected and the actual digest;
        on a URL of another scheme or without a file name.
    :raises OSError: naming the URL, if the download fails.
    """
    md5 = _check_md5_argument(md5, "md5")
    if not _is_url(source):
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"source must be a path or a URL string, got {type(source).__name__}")
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"file {str(path)!r} does not exist")
        if md5 is not None and (actual := _md5(path)) != md5:
            raise ValueError(f"md5 mismatch for {str(path)!r}: expected {md5}, got {actual}")
        return path

    parts = urllib.parse.urlsplit(source)
    if parts.scheme.lower() not in ("http", "https", "file"):
        raise ValueError(f"source URL must be http://, https:// or file://, got {source!r}")
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    # The name becomes a path in the cache: an encoded slash or '..' must not escape it.
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"source URL {source!r} does not end in a file name")
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = Path(cache_dir if cache_dir is not None else "~/.cache/pvae").expanduser() / key
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.is_file():
        if md5 is None or _md5(path) == md5:
            logger.debug("using cached %s for %s", path, source)
            return path
        logger.info("cached %s does not have md5 %s; downloading %s again", path, md5, source)
    logger.info("downloading %s to %s", source, path)
    try:
        with urllib.request.urlopen(source, timeout=60) as response:
            _write_atomically(path, _download_chunks(source, response), md5=md5, source=source)
    except (OSError, http.client.HTTPException) as error:
        # URLError is an OSError; IncompleteRead is not. Either way the message must say which
        # URL failed.
        if source in str(error):
            raise
        raise OSError(f"could not download {source!r}: {error}") from error
    return path


_MNIST_LEVELS = 256
_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# md5 of the published .gz files: MNIST as in torchvision.datasets.MNIST.resources, Fashion-MNIST
# as in the table of github.com/zalandoresearch/fashion-mnist's README.
_OFFICIAL_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


def _check_checksums(checksums) -> dict[str, str] | str | None:
    if checksums is None or checksums == "official":
        return checksums
    if not isinstance(checksums, dict):
        raise ValueError(
            f"checksums must be 'official', None or a dict file name -> md5, got {checksums!r}"
        )
    names = {stem + suffix for stem in _MNIST_FILES.values() for suffix in ("", ".gz")}
    for name, digest in checksums.items():
        if name not in names:
            raise ValueError(
                f"checksums has an entry for {name!r}, which is not one of the MNIST file "
                f"names {sorted(names)}"
            )
        _check_md5_argument(digest, f"checksums[{name!r}]")
    return {name: digest.lower() for name, digest in checksums.items()}


def _mnist_source(root, stem: str, checksums, kind: str, cache_dir) -> Path:
    """The local file for one of the four MNIST files under ``root``, fetched and checked."""
    if _is_url(root):
        candidates = [stem + ".gz"]
    else:
        folder = Path(root).expanduser()
        # The published .gz first: it is the one the official checksums cover.
        candidates = [n for n in (stem + ".gz", stem) if (folder / n).is_file()]
        if not candidates:
            raise FileNotFoundError(
                f"neither {stem + '.gz'!r} nor {stem!r} is in the MNIST folder {str(folder)!r}"
            )
    name = candidates[0]
    if checksums == "official":
        md5 = _OFFICIAL_MD5[kind].get(name)  # None for an uncompressed file: nothing published
    elif isinstance(checksums, dict):
        if name not in checksums:
            raise ValueError(
                f"checksums has no md5 for {name!r} (it has {sorted(checksums)}); add one, or "
                "pass checksums=None to load without checking"
            )
        md5 = checksums[name]
    else:
        md5 = None
    source = root.rstrip("/") + "/" + name if _is_url(root) else Path(root).expanduser() / name
    return fetch(source, md5=md5, cache_dir=cache_dir)


def _read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"MNIST images in {str(images_path)!r} must be a 3-D uint8 array (n, rows, cols), "
            f"got shape {images.shape} of {images.dtype}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"MNIST labels in {str(labels_path)!r} must be a 1-D uint8 array, got shape "
            f"{labels.shape} of {labels.dtype}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{str(images_path)!r} has {len(images)} images but {str(labels_path)!r} has "
            f"{len(labels)} labels"
        )
    if len(images) == 0 or images.shape[1] * images.shape[2] == 0:
        raise ValueError(f"{str(images_path)!r} holds no pixels: shape {images.shape}")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(
            f"labels in {str(labels_path)!r} must be classes 0..9, but label {bad[0]} is "
            f"{labels[bad[0]]} ({bad.size} labels out of range in all)"
        )
    return images, labels


def load_mnist(
    root: str | os.PathLike,
    *,
    kind: str = "mnist",
    binarize: bool = False,
    dequantize: bool = False,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    checksums: str | dict[str, str] | None = "official",
    cache_dir: str | os.PathLike | None = None,
) -> Split:
    r"""MNIST [1] or Fashion-MNIST [2] from the four standard IDX files, with the official
    training set (60,000 images) as ``train`` and the official test set (10,000) as ``test``,
    not a random re-split.

    ``root`` is a folder, or a base URL, holding ``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz``; a folder may hold them uncompressed instead (the same names
    without ``.gz``; where both are present the ``.gz`` is read). Files from a URL are
    downloaded into ``cache_dir`` by :func:`fetch` and reused from there. Mirrors at the time of
    writing: ``https://ossci-datasets.s3.amazonaws.com/mnist/`` (MNIST, used by torchvision) and
    ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/`` (Fashion-MNIST).

    Images are flattened to rows of ``rows × cols`` pixels (784 for the official files) and
    scaled as :func:`from_levels` scales 256 grey levels: :math:`x / 255` by default,
    ``dequantize=True`` for :math:`(x + u) / 256` with :math:`u \sim U[0, 1)` (one stream from
    ``seed``, training images first), ``binarize=True`` for :math:`x / 255 > 0.5`.

    :param root: folder or base URL (``http://``, ``https://`` or ``file://``) of the files.
    :param str kind: ``"mnist"`` (default) or ``"fashion-mnist"``; selects the official
        checksums.
    :param bool binarize: threshold at one half, for Bernoulli likelihoods (default False).
    :param bool dequantize: uniform dequantization (default False).
    :param int seed: seed of the dequantization noise, in ``[0, 2**32 − 1]`` (default 0).
    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    :param checksums: ``"official"`` (default): the published md5 digests of the four ``.gz``
        files of ``kind`` (uncompressed files in a folder are then not checked: no digests are
        published for them); a dict file name → md5 hex digest, which must have an entry for
        every file read, under the name read (``.gz`` or not); or ``None``: nothing is checked.
    :param cache_dir: download folder for a URL ``root`` (default ``~/.cache/pvae``).
    :returns: a :class:`Split` with ``train`` ``(60000, 784)``, ``test`` ``(10000, 784)`` and
        int64 ``train_labels``/``test_labels`` in 0..9.
    :raises FileNotFoundError: if a file is missing.
    :raises ValueError: on a bad argument, a checksum mismatch, a malformed IDX file, images
        that are not 3-D uint8 or labels that are not 1-D uint8 in 0..9, or image and label
        counts that differ.

    [1] LeCun, Y., Bottou, L., Bengio, Y. & Haffner, P. (1998). Gradient-based learning applied
        to document recognition. Proceedings of the IEEE 86(11), 2278–2324.
    [2] Xiao, H., Rasul, K. & Vollgraf, R. (2017). Fashion-MNIST: a novel image dataset for
        benchmarking machine learning algorithms. arXiv:1708.07747.
    """
    check_choice(kind, "kind", _OFFICIAL_MD5)
    check_bool(binarize, "binarize")
    check_bool(dequantize, "dequantize")
    if binarize and dequantize:
        raise ValueError("binarize and dequantize exclude each other; choose one")
    check_seed(seed)
    check_float_dtype(dtype)
    checksums = _check_checksums(checksums)
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder or a base URL, got {type(root).__name__}")
    if not _is_url(root) and not Path(root).expanduser().is_dir():
        raise FileNotFoundError(f"MNIST folder {str(root)!r} does not exist (or is not a folder)")

    paths = {
        role: _mnist_source(root, stem, checksums, kind, cache_dir)
        for role, stem in _MNIST_FILES.items()
    }
    train_images, train_labels = _read_mnist_pair(paths["train_images"], paths["train_labels"])
    test_images, test_labels = _read_mnist_pair(paths["test_images"], paths["test_labels"])
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"training images in {str(paths['train_images'])!r} are "
            f"{'x'.join(map(str, train_images.shape[1:]))} but test images in "
            f"{str(paths['test_images'])!r} are {'x'.join(map(str, test_images.shape[1:]))}"
        )

    dtype = dtype or torch.get_default_dtype()
    # One generator for both sets: the test images get noise of their own, not the training
    # images' first draws.
    generator = torch.Generator().manual_seed(seed)

    def scale(images: np.ndarray) -> torch.Tensor:
        levels = torch.from_numpy(images.reshape(len(images), -1)).to(dtype)
        return _scale_levels(
            levels,
            _MNIST_LEVELS,
            binarize=binarize,
            dequantize=dequantize,
            generator=generator,
        )

    return Split(
        train=scale(train_images),
        test=scale(test_images),
        train_labels=torch.from_numpy(train_labels.astype(np.int64)),
        test_labels=torch.from_numpy(test_labels.astype(np.int64)),
    )


def load_fashion_mnist(
    root: str | os.PathLike,
    *,
    binarize: bool = False,
    dequantize: bool = False,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    checksums: str | dict[str, str] | None = "official",
    cache_dir: str | os.PathLike | None = None,
) -> Split:
    """Fashion-MNIST [1]: :func:`load_mnist` with ``kind="fashion-mnist"`` (see there for the
    arguments). The ten classes are 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat,
    5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.

    [1] Xiao, H., Rasul, K. & Vollgraf, R. (2017). Fashion-MNIST: a novel image dataset for
        benchmarking machine learning algorithms. arXiv:1708.07747.
    """
    return load_mnist(
        root,
        kind="fashion-mnist",
        binarize=binarize,
        dequantize=dequantize,
        seed=seed,
        dtype=dtype,
        checksums=checksums,
        cache_dir=cache_dir,
    )


def linear_gaussian_data(
    num_points: int,
    data_dim: int,
    latent_dim: int,
    *,
    noise_variance: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype | None = None,
):
    r"""Data from a random linear-Gaussian model :math:`x = W z + b + \varepsilon`.

    ``W`` has standard-normal entries, ``b`` is standard normal,
    :math:`\varepsilon \sim \mathcal{N}(0, \text{noise\_variance}\, I)`.

    :param int seed: seed of the draws, in ``[0, 2**32 − 1]`` (default 0).
    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    :returns: ``(data, model)``: the ``(num_points, data_dim)`` tensor and the
        :class:`~pvae.models.LinearGaussian` that generated it (its ``log_prob`` is exact).
    """
    from pvae.models import LinearGaussian

    check_positive_int(num_points, "num_points")
    check_positive_int(data_dim, "data_dim")
    check_positive_int(latent_dim, "latent_dim")
    check_positive_float(noise_variance, "noise_variance")
    check_seed(seed)
    dtype = check_float_dtype(dtype) or torch.get_default_dtype()
    generator = torch.Generator().manual_seed(seed)
    model = LinearGaussian(data_dim, latent_dim, variance=noise_variance).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype))
        model.bias.copy_(torch.randn(data_dim, generator=generator, dtype=dtype))
    z = torch.randn(num_points, latent_dim, generator=generator, dtype=dtype)
    noise = torch.randn(num_points, data_dim, generator=generator, dtype=dtype)
    noise = noise * noise_variance**0.5
    return z @ model.weight.detach().T + model.bias.detach() + noise, model


def data_with_spectrum(
    eigenvalues,
    num_points: int,
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""``num_points`` points in :math:`d` = ``len(eigenvalues)`` dimensions whose sample
    covariance (``torch.cov(x.T, correction=0)``) has exactly the given eigenvalues, with random
    orthonormal eigenvectors, and whose mean is exactly 0.

    For the γ sweep of Dai et al.'s Proposition 2: the linear-Gaussian VAE with fixed γ keeps
    exactly the directions whose eigenvalue exceeds γ, so known eigenvalues give known counts.

    :param eigenvalues: d non-negative numbers.
    :param int num_points: n > d.
    :param int seed: seed of the draws, in ``[0, 2**32 − 1]`` (default 0).
    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    """
    dtype = check_float_dtype(dtype) or torch.get_default_dtype()
    try:
        eigenvalues = torch.as_tensor(eigenvalues, dtype=dtype)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"eigenvalues must be a non-empty 1-D sequence of numbers, got {eigenvalues!r}"
        ) from None
    if eigenvalues.ndim != 1 or len(eigenvalues) == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D sequence, got {eigenvalues!r}")
    if not bool(torch.isfinite(eigenvalues).all()) or bool((eigenvalues < 0).any()):
        raise ValueError(f"eigenvalues must be finite and >= 0, got {eigenvalues.tolist()}")
    data_dim = len(eigenvalues)
    if check_positive_int(num_points, "num_points") <= data_dim:
        raise ValueError(
            f"num_points must exceed the dimension {data_dim} (one more for the mean), "
            f"got {num_points}"
        )
    check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(num_points, data_dim, generator=generator, dtype=dtype)
    # Centred columns, orthonormalised: zero mean and identity (1/n)-covariance after scaling.
    white, _ = torch.linalg.qr(noise - noise.mean(0))
    rotation, _ = torch.linalg.qr(torch.randn(data_dim, data_dim, generator=generator, dtype=dtype))
    return num_points**0.5 * (white * eigenvalues.sqrt()) @ rotation.T
