"""Data sets by name: the one place the CLI, the demo and the experiments look them up."""

from __future__ import annotations

import os

from pvae.data.images import load_array, load_digits
from pvae.data.mnist import load_fashion_mnist, load_mnist
from pvae.data.split import Split, split
from pvae.data.synthetic import linear_gaussian_data

__all__ = ["IDX_NAMES", "NAMES", "check_data_choice", "load_data", "load_dataset"]

#: Every name :func:`load_dataset` knows.
NAMES = ("digits", "fashion-mnist", "linear-gaussian", "mnist")

#: The names whose images are read from four IDX files under a ``root``.
IDX_NAMES = ("fashion-mnist", "mnist")

_IDX_LOADERS = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist}

_FILE_SUFFIXES = (".npy", ".npz")

#: The size of ``"linear-gaussian"``: points, dimension, latent dimension.
_LINEAR_GAUSSIAN_SHAPE = (2000, 16, 4)


def load_dataset(
    name: str | os.PathLike,
    *,
    binarize: bool = False,
    dequantize: bool = False,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    num_levels: int = 256,
    checksums: str | dict[str, str] | None = "official",
) -> Split:
    """The train/held-out split of the data set ``name``.

    - ``"digits"``: sklearn's bundled 8×8 digits, a seeded 80/20 split
      (:func:`~pvae.data.load_digits`);
    - ``"mnist"``, ``"fashion-mnist"``: the official split of the four IDX files under
      ``root`` (:func:`~pvae.data.load_mnist`, :func:`~pvae.data.load_fashion_mnist`);
    - ``"linear-gaussian"``: 2,000 points of dimension 16 from a linear-Gaussian model with 4
      latent dimensions (:func:`~pvae.data.linear_gaussian_data`), a seeded 80/20 split;
    - a :class:`~pathlib.Path`, or a string ending in ``.npy`` or ``.npz``: a file of integer
      grey levels with ``num_levels`` levels (:func:`~pvae.data.load_array`).

    :param name: one of :data:`NAMES`, or a file as above.
    :param bool binarize: threshold images at one half, for Bernoulli likelihoods (default
        ``False``).
    :param bool dequantize: uniform dequantization of images (default ``False``).
    :param int seed: seed of the split, of the dequantization noise and of the synthetic data.
    :param root: folder or base URL of the IDX files of ``"mnist"`` and ``"fashion-mnist"``
        (unused by the others).
    :param int num_levels: grey levels of a file (default 256; unused by the named sets, which
        know their own).
    :param checksums: how the IDX files of ``"mnist"`` and ``"fashion-mnist"`` are checked, as
        in :func:`~pvae.data.load_mnist` (default ``"official"``).
    :raises TypeError: if ``name`` is neither a string nor a path.
    :raises ValueError: for an unknown ``name``, ``"mnist"`` or ``"fashion-mnist"`` without
        ``root``, and ``binarize`` or ``dequantize`` for ``"linear-gaussian"``, which holds no
        images; and as the loaders do.
    """
    if not isinstance(name, str | os.PathLike):
        raise TypeError(
            f"name must be a data set's name (a str) or a file path, got {type(name).__name__}"
        )
    if isinstance(name, os.PathLike) or name.endswith(_FILE_SUFFIXES):
        return load_array(name, num_levels, binarize=binarize, dequantize=dequantize, seed=seed)
    if name == "digits":
        return load_digits(binarize=binarize, dequantize=dequantize, seed=seed)
    if name in _IDX_LOADERS:
        if root is None:
            raise ValueError(
                f"name={name!r} needs root, the folder or base URL of the four IDX files "
                "(train-images-idx3-ubyte.gz, ...)"
            )
        return _IDX_LOADERS[name](
            root, binarize=binarize, dequantize=dequantize, seed=seed, checksums=checksums
        )
    if name == "linear-gaussian":
        if binarize or dequantize:
            raise ValueError(
                "binarize and dequantize apply to images, not to name='linear-gaussian' "
                f"(got binarize={binarize!r}, dequantize={dequantize!r})"
            )
        data, _ = linear_gaussian_data(*_LINEAR_GAUSSIAN_SHAPE, seed=seed)
        return split(data, seed=seed)
    raise ValueError(
        f"name must be one of {list(NAMES)} or the path of a .npy or .npz file, got {name!r}"
    )


def check_data_choice(
    data, root=None, num_levels: int | None = None, *, names: dict[str, str] | None = None
) -> str:
    """Check a data choice as the commands take it: ``data``, one of :data:`NAMES` or the path
    of a ``.npy``/``.npz`` file; ``root``, required by and only for :data:`IDX_NAMES`;
    ``num_levels``, only for a file. Errors name the settings as ``names`` spells them (e.g.
    ``{"data": "--data"}``; default: the argument names). Returns ``data``.

    :raises ValueError: naming the setting and the value.
    """
    names = {"data": "data", "root": "root", "num_levels": "num_levels", **(names or {})}
    is_file = isinstance(data, os.PathLike) or (
        isinstance(data, str) and data.endswith(_FILE_SUFFIXES)
    )
    if not is_file and data not in NAMES:
        raise ValueError(
            f"{names['data']} must be one of {list(NAMES)} or the path of a .npy or .npz file, "
            f"got {data!r}"
        )
    if data in IDX_NAMES and root is None:
        raise ValueError(
            f"{names['data']} {data} needs {names['root']}, the folder (or base URL) of its four "
            "IDX files, e.g. /usr/share/datasets/fashion-mnist from Debian's "
            "dataset-fashion-mnist package"
        )
    if root is not None and data not in IDX_NAMES:
        raise ValueError(
            f"{names['root']} applies to {names['data']} {' or '.join(IDX_NAMES)}, not {data!r}"
        )
    if num_levels is not None and not is_file:
        raise ValueError(
            f"{names['num_levels']} applies to a .npy or .npz file; {data!r} knows its own "
            "grey levels"
        )
    return data


def load_data(config: dict) -> Split:
    """The train/held-out split a run's ``config`` names, by :func:`load_dataset`: ``data``
    (one of :data:`NAMES` or a ``.npy``/``.npz`` file), ``data_root`` (of :data:`IDX_NAMES`),
    ``levels`` (of a file; default 256), ``binarize``, ``dequantize``, ``data_seed``."""
    name = config.get("data")
    if name is None:
        raise ValueError(
            "the checkpoint's config names no data set (key 'data'); it was not written by "
            "'pvae train', so evaluate it from Python with pvae.load and pvae.log_marginal"
        )
    root, levels = config.get("data_root"), config.get("levels")
    check_data_choice(name, root, levels, names={"root": "data_root", "num_levels": "levels"})
    return load_dataset(
        name,
        binarize=config.get("binarize", False),
        dequantize=config.get("dequantize", False),
        seed=config.get("data_seed", 0),
        root=root,
        num_levels=levels or 256,
    )
