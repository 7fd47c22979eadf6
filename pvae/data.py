"""Data: sklearn's bundled digits and synthetic linear-Gaussian data, as torch tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pvae.validation import check_data, check_positive_float, check_positive_int

__all__ = ["DIGITS_LEVELS", "Split", "linear_gaussian_data", "load_digits", "split"]

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


def load_digits(
    *,
    binarize: bool = False,
    dequantize: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Split:
    r"""sklearn's bundled handwritten digits (1,797 images of 8×8 = 64 pixels, no download).

    Pixels take the 17 grey levels 0..16. By default they are scaled to [0, 1] as
    :math:`x / 16`. Options:

    - ``dequantize=True``: uniform dequantization [1], :math:`(x + u) / 17` with
      :math:`u \sim U[0, 1)` per pixel (drawn once, with ``seed``), so values lie in [0, 1) and a
      continuous density cannot grow without bound merely because the data are discrete.
    - ``binarize=True``: :math:`x / 16 > 0.5` as 0/1 values, for Bernoulli likelihoods.

    :param float test_fraction: held-out share (default 0.2).
    :param int seed: seed of the shuffle and of the dequantization noise.
    :param dtype: tensor dtype (default: torch's default dtype).

    [1] Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
        models. ICLR.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if binarize and dequantize:
        raise ValueError("binarize and dequantize exclude each other; choose one")
    dtype = dtype or torch.get_default_dtype()
    bunch = sklearn_digits()
    levels = torch.as_tensor(bunch.data, dtype=dtype)
    labels = torch.as_tensor(bunch.target)
    if dequantize:
        noise = torch.rand(levels.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        data = (levels + noise) / DIGITS_LEVELS
    elif binarize:
        data = (levels / (DIGITS_LEVELS - 1) > 0.5).to(dtype)
    else:
        data = levels / (DIGITS_LEVELS - 1)
    return split(data, labels, test_fraction=test_fraction, seed=seed)


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
