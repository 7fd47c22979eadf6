"""Probabilistic PCA's closed-form active dimensions (Dai et al.'s Proposition 2)."""

from __future__ import annotations

import torch

from pvae.validation import check_positive_float, check_positive_int

__all__ = ["active_dimensions"]


def active_dimensions(eigenvalues: torch.Tensor, variance: float, latent_dim: int) -> int:
    r"""The number of latent dimensions the linear-Gaussian VAE keeps at its optimum with a
    fixed decoder variance γ (Tipping & Bishop [1]; Dai et al. [2, Sec. 4], Lucas et al. [3]):
    those whose data-covariance eigenvalue exceeds γ, at most ``latent_dim``.

    :param torch.Tensor eigenvalues: the eigenvalues of the data's sample covariance, a
        finite 1-D tensor.
    :param float variance: the fixed γ > 0.
    :param int latent_dim: q.

    [1] Tipping, M. E. & Bishop, C. M. (1999). Probabilistic Principal Component Analysis.
    [2] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? ICML.
    [3] Lucas, J., Tucker, G., Grosse, R. & Norouzi, M. (2019). Don't Blame the ELBO! NeurIPS.
    """
    if not isinstance(eigenvalues, torch.Tensor) or eigenvalues.dim() != 1:
        shape = (
            f"shape {tuple(eigenvalues.shape)}"
            if isinstance(eigenvalues, torch.Tensor)
            else type(eigenvalues).__name__
        )
        raise ValueError(f"eigenvalues must be a 1-D torch.Tensor, got {shape}")
    finite = torch.isfinite(eigenvalues)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise ValueError(
            f"eigenvalues must be finite, but eigenvalues[{first}] = {eigenvalues[first].item()}"
        )
    check_positive_float(variance, "variance")
    check_positive_int(latent_dim, "latent_dim")
    return min(int((eigenvalues > variance).sum()), latent_dim)
