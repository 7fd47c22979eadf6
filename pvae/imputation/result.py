"""The result of an imputation: multiple imputations, the conditional mean, their trust."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pvae.display import Displayed

__all__ = ["KHAT_LIMIT", "METHODS", "RHAT_LIMIT", "Imputation"]

#: The samplers of :func:`pvae.impute`, with the name each is shown under.
METHODS = {
    "mwg": "Metropolis-within-Gibbs",
    "pseudo-gibbs": "pseudo-Gibbs",
    "importance": "importance resampling",
}

#: The largest rank-normalized split-R̂ of a chain's log p(x̃, z) that reads as converged
#: (Vehtari et al. 2021's threshold).
RHAT_LIMIT = 1.01

#: PSIS's k̂ above which self-normalized importance sampling is unreliable (Vehtari et al.).
KHAT_LIMIT = 0.7


@dataclass(repr=False)
class Imputation(Displayed):
    """Multiple imputations of the missing entries of ``n`` points.

    :ivar torch.Tensor samples: ``(num_samples, n, *event_shape)``: draws of the completed
        data; the observed entries equal the data exactly.
    :ivar torch.Tensor mean: ``(n, *event_shape)``: the estimated conditional mean
        :math:`\\mathbb E[x \\mid x^o]`, the data at observed entries (the average of
        :math:`\\mathbb E[x^m \\mid z]` over the draws where the likelihood has a closed-form
        mean, else of the samples).
    :ivar torch.Tensor mean_stderr: the Monte Carlo standard error of ``mean``, entry by
        entry (0 at observed entries; across the independent chains, or by the delta method
        for importance resampling).
    :ivar torch.Tensor mask: the mask, ``True`` where observed.
    :ivar str method: ``"mwg"``, ``"pseudo-gibbs"`` or ``"importance"``.
    :ivar torch.Tensor acceptance: ``(n,)``, MWG's share of accepted proposals over each
        point's chains and steps (after the first); ``None`` otherwise.
    :ivar torch.Tensor rhat: ``(n,)``, the chains' rank-normalized split-R̂ of
        :math:`\\log p(\\tilde x, z)` over the second half of the steps (MWG and pseudo-Gibbs,
        ``nan`` with fewer than 8 steps); ``None`` for importance resampling.
    :ivar torch.Tensor ess: ``(n,)``, the effective sample size of the importance weights
        (importance resampling); ``None`` otherwise.
    :ivar torch.Tensor khat: ``(n,)``, PSIS's k̂ of those weights; ``None`` otherwise.
    :ivar dict settings: what produced it (steps, samples, particles, seed).
    """

    samples: torch.Tensor
    mean: torch.Tensor
    mean_stderr: torch.Tensor
    mask: torch.Tensor
    method: str
    acceptance: torch.Tensor | None = None
    rhat: torch.Tensor | None = None
    ess: torch.Tensor | None = None
    khat: torch.Tensor | None = None
    settings: dict = field(default_factory=dict)
    binary: bool = False

    @property
    def num_points(self) -> int:
        return self.mean.shape[0]

    @property
    def status(self) -> list[str]:
        """Per point, how far to trust its imputations: for the chains, ``"converged"``
        (R̂ ≤ :data:`RHAT_LIMIT`), ``"not converged"``, or ``"inconclusive"`` (R̂ undefined:
        too few steps, or chains that never moved); for importance resampling
        ``"reliable"`` (k̂ ≤ 0.7) or ``"unreliable"``. Pseudo-Gibbs chains can converge to a
        distribution other than :math:`p(x^m \\mid x^o)`: only MWG's target is that."""
        if self.method == "importance":
            return ["reliable" if k <= KHAT_LIMIT else "unreliable" for k in self.khat.tolist()]
        return [
            "inconclusive" if math.isnan(r) else "converged" if r <= RHAT_LIMIT else "not converged"
            for r in self.rhat.tolist()
        ]

    @property
    def mode(self) -> torch.Tensor:
        """The single imputation by each entry's most probable value, for binary data
        (a Bernoulli likelihood): 1 where the conditional mean is at least 1/2.

        :raises ValueError: for a likelihood that is not on {0, 1}, where an entry's mode would
            need a density estimate (use ``mean``).
        """
        if not self.binary:
            raise ValueError(
                "mode is the most probable value of each entry of binary data (a likelihood "
                "on {0, 1}); this likelihood is continuous: use mean"
            )
        return torch.where(self.mask, self.mean, (self.mean >= 0.5).to(self.mean.dtype))

    def _display(self):
        method = METHODS[self.method]
        missing = (~self.mask).reshape(self.num_points, -1).sum(-1).double()
        settings = self.settings
        if self.method == "importance":
            budget = f"K = {settings.get('num_particles')} proposals from the guide per point"
        else:
            budget = (
                f"{settings.get('num_samples')} chains of {settings.get('num_steps')} steps "
                "per point"
            )
        rows = [
            ("points", f"{self.num_points}", "each with at least one observed entry"),
            (
                "missing entries",
                f"{missing.mean():.1f} per point ({missing.sum() / self.mask.numel():.0%})",
            ),
            ("imputations", f"{self.samples.shape[0]} per point", budget),
        ]
        if self.acceptance is not None:
            rate = self.acceptance
            rows.append(
                (
                    "acceptance",
                    f"{rate.mean():.3f} mean, {rate.min():.3f} lowest",
                    "share of MWG's proposals accepted, per point",
                )
            )
        statuses = self.status
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        if self.rhat is not None:
            finite = self.rhat[~self.rhat.isnan()]
            worst = f"largest R̂ {finite.max():.3f}" if finite.numel() else "R̂ undefined"
            rows.append(("chains", f"{counts}; {worst}", f"split-R̂ of log p(x̃, z), ≤ {RHAT_LIMIT}"))
        if self.ess is not None:
            rows.append(
                (
                    "weights",
                    f"{counts}; mean ESS {self.ess.mean():.1f} of {settings.get('num_particles')}",
                    f"PSIS k̂ ≤ {KHAT_LIMIT} reads as reliable",
                )
            )
        if self.method == "pseudo-gibbs":
            rows.append(
                (
                    "target",
                    "p(x^m | x^o) only if the guide is the exact posterior",
                    "Rezende et al. 2014; MWG's target is exact for any guide",
                )
            )
        spread = self.mean_stderr[~self.mask]
        if spread.numel():
            rows.append(
                (
                    "mean's MC se",
                    f"{spread.mean():.3g} mean over missing entries, {spread.max():.3g} largest",
                )
            )
        return f"Imputation by {method}", rows
