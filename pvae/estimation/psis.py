"""The Pareto-smoothed importance sampling shape k̂, per data point."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

__all__ = ["psis_khat"]


def psis_khat(log_weights: torch.Tensor) -> torch.Tensor:
    """Pareto-smoothed importance sampling shape k̂ per row of ``log_weights`` ``(n, K)``,
    from :func:`arviz.psislw` [1]. ``nan`` for K = 1 and for rows whose weights are all equal.

    [1] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    """
    log_weights = log_weights.detach().cpu()
    khat = torch.full(log_weights.shape[:1], math.nan, dtype=log_weights.dtype)
    largest = log_weights.max(-1).values
    spread = largest - log_weights.min(-1).values
    # Weights equal up to round-off (e.g. the exact posterior as proposal) have no tail to fit.
    round_off = 64 * torch.finfo(log_weights.dtype).eps * largest.abs().clamp(min=1)
    rows = (spread > round_off).nonzero().squeeze(-1)
    if log_weights.shape[-1] < 2 or rows.numel() == 0:
        return khat
    values = log_weights[rows].numpy().astype(np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # arviz warns about large k̂ (we report it) and announces its refactor once a day.
        warnings.simplefilter("ignore")
        import arviz

        _, shape = arviz.psislw(values)
    khat[rows] = torch.as_tensor(np.asarray(shape), dtype=khat.dtype)
    return khat
