"""Comparing log p̂(x) of two models, or of two sets of points, with the right error."""

from __future__ import annotations

import math

import torch

from pvae.estimation.result import point_summary

__all__ = ["paired_difference", "unpaired_difference"]


def _fields(result, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    estimate, stderr = getattr(result, "estimate", None), getattr(result, "stderr", None)
    if not (isinstance(estimate, torch.Tensor) and isinstance(stderr, torch.Tensor)):
        raise TypeError(
            f"{name} must be a per-point result with estimate and stderr tensors (from "
            f"log_marginal or ais), got {type(result).__name__}"
        )
    return estimate.detach(), stderr.detach()


def paired_difference(first, second) -> dict[str, float]:
    r"""Mean of ``first − second`` over the same points (two models, or two estimators, scored
    on one set of points), with its standard errors:

    - ``stderr_points``: the standard deviation of the per-point differences over
      :math:`\sqrt n` (the paired error: what carries over to other points from the same
      population; it includes each point's Monte Carlo noise);
    - ``stderr_mc``: :math:`\sqrt{\sum_i (\mathrm{se}^{(1)}_i)^2 + (\mathrm{se}^{(2)}_i)^2}/n`,
      the Monte Carlo error alone (how far from the exact difference on these points).

    :param first: an :class:`~pvae.estimation.ImportanceEstimate` or
        :class:`~pvae.estimation.AISEstimate`.
    :param second: another, on the same points in the same order.
    :raises ValueError: if the two cover different numbers of points.
    """
    a, se_a = _fields(first, "first")
    b, se_b = _fields(second, "second")
    if a.shape != b.shape:
        raise ValueError(
            f"first and second must score the same points: got {a.shape[0]} and {b.shape[0]}"
        )
    n = a.shape[0]
    difference = a - b
    mc = torch.nan_to_num(se_a).pow(2) + torch.nan_to_num(se_b).pow(2)
    return {
        "num_points": n,
        "difference": difference.mean().item(),
        "stderr_points": difference.std().item() / math.sqrt(n) if n > 1 else math.nan,
        "stderr_mc": mc.sum().sqrt().item() / n,
    }


def unpaired_difference(first, second) -> dict[str, float]:
    r"""``mean(first) − mean(second)`` for results on *different* points (e.g. held-out
    against training), with the standard error :math:`\sqrt{s_1^2 + s_2^2}` of the two
    across-point standard errors (each including its Monte Carlo noise), and the Monte Carlo
    part alone (``stderr_mc``)."""
    a, b = (
        point_summary(estimate, torch.nan_to_num(stderr))
        for estimate, stderr in (_fields(first, "first"), _fields(second, "second"))
    )
    return {
        "difference": a["log_marginal"] - b["log_marginal"],
        "stderr_points": math.hypot(a["stderr_points"], b["stderr_points"]),
        "stderr_mc": math.hypot(a["stderr_mc"], b["stderr_mc"]),
    }
