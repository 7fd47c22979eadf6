"""Generated data: linear-Gaussian samples and data with a known spectrum."""

from __future__ import annotations

import torch

from pvae.validation import check_float_dtype, check_positive_float, check_positive_int, check_seed

__all__ = ["data_with_spectrum", "linear_gaussian_data"]


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
