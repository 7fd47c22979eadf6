"""The K-curve: log p̂(x) against the number of importance samples, on nested draws."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pvae.display import Displayed, with_error
from pvae.estimation.result import log_mean_weight
from pvae.validation import check_positive_int

__all__ = ["KCurve", "k_curve"]


@dataclass(repr=False)
class KCurve(Displayed):
    """log p̂ on the first k of the same K draws, for each k of ``num_samples``.

    :ivar num_samples: the k, increasing, shape ``(m,)``.
    :ivar per_point: log p̂ of every point with its first k draws, shape ``(n, m)``.
    :ivar mean: its mean over points, shape ``(m,)``.
    :ivar stderr_mc: the Monte Carlo standard error of the mean (delta method), ``(m,)``.
    """

    num_samples: torch.Tensor
    per_point: torch.Tensor
    mean: torch.Tensor
    stderr_mc: torch.Tensor

    def _display(self):
        title = (
            f"KCurve: log p̂(x) by importance sampling on the first k of the same draws, mean "
            f"of {self.per_point.shape[0]} points (nats; Monte Carlo se)"
        )
        rows = [
            (f"k = {k}", with_error(mean, se))
            for k, mean, se in zip(
                self.num_samples.tolist(), self.mean.tolist(), self.stderr_mc.tolist(), strict=True
            )
        ]
        return title, rows


def k_curve(result, num_samples=None) -> KCurve:
    r"""How log p̂(x) moves with K, read from one run's own draws: the estimate from the first
    k log-weights of each point, for k in ``num_samples`` (default: powers of 2 up to K, and
    K). :math:`E[\log \hat p_k]` increases with k to log p(x) (Burda et al.'s
    :math:`\mathcal L_k`); a curve still climbing at K says the estimate is still biased low
    there, whatever its standard error says, while a flat one is consistent with (not proof
    of) convergence. Nested prefixes of the same draws make the curve smooth in k.

    :param result: an :class:`~pvae.estimation.ImportanceEstimate` with ``log_weights``
        (``log_marginal(..., return_log_weights=True)``), or a tensor of log-weights ``(n, K)``.
    :param num_samples: the k to evaluate, each in ``[1, K]``.
    :raises ValueError: without log-weights, or for a k outside ``[1, K]``.
    """
    log_weights = getattr(result, "log_weights", result)
    if not isinstance(log_weights, torch.Tensor):
        raise ValueError(
            "k_curve needs the log-weights: call log_marginal(..., return_log_weights=True)"
        )
    if log_weights.dim() != 2:
        raise ValueError(f"log-weights must have shape (n, K), got {tuple(log_weights.shape)}")
    total = log_weights.shape[1]
    if num_samples is None:
        sizes = sorted({2**i for i in range(int(math.log2(total)) + 1)} | {total})
    else:
        sizes = sorted({check_positive_int(k, "num_samples") for k in num_samples})
        if sizes[-1] > total:
            raise ValueError(f"num_samples must be at most K = {total}, got {sizes[-1]}")
    log_weights = log_weights.detach()
    columns, errors = [], []
    for k in sizes:
        estimate, se = log_mean_weight(log_weights[:, :k])
        columns.append(estimate)
        errors.append(se.pow(2).sum().sqrt() / len(se))  # nan for k = 1
    per_point = torch.stack(columns, 1)
    return KCurve(
        num_samples=torch.tensor(sizes),
        per_point=per_point,
        mean=per_point.mean(0),
        stderr_mc=torch.stack(errors),
    )
