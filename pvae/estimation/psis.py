"""The Pareto-smoothed importance sampling shape k̂, per data point."""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro.ops.stats import fit_generalized_pareto

__all__ = ["psis_khat"]


def psis_khat(log_weights: torch.Tensor) -> torch.Tensor:
    """Pareto-smoothed importance sampling shape k̂ per row of ``log_weights`` ``(n, K)`` [1]:
    ``nan`` for K = 1 and for rows whose weights are all equal, ``inf`` where the tail has at
    most 4 draws (K < 25, say).

    The tail is the one :func:`arviz.psislw` fits (the largest ⌈min(K/5, 3√K)⌉ weights, above a
    cutoff of at least the smallest normal float), and the fit is Zhang & Stephens's with the
    weakly informative prior [2], by :func:`pyro.ops.stats.fit_generalized_pareto`. The values
    equal arviz's to float rounding (``tests/estimation/test_arviz.py``) without importing
    arviz, whose import (with SciPy's statistics and its plotting) cost about 2 s on the first
    estimate of a process.

    [1] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    [2] Zhang, J. & Stephens, M. A. (2009). A new and efficient estimation method for the
        generalized Pareto distribution. Technometrics 51.
    """
    log_weights = log_weights.detach().cpu()
    khat = torch.full(log_weights.shape[:1], math.nan, dtype=log_weights.dtype)
    largest = log_weights.max(-1).values
    spread = largest - log_weights.min(-1).values
    # Weights equal up to round-off (e.g. the exact posterior as proposal) have no tail to fit.
    round_off = 64 * torch.finfo(log_weights.dtype).eps * largest.abs().clamp(min=1)
    rows = (spread > round_off).nonzero().squeeze(-1)
    num_samples = log_weights.shape[-1]
    if num_samples < 2 or rows.numel() == 0:
        return khat
    ordered = np.sort(log_weights[rows].numpy().astype(np.float64), axis=-1)
    cutoff_index = -math.ceil(min(num_samples / 5, 3 * math.sqrt(num_samples))) - 1
    smallest = math.log(np.finfo(np.float64).tiny)
    shapes = np.empty(len(ordered))
    with np.errstate(all="ignore"):
        for i, row in enumerate(ordered):
            row = row - row[-1]  # the largest weight is 1
            cutoff = max(row[cutoff_index], smallest)
            tail = row[row > cutoff]
            if len(tail) <= 4:  # too few draws to fit a tail to
                shapes[i] = math.inf
                continue
            exceedances = torch.from_numpy(np.exp(tail) - math.exp(cutoff))
            try:
                shapes[i], _ = fit_generalized_pareto(exceedances)
            except ZeroDivisionError:
                # No candidate b kept a finite weight, so b = 0 and Pyro divides by it for σ;
                # k̂ is then the prior's (n·0 + 5) / (n + 10), which arviz returns too.
                shapes[i] = 5 / (len(tail) + 10)
    khat[rows] = torch.as_tensor(shapes, dtype=khat.dtype)
    return khat
