"""Images as grey levels: scaling, binarizing, dequantizing; sklearn's digits and user arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from pvae.data.split import Split, split
from pvae.validation import check_bool, check_data, check_float_dtype, check_num_levels, check_seed

__all__ = [
    "DIGITS_LEVELS",
    "dequantization_variance",
    "from_levels",
    "load_array",
    "load_digits",
    "scale_levels",
]

DIGITS_LEVELS = 17  # sklearn's digits are 8x8 images with grey levels 0..16


def dequantization_variance(num_levels: int) -> float:
    r"""The variance per pixel of uniform dequantization's noise on [0, 1):
    :math:`\operatorname{Var}(u / L) = 1 / (12 L^2)` for :math:`u \sim U[0, 1)` (2.9e-4 for
    the digits' 17 levels, 1.3e-6 for 256). A decoder whose variance at a point is below it
    reproduces that point's noise: it has memorised the point."""
    return 1 / (12 * check_num_levels(num_levels) ** 2)


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

    :param torch.Tensor levels: float32 or float64 tensor ``(n, d)`` (or ``(n, *shape)``: images
        keep their shape) of whole numbers in
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
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"levels must be whole numbers in [0, {num_levels - 1}] (num_levels={num_levels}), "
            f"but levels[{', '.join(map(str, index))}] = {levels[index].item():g}"
        )
    data = scale_levels(
        levels,
        num_levels,
        binarize=binarize,
        dequantize=dequantize,
        generator=torch.Generator().manual_seed(seed),
    )
    result = split(data, labels, test_fraction=test_fraction, seed=seed)
    if dequantize:
        result = dataclasses.replace(result, noise_variance=dequantization_variance(num_levels))
    return result


def scale_levels(
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
    images: bool = False,
) -> Split:
    """sklearn's bundled handwritten digits (1,797 images of 8×8 = 64 pixels, no download),
    17 grey levels, split and scaled by :func:`from_levels` (see there for ``binarize``,
    ``dequantize``, ``test_fraction`` and ``seed``).

    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    :param bool images: points as ``(1, 8, 8)`` images (for a convolutional pair) rather than
        rows of 64 pixels (default False); the same values, split and noise either way.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_float_dtype(dtype)
    check_bool(images, "images")
    bunch = sklearn_digits()
    levels = torch.as_tensor(bunch.data, dtype=dtype or torch.get_default_dtype())
    if images:
        levels = levels.reshape(-1, 1, 8, 8)
    return from_levels(
        levels,
        DIGITS_LEVELS,
        torch.as_tensor(bunch.target),
        binarize=binarize,
        dequantize=dequantize,
        test_fraction=test_fraction,
        seed=seed,
    )


#: The most bytes an array of a ``.npy``/``.npz`` data file may declare (4 GiB).
MAX_ARRAY_BYTES = 1 << 32


def _declared_bytes(stream, where: str) -> int | None:
    """The data bytes the ``.npy`` header at the start of ``stream`` declares (``None`` for
    an object array, whose data are a pickle)."""
    version = np.lib.format.read_magic(stream)
    read_header = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read_header is None:
        raise ValueError(f"{where} has .npy format version {version}, which pvae does not read")
    shape, _, dtype = read_header(stream)
    if dtype.hasobject:  # a pickle, not raw data: np.load(allow_pickle=False) refuses it
        return None
    return math.prod(shape) * dtype.itemsize


def _check_declared_sizes(path: Path) -> None:
    """Refuse a ``.npy`` file, or a member of an ``.npz`` archive, whose header declares other
    than the bytes it holds, or that holds more than :data:`MAX_ARRAY_BYTES`, before NumPy
    allocates anything: a crafted header, or a zip bomb (read from the archive's directory
    and the member's header, never decompressed whole)."""
    with contextlib.ExitStack() as stack:
        if path.suffix == ".npy":
            members = [(f"data file {str(path)!r}", path.stat().st_size, lambda: path.open("rb"))]
        else:
            archive = stack.enter_context(zipfile.ZipFile(path))
            members = [
                (
                    f"array {info.filename!r} of data file {str(path)!r}",
                    info.file_size,
                    lambda info=info: archive.open(info),
                )
                for info in archive.infolist()
            ]
        for where, size, opener in members:
            if size > MAX_ARRAY_BYTES:
                raise ValueError(
                    f"{where} expands to {size} bytes, more than the {MAX_ARRAY_BYTES} pvae reads"
                )
            with opener() as stream:
                declared = _declared_bytes(stream, where)
                held = size - stream.tell()
            if declared is not None and declared != held:
                raise ValueError(
                    f"{where} declares {declared} bytes of data but holds {held}: truncated, "
                    "padded or crafted, refused before reading"
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
        _check_declared_sizes(path)
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
        if labels.size and labels.min() < 0:
            first = int(np.argmax(labels < 0))
            raise ValueError(
                f"labels 'y' in {str(path)!r} must be classes 0, 1, ..., got y[{first}] = "
                f"{int(labels[first])}"
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
