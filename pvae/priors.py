"""The latent prior shared by pvae's models."""

from __future__ import annotations

import pyro.distributions as dist
import torch

__all__ = ["standard_normal"]


def standard_normal(x: torch.Tensor, latent_dim: int) -> dist.Independent:
    """:math:`\\mathcal{N}(0, I_q)` of one latent code, on ``x``'s dtype and device; event shape
    ``(latent_dim,)``, batch shape ``()`` (the data plate broadcasts it)."""
    zero = x.new_zeros(())
    return dist.Normal(zero, zero + 1).expand([latent_dim]).to_event(1)
