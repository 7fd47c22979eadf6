"""The observed site's likelihood read from the trace: its family, whether its variance is
learned or depends on z, and the bound on log p(x) that follows (unknown is never bounded)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro import poutine

from pvae.contract import (
    LeafDraws,
    depends_on,
    evaluating,
    forked_rng,
    observed_site,
    with_obs_site,
)
from pvae.display import Displayed
from pvae.distributions import normal_variance
from pvae.validation import check_pair_data

__all__ = ["Likelihood", "read_likelihood"]


@dataclass(frozen=True, repr=False)
class Likelihood(Displayed):
    """What :func:`read_likelihood` finds about a model's likelihood at its observed site.

    :ivar site: the observed site's name.
    :ivar family: the class name of its distribution (inside ``Independent`` or a mask), e.g.
        ``"Normal"``, ``"Bernoulli"``.
    :ivar variance_learned: for a Normal family, whether its variance moves with a parameter
        of the model (``None`` for other families).
    :ivar variance_depends_on_z: for a Normal family, whether its variance is computed from
        the latent draws (a variance network σ²(z)); ``None`` for other families.
    :ivar log_density_bound: the largest log p(x) of one point the likelihood allows: finite
        (a discrete family: 0; a Normal with a fixed variance that does not depend on z:
        −½ Σ log 2πσ²), ``inf`` where the model states it has none, ``nan`` where it is
        unknown (a learned variance may or may not have a floor; the trace cannot tell).
    :ivar stated: the fields the model stated itself (``variance_learned``,
        ``log_density_bound``) rather than read from the trace.
    """

    site: str
    family: str
    variance_learned: bool | None
    variance_depends_on_z: bool | None
    log_density_bound: float
    stated: tuple[str, ...] = ()

    @property
    def bounded(self) -> bool:
        """Whether log p(x) is known to be bounded (``False`` where it is unknown)."""
        return math.isfinite(self.log_density_bound)

    def _source(self, name: str) -> str:
        return "stated by the model" if name in self.stated else "read from the trace"

    def _display(self):
        rows = [("site", f"{self.site!r}"), ("family", self.family)]
        if self.variance_learned is not None:
            rows.append(
                (
                    "variance",
                    f"{'learned' if self.variance_learned else 'fixed'}"
                    f"{', a function of z' if self.variance_depends_on_z else ''} "
                    f"({self._source('variance_learned')})",
                )
            )
        bound = self.log_density_bound
        text = (
            "unknown (never read as bounded)"
            if math.isnan(bound)
            else "none"
            if math.isinf(bound)
            else f"{bound:.6g} nats per point"
        )
        rows.append(("bound on log p(x)", f"{text} ({self._source('log_density_bound')})"))
        return "Likelihood at the observed site", rows


def _parameters(model, trace) -> list[torch.Tensor]:
    found = [
        site["value"]
        for site in trace.nodes.values()
        if site["type"] == "param" and isinstance(site["value"], torch.Tensor)
    ]
    if isinstance(model, torch.nn.Module):
        found += list(model.parameters())
    unique = {id(value): value for value in found if value.requires_grad}
    return list(unique.values())


@with_obs_site
def read_likelihood(
    model: Callable, guide: Callable, x: torch.Tensor, *, obs_site: str | None = None
) -> Likelihood:
    r"""The likelihood at the model's observed site, read from one trace of the pair on ``x``
    (eval mode, a forked RNG) where the model does not state it.

    - the family: the distribution's class;
    - for a Normal family (:func:`pvae.distributions.normal_variance`), whether the variance is
      *learned* (autograd finds a path from a parameter of the model, a ``pyro.param`` or
      ``pyro.module`` site or an ``nn.Module`` parameter, to it) and whether it *depends on
      z* (a path from a latent draw);
    - the bound: 0 for a discrete family (a probability is at most 1); for a Normal whose
      variance is neither learned nor a function of z, :math:`-\tfrac12 \sum_j \log 2\pi
      \sigma_j^2` (the density at its mean), the largest over the points of ``x``; otherwise
      unknown (``nan``): a learned variance may have a floor the trace cannot show, and
      unknown is never read as bounded.

    A model's own ``variance_learned`` attribute and ``log_density_bound()`` method take
    precedence (pvae's models state both).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: a few data points (e.g. ``data[:2]``).
    :param obs_site: where the model observes several sites inside the data plate, the one to
        read (default ``None``: the only one; :func:`pvae.contract.observing`).
    """
    check_pair_data(model, guide, x, "x")
    with forked_rng(x), evaluating(model, guide), torch.enable_grad():
        with LeafDraws():
            guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
        observed = observed_site(model_trace)
        fn, value = observed["fn"], observed["value"]
        base = fn
        while hasattr(base, "base_dist"):
            base = base.base_dist
        variance = normal_variance(fn, value)
        learned = depends = None
        if variance is not None:
            draws = [
                site["value"]
                for site in guide_trace.nodes.values()
                if site["type"] == "sample" and getattr(site["value"], "requires_grad", False)
            ]
            learned = any(depends_on(variance, _parameters(model, model_trace)))
            depends = any(depends_on(variance, draws))
            if not (learned or depends):
                per_point = -0.5 * torch.log(2 * math.pi * variance.detach()).flatten(1).sum(-1)
                read_bound = float(per_point.max())
            else:
                read_bound = math.nan
        elif fn.support.is_discrete:
            read_bound = 0.0
        else:
            read_bound = math.nan
    stated = []
    if getattr(model, "variance_learned", None) is not None:
        learned = bool(model.variance_learned)
        stated.append("variance_learned")
    bound = getattr(model, "log_density_bound", None)
    if callable(bound):
        read_bound = float(bound())
        stated.append("log_density_bound")
    return Likelihood(
        site=observed["name"],
        family=type(base).__name__,
        variance_learned=learned,
        variance_depends_on_z=depends,
        log_density_bound=read_bound,
        stated=tuple(stated),
    )
