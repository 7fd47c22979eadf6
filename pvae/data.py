"""Data: sklearn's bundled digits and synthetic linear-Gaussian data, as torch tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pvae.validation import check_data, check_positive_float, check_positive_int

__all__ = [
    "DIGITS_LEVELS",
    "Split",
    "from_levels",
    "linear_gaussian_data",
    "load_array",
    "load_digits",
    "split",
]

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
    """Shuffle ``data`` (and ``labels``) with ``seed`` and hold out ``test_fraction`` of it."""
    check_data(data, "data")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    num_points = data.shape[0]
    num_test = round(test_fraction * num_points)
    if num_test in (0, num_points):
        raise ValueError(
            f"test_fraction={test_fraction} of {num_points} points leaves an empty split"
        )
    if labels is not None and labels.shape[0] != num_points:
        raise ValueError(
            f"labels must have one entry per point ({num_points}), got shape {tuple(labels.shape)}"
        )
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

    :param torch.Tensor levels: floating-point tensor ``(n, d)`` of whole numbers in
        ``[0, num_levels − 1]``.
    :param int num_levels: L, the number of grey levels (17 for sklearn's digits, 256 for 8-bit).
    :param labels: class labels, one per image, or ``None``.
    :param float test_fraction: held-out share (default 0.2).
    :param int seed: seed of the shuffle and of the dequantization noise.

    [1] Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
        models. ICLR.
    """
    check_data(levels, "levels")
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}")
    if binarize and dequantize:
        raise ValueError("binarize and dequantize exclude each other; choose one")
    bad = (levels != levels.round()) | (levels < 0) | (levels > num_levels - 1)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"levels must be whole numbers in [0, {num_levels - 1}] (num_levels={num_levels}), "
            f"but levels[{row}, {col}] = {levels[row, col].item():g}"
        )
    if dequantize:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.rand(levels.shape, generator=generator, dtype=levels.dtype)
        data = (levels + noise) / num_levels
    elif binarize:
        data = (levels / (num_levels - 1) > 0.5).to(levels.dtype)
    else:
        data = levels / (num_levels - 1)
    return split(data, labels, test_fraction=test_fraction, seed=seed)


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

    :param dtype: tensor dtype (default: torch's default dtype).
    """
    from sklearn.datasets import load_digits as sklearn_digits

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
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    if path.suffix not in (".npy", ".npz"):
        raise ValueError(f"data file must be .npy or .npz, got {str(path)!r}")
    labels = None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive:
                raise ValueError(f"{str(path)!r} has no array 'x' (it has {sorted(archive.files)})")
            array = archive["x"]
            labels = torch.as_tensor(archive["y"]) if "y" in archive else None
    else:
        array = np.load(path, allow_pickle=False)
    if array.ndim < 2 or array.size == 0:
        raise ValueError(
            f"data in {str(path)!r} must be a non-empty (n, ...) array of images, "
            f"got shape {array.shape}"
        )
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

    :returns: ``(data, model)``: the ``(num_points, data_dim)`` tensor and the
        :class:`~pvae.models.LinearGaussian` that generated it (its ``log_prob`` is exact).
    """
    from pvae.models import LinearGaussian

    check_positive_int(num_points, "num_points")
    check_positive_int(data_dim, "data_dim")
    check_positive_int(latent_dim, "latent_dim")
    check_positive_float(noise_variance, "noise_variance")
    dtype = dtype or torch.get_default_dtype()
    generator = torch.Generator().manual_seed(seed)
    model = LinearGaussian(data_dim, latent_dim, variance=noise_variance).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype))
        model.bias.copy_(torch.randn(data_dim, generator=generator, dtype=dtype))
    z = torch.randn(num_points, latent_dim, generator=generator, dtype=dtype)
    noise = torch.randn(num_points, data_dim, generator=generator, dtype=dtype)
    noise = noise * noise_variance**0.5
    return z @ model.weight.detach().T + model.bias.detach() + noise, model
