"""The per-point result of importance sampling, and its arviz/xarray form."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pvae.display import Displayed, with_error

__all__ = ["ImportanceEstimate", "log_mean_weight", "point_summary"]


def log_mean_weight(log_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The log of the mean weight over the last dimension of ``log_weights`` (K draws, or C
    chains) and its delta-method standard error :math:`\mathrm{sd}(w) / (\sqrt K\, \bar w)`
    (``nan`` for K = 1): the reduction of importance sampling, AIS and the K-curve."""
    num_samples = log_weights.shape[-1]
    estimate = torch.logsumexp(log_weights, -1) - math.log(num_samples)
    if num_samples == 1:
        return estimate, torch.full_like(estimate, math.nan)
    weights = torch.exp(log_weights - log_weights.max(-1, keepdim=True).values)
    stderr = weights.std(-1) / (math.sqrt(num_samples) * weights.mean(-1))
    return estimate, stderr


def point_summary(estimate: torch.Tensor, stderr: torch.Tensor) -> dict[str, float]:
    r"""The mean over points of per-point estimates with its two standard errors:

    - ``stderr_mc``, Monte Carlo: :math:`\sqrt{\sum_i \mathrm{se}_i^2} / n`, how far the mean
      is from the exact mean over *these* points;
    - ``stderr_points``, across points: the standard deviation of the n estimates over
      :math:`\sqrt n`, how far it is from the mean over the population the points were drawn
      from. Compare two models on different points with this one (it is usually far larger);
      on the same points, with :func:`~pvae.estimation.compare.paired_difference`.

    ``stderr_points`` is ``nan`` for one point.
    """
    n = len(estimate)
    return {
        "num_points": n,
        "log_marginal": estimate.mean().item(),
        "stderr_mc": (stderr.pow(2).sum().sqrt() / n).item(),
        "stderr_points": estimate.std().item() / n**0.5 if n > 1 else float("nan"),
    }


def _status_counts(statuses: list[str]) -> str:
    """``"n reliable, m doubtful, k unreliable"``: how many points have each trust status."""
    return ", ".join(
        f"{statuses.count(status)} {status}" for status in ("reliable", "doubtful", "unreliable")
    )


@dataclass(repr=False)
class ImportanceEstimate(Displayed):
    """Per-data-point results of :func:`log_marginal`; every field has shape ``(n,)``.

    :ivar estimate: :math:`\\log \\hat p(x)` in nats.
    :ivar stderr: its delta-method Monte Carlo standard error (``nan`` for K = 1).
    :ivar ess: the importance-sampling effective sample size, between 1 and K.
    :ivar khat: the PSIS Pareto shape k̂: < 0.5 good, 0.5–0.7 usable, > 0.7 unreliable;
        ``inf`` where K is too small for the Pareto fit (about K < 30), ``nan`` for K = 1 or
        where every weight is equal (the estimate is then exact).
    :ivar elbo: the mean log-weight, an unbiased estimate of the ELBO (guide proposal).
    :ivar log_weights: the raw log-weights, shape ``(n, K)``, if asked for, else ``None``.
    :ivar nested: the estimates from the first K/4 and the first K/2 of the same draws, shape
        ``(n, 2)`` (``nan`` for K < 4), read by :attr:`status`; ``None`` if not computed.
    :ivar num_samples: K.
    :ivar proposal: ``"guide"`` or ``"prior"``.
    """

    estimate: torch.Tensor
    stderr: torch.Tensor
    ess: torch.Tensor
    khat: torch.Tensor
    elbo: torch.Tensor
    num_samples: int
    proposal: str
    log_weights: torch.Tensor | None = None
    nested: torch.Tensor | None = None

    @property
    def status(self) -> list[str]:
        """Per point, how far to trust the estimate: ``"reliable"``, ``"doubtful"`` or
        ``"unreliable"``, by :data:`pvae.estimation.trust.TRUST_RULE`, a rule chosen and
        checked against exact answers (:mod:`pvae.estimation.trust`). :meth:`evidence` gives
        what each status was read from."""
        from pvae.estimation.trust import TRUST_RULE

        return TRUST_RULE.status(self)

    def status_given(self, ais) -> list[str]:
        """:attr:`status` with a fourth sign, the IS–AIS gap: ``ais`` is an
        :class:`~pvae.estimation.AISEstimate` (:func:`pvae.ais`) of the same points in the same
        order, and a point whose AIS estimate is above this one by more than
        ``TRUST_RULE.max_ais_gap`` standard errors of the difference is ``"unreliable"`` (AIS
        is a lower bound too: IS erred low there). It only lowers a status."""
        from pvae.estimation.trust import TRUST_RULE

        return TRUST_RULE.status(self, ais)

    def evidence(self, ais=None) -> list[dict]:
        """Per point, what :attr:`status` was read from: k̂, the relative ESS (ESS / K), the
        nested disagreement (the largest |log p̂_K − log p̂_{K/2}| and |log p̂_K − log p̂_{K/4}|
        in standard errors of log p̂_K), whether each passes, and the status; given ``ais``
        (as in :meth:`status_given`), the IS–AIS gap too, and the status that reads it."""
        from pvae.estimation.trust import TRUST_RULE

        return TRUST_RULE.evidence(self, ais)

    def __len__(self) -> int:
        return self.estimate.shape[0]

    @classmethod
    def concatenate(cls, parts) -> ImportanceEstimate:
        """One estimate of the points of ``parts`` in their order: the per-point fields joined
        (the estimates of a split set of points, :func:`pvae.estimation.sharded_log_marginal`).
        The parts must share K and the proposal, and all or none hold log-weights and nested
        estimates."""
        parts = list(parts)
        if not parts or not all(isinstance(part, cls) for part in parts):
            raise ValueError(
                f"parts must be one or more ImportanceEstimates, got "
                f"{[type(part).__name__ for part in parts]!r}"
            )
        first = parts[0]
        for index, part in enumerate(parts):
            if (part.num_samples, part.proposal) != (first.num_samples, first.proposal):
                raise ValueError(
                    f"parts[{index}] has K = {part.num_samples} and proposal "
                    f"{part.proposal!r}, parts[0] K = {first.num_samples} and "
                    f"{first.proposal!r}: estimates of one call share both"
                )
        fields = {}
        for name in ("estimate", "stderr", "ess", "khat", "elbo", "log_weights", "nested"):
            values = [getattr(part, name) for part in parts]
            held = [value is not None for value in values]
            if any(held) and not all(held):
                raise ValueError(
                    f"parts[{held.index(not held[0])}] {'lacks' if held[0] else 'has'} "
                    f"{name} and parts[0] {'has' if held[0] else 'lacks'}: all or none hold it"
                )
            fields[name] = torch.cat(values) if all(held) else None
        return cls(num_samples=first.num_samples, proposal=first.proposal, **fields)

    def _display(self):
        title = (
            f"ImportanceEstimate: log p̂(x) by importance sampling ({self.proposal} proposal, "
            f"K = {self.num_samples}) of {len(self)} points"
        )
        if len(self) == 0:
            return title, []
        summary = self.summary()
        if self.nested is None:
            trust = "no status: not made by log_marginal (no nested estimates)"
        else:
            trust = _status_counts(self.status) + " (.evidence() says why)"
        worst = int((self.khat > 0.7).sum())
        elbo_spread = self.elbo.std().item() / len(self) ** 0.5 if len(self) > 1 else math.nan
        return title, [
            (
                "log p̂(x)",
                f"{with_error(summary['log_marginal'], summary['stderr_mc'])} nats per point "
                "(mean; Monte Carlo se)",
            ),
            ("across points", f"se {summary['stderr_points']:.2g} (the points' spread / √n)"),
            (
                "ELBO",
                f"{summary['elbo']:.6g} nats per point (the mean log-weight; se across points "
                f"{elbo_spread:.2g})",
            ),
            ("trust", trust),
            ("k̂ > 0.7", f"{worst} of {len(self)} points"),
            ("ESS", f"{summary['ess']:.4g} of K = {self.num_samples} (mean over points)"),
        ]

    def summary(self) -> dict[str, float]:
        """Averages over the data points: the mean estimate with its Monte Carlo and
        across-point standard errors (:func:`point_summary`; ``stderr`` is ``stderr_mc``, under
        its older name), mean ESS, the share of points with k̂ > 0.7, and the mean ELBO."""
        summary = point_summary(self.estimate, self.stderr)
        return {
            "num_points": summary["num_points"],
            "num_samples": self.num_samples,
            "log_marginal": summary["log_marginal"],
            "stderr": summary["stderr_mc"],
            "stderr_mc": summary["stderr_mc"],
            "stderr_points": summary["stderr_points"],
            "ess": self.ess.mean().item(),
            "khat_above_0.7": (self.khat > 0.7).double().mean().item(),
            "elbo": self.elbo.mean().item(),
        }

    def to_dataset(self):
        """The results as an :class:`xarray.Dataset`, for arviz and xarray tools.

        Variables: ``log_weight`` with dims ``(chain, draw, point)`` (the K importance draws of
        each point as one chain of K draws; needs ``log_marginal(..., return_log_weights=True)``)
        and, with dim ``point``, ``log_marginal``, ``stderr``, ``importance_ess`` (the
        importance-sampling ESS, from the spread of the weights), ``pareto_k`` and ``elbo``.
        Attributes: ``num_samples``, ``proposal``.

        ``az.ess`` on ``log_weight`` measures the autocorrelation of the draws: for importance
        samples, which are independent by construction, it is close to K whatever the weights.
        How much the estimate can be trusted is in ``importance_ess`` and ``pareto_k``.

        :raises ValueError: if the log-weights were not kept.
        """
        import xarray as xr

        if self.log_weights is None:
            raise ValueError(
                "this ImportanceEstimate has no log_weights; call "
                "log_marginal(..., return_log_weights=True) to convert it to arviz/xarray"
            )
        point = np.arange(len(self))

        def per_point(values: torch.Tensor):
            return ("point", values.detach().cpu().numpy())

        return xr.Dataset(
            {
                "log_weight": (
                    ("chain", "draw", "point"),
                    self.log_weights.detach().cpu().T.unsqueeze(0).numpy(),
                ),
                "log_marginal": per_point(self.estimate),
                "stderr": per_point(self.stderr),
                "importance_ess": per_point(self.ess),
                "pareto_k": per_point(self.khat),
                "elbo": per_point(self.elbo),
            },
            coords={"chain": [0], "draw": np.arange(self.num_samples), "point": point},
            attrs={"num_samples": self.num_samples, "proposal": self.proposal},
        )

    def to_inference_data(self):
        """The results as :class:`arviz.InferenceData`, with :meth:`to_dataset` as its
        ``sample_stats`` group::

            result = pvae.log_marginal(model, guide, x, return_log_weights=True)
            idata = result.to_inference_data()
            stats = idata.sample_stats
            az.plot_khat(stats.pareto_k)                   # k̂ per data point
            az.ess(stats, var_names=["log_weight"])        # ≈ K: the draws are independent
            az.psislw(stats.log_weight.sel(chain=0).T)     # smoothed weights, k̂ again

        (arviz 0.23's ``plot_khat`` prefers its own ``ELPDData`` from ``az.loo`` and warns,
        with a ``FutureWarning``, that DataArray input will be deprecated;
        :func:`pvae.plots.plot_khat` draws the same without arviz.)
        """
        import arviz

        return arviz.InferenceData(sample_stats=self.to_dataset())
