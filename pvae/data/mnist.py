"""MNIST and Fashion-MNIST from their four IDX files."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from pvae.data.download import check_md5_argument, fetch, file_md5, is_url
from pvae.data.idx import read_idx
from pvae.data.images import dequantization_variance, scale_levels
from pvae.data.split import Split
from pvae.validation import check_bool, check_choice, check_float_dtype, check_seed

__all__ = ["load_fashion_mnist", "load_mnist"]

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

# md5 of the decompressed files, which a repack (e.g. Debian's dataset-fashion-mnist, whose .gz
# files are recompressed) leaves as they are. Fashion-MNIST: computed from Debian's package and
# equal to the digests published beside the .gz ones in several public repositories; MNIST:
# as published in several public repositories (train-images with its size, 47,040,016 bytes).
_OFFICIAL_CONTENT_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


def _content_md5(path: Path) -> str:
    """md5 of the file's contents, decompressed (streamed) if its name ends in ``.gz``."""
    digest = hashlib.md5(usedforsecurity=False)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{str(path)!r} cannot be decompressed: {error}") from error
    return digest.hexdigest()


def _check_official(path: Path, name: str, stem: str, kind: str) -> None:
    """Accept the published .gz, or any file whose decompressed contents are the official
    file's; refuse everything else, saying how to proceed."""
    published = _OFFICIAL_MD5[kind].get(name)
    if published is not None and file_md5(path) == published:
        return
    actual, expected = _content_md5(path), _OFFICIAL_CONTENT_MD5[kind][stem]
    if actual == expected:
        return
    packed = ""
    if published is not None:
        packed = f" (the .gz itself: expected {published}, got {file_md5(path)})"
    raise ValueError(
        f"{str(path)!r} does not hold the official {kind} {stem}: the md5 of its decompressed "
        f"contents is {actual}, expected {expected}{packed}. The file is damaged or from another "
        "data set: fetch it again, or pass checksums=None to load it unchecked (or a dict of "
        "the digests you expect)"
    )


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
        check_md5_argument(digest, f"checksums[{name!r}]")
    return {name: digest.lower() for name, digest in checksums.items()}


def _mnist_source(root, stem: str, checksums, kind: str, cache_dir) -> Path:
    """The local file for one of the four MNIST files under ``root``, fetched and checked."""
    if is_url(root):
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
    source = root.rstrip("/") + "/" + name if is_url(root) else Path(root).expanduser() / name
    if checksums == "official":
        path = fetch(source, cache_dir=cache_dir)
        try:
            _check_official(path, name, stem, kind)
        except ValueError:
            if is_url(root):  # the cache holds no rejected file
                path.unlink(missing_ok=True)
            raise
        return path
    if isinstance(checksums, dict):
        if name not in checksums:
            raise ValueError(
                f"checksums has no md5 for {name!r} (it has {sorted(checksums)}); add one, or "
                "pass checksums=None to load without checking"
            )
        md5 = checksums[name]
    else:
        md5 = None
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
    images: bool = False,
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

    Images are flattened to rows of ``rows × cols`` pixels (784 for the official files), or with
    ``images=True`` kept as ``(1, rows, cols)`` images (for a convolutional pair), and scaled as
    :func:`from_levels` scales 256 grey levels: :math:`x / 255` by default,
    ``dequantize=True`` for :math:`(x + u) / 256` with :math:`u \sim U[0, 1)` (one stream from
    ``seed``, training images first), ``binarize=True`` for :math:`x / 255 > 0.5`.

    :param root: folder or base URL (``http://``, ``https://`` or ``file://``) of the files.
    :param str kind: ``"mnist"`` (default) or ``"fashion-mnist"``; selects the official
        checksums.
    :param bool binarize: threshold at one half, for Bernoulli likelihoods (default False).
    :param bool dequantize: uniform dequantization (default False).
    :param int seed: seed of the dequantization noise, in ``[0, 2**32 − 1]`` (default 0).
    :param dtype: ``torch.float32`` or ``torch.float64`` (default: torch's default dtype).
    :param checksums: ``"official"`` (default): each file must be the published ``.gz`` of
        ``kind`` or, compressed or not, hold the official file's contents (md5 of the
        decompressed bytes), so that a recompressed copy such as Debian's
        ``dataset-fashion-mnist`` loads and a damaged one does not; a dict file name → md5 hex
        digest of the file as stored, which must have an entry for every file read, under the
        name read (``.gz`` or not); or ``None``: nothing is checked.
    :param cache_dir: download folder for a URL ``root`` (default ``~/.cache/pvae``).
    :param bool images: points as ``(1, rows, cols)`` images rather than flat rows (default
        False).
    :returns: a :class:`Split` with ``train`` ``(60000, 784)``, ``test`` ``(10000, 784)`` (or
        ``(60000, 1, 28, 28)`` and ``(10000, 1, 28, 28)`` with ``images=True``) and
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
    check_bool(images, "images")
    checksums = _check_checksums(checksums)
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder or a base URL, got {type(root).__name__}")
    if not is_url(root) and not Path(root).expanduser().is_dir():
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

    def scale(pixels: np.ndarray) -> torch.Tensor:
        shape = (len(pixels), 1, *pixels.shape[1:]) if images else (len(pixels), -1)
        levels = torch.from_numpy(pixels.reshape(shape)).to(dtype)
        return scale_levels(
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
        noise_variance=dequantization_variance(_MNIST_LEVELS) if dequantize else None,
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
    images: bool = False,
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
        images=images,
    )
