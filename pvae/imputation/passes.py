"""One pass of a model/guide pair over completed data: the latents, their log-densities and
the likelihood entry by entry, which the imputation samplers read."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pyro import poutine

from pvae.contract import (
    ContractError,
    LeafDraws,
    depends_on,
    forked_rng,
    observed_site,
    sample_sites,
    site_log_prob,
)

__all__ = ["PairPass", "check_imputable", "run_pair"]


@dataclass
class PairPass:
    """The pair run on rows of completed data ``x̃`` (observed entries and imputations).

    :ivar dict latents: the latent sites' values, by name (a row each).
    :ivar torch.Tensor log_guide: :math:`\\log q(z \\mid \\tilde x)`, shape ``(rows,)``.
    :ivar torch.Tensor log_rest: the model's log-density but for the observed site:
        :math:`\\log p(z)`, shape ``(rows,)``.
    :ivar torch.Tensor log_entries: :math:`\\log p(\\tilde x_j \\mid z)` entry by entry, shape
        ``(rows, entries)``.
    :ivar likelihood: the observed site's distribution :math:`p(x \\mid z)`.
    :ivar torch.Size shape: the shape of ``x̃``, which the site's value reshapes.
    """

    latents: dict[str, torch.Tensor]
    log_guide: torch.Tensor
    log_rest: torch.Tensor
    log_entries: torch.Tensor
    likelihood: torch.distributions.Distribution
    shape: torch.Size

    def log_joint(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`\\log p(\\tilde x, z)`, or with ``mask`` (flat, ``(rows, entries)``) only the
        observed entries' likelihood: :math:`\\log p(x^o, z)`."""
        entries = self.log_entries if mask is None else self.log_entries.where(mask, 0.0)
        return self.log_rest + entries.sum(-1)

    def sample(self) -> torch.Tensor:
        """A draw of every entry from :math:`p(x \\mid z)`, in ``x̃``'s shape."""
        return self.likelihood.sample().reshape(self.shape)

    def mean(self) -> torch.Tensor | None:
        """:math:`\\mathbb E[x \\mid z]` in ``x̃``'s shape, ``None`` where the distribution has
        no closed-form mean."""
        try:
            mean = self.likelihood.mean
        except NotImplementedError:
            return None
        return mean.expand(self.likelihood.batch_shape + self.likelihood.event_shape).reshape(
            self.shape
        )


def _entry_distribution(fn):
    """The distribution of one entry of ``fn`` (``Independent`` wrappers taken off), or
    ``None`` where its entries are not independent given the latents."""
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    return fn if fn.event_shape == () else None


def _site_entries(site, rows: torch.Tensor) -> torch.Tensor:
    """The log-density of each entry of the observed ``site`` run on ``rows``,
    ``(rows, entries)``."""
    fn, value = site["fn"], site["value"]
    base = _entry_distribution(fn)
    if base is None:
        raise ContractError(
            f"the model's observed site {site['name']!r} is a {type(fn).__name__} whose entries "
            "are not independent given the latents; imputation samples the missing entries "
            "from p(x^m | z), which needs a likelihood that factorizes over the entries, "
            "p(x | z) = prod_j p(x_j | z) (Normal, Bernoulli, ... with .to_event)"
        )
    entries = base.log_prob(value)
    if entries.shape != value.shape:
        entries = entries.expand(value.shape)
    if site["mask"] is not None:  # poutine.mask: a masked-out point contributes nothing
        entries = entries.masked_fill(~site["mask"].reshape(-1, *[1] * (value.dim() - 1)), 0.0)
    return entries.reshape(rows.shape[0], -1)


def run_pair(model, guide, rows: torch.Tensor, latents=None) -> PairPass:
    """Run ``guide`` on ``rows`` (drawing its latents, or scoring the given ``latents``), then
    ``model`` replaying them."""
    if latents is None:
        guide_trace = poutine.trace(guide).get_trace(rows)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(rows)
    else:
        guide_trace = poutine.trace(poutine.condition(guide, data=latents)).get_trace(rows)
        model_trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(rows)
    shape = (rows.shape[0],)
    site = observed_site(model_trace, conditioned=tuple(latents or ()))
    log_guide = sum(site_log_prob(s, shape) for s in sample_sites(guide_trace))
    log_rest = sum(
        site_log_prob(s, shape) for s in sample_sites(model_trace) if s["name"] != site["name"]
    )
    return PairPass(
        latents={s["name"]: s["value"] for s in sample_sites(guide_trace)},
        log_guide=log_guide,
        log_rest=log_rest,
        log_entries=_site_entries(site, rows),
        likelihood=site["fn"],
        shape=rows.shape,
    )


def check_imputable(model, guide, rows: torch.Tensor) -> None:
    """Refuse a pair the samplers would get wrong, checked on ``rows`` (a point or two):
    an observed site whose value is not the data (a transform of it: imputations would be
    drawn on another scale), a likelihood whose entries are not independent given the latents,
    or a model whose distributions depend on the data's values other than through the latents
    (then :math:`p(x^m \\mid z, x^o) \\ne p(x^m \\mid z)`, and drawing the missing entries
    from the likelihood is not a Gibbs step).

    :raises ContractError: saying which, naming the site.
    """
    with forked_rng(rows), torch.enable_grad():
        tracked = rows.detach().clone().requires_grad_(True)
        with LeafDraws():
            guide_trace = poutine.trace(guide).get_trace(tracked)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(tracked)
        site = observed_site(model_trace)
        value = site["value"]
        if (
            value.shape[0] != rows.shape[0]
            or value.numel() != rows.numel()
            or not torch.equal(value.detach().reshape(rows.shape), rows)
        ):
            raise ContractError(
                f"the model's observed site {site['name']!r} holds a transform of the data "
                f"(shape {tuple(value.shape)}), not the data or a reshape of it; imputation "
                "fills in the data's own entries, so observe x itself (obs=x, or "
                "obs=x.reshape(...))"
            )
        _site_entries(site, rows)
        for s in sample_sites(model_trace):
            score = s["fn"].log_prob(s["value"].detach())
            if depends_on(score, [tracked])[0]:
                raise ContractError(
                    f"the model's site {s['name']!r} has a distribution that depends on the "
                    "data's values, not only on the latents; the missing entries' Gibbs step "
                    "draws them from p(x^m | z), which is their conditional only where the "
                    "model reads the data at its observed site alone"
                )
