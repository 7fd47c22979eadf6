"""Where a per-site analytic KL (``TraceMeanField_ELBO``) is not the ELBO's KL: latent sites
whose prior depends on a latent the guide draws from them."""

from __future__ import annotations

from collections.abc import Callable

import pyro.poutine as poutine
import torch
from torch.distributions import kl_divergence

from pvae.contract import LeafDraws, depends_on, evaluating, forked_rng, sample_sites

__all__ = ["MeanFieldWarning", "analytic_kl", "mean_field_bias"]


class MeanFieldWarning(UserWarning):
    """``TraceMeanField_ELBO``'s analytic KL of a site differs in expectation from the ELBO's
    (:func:`mean_field_bias`)."""


def analytic_kl(q, p) -> torch.Tensor | None:
    """``KL(q ‖ p)`` in closed form where torch has it for the pair of distributions, else
    ``None`` (``TraceMeanField_ELBO`` then falls back to the Monte Carlo term)."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


def _parents(fn, value: torch.Tensor, leaves: dict[str, torch.Tensor]) -> set[str]:
    """The latent draws among ``leaves`` that the parameters of ``fn`` depend on."""
    names = [name for name, leaf in leaves.items() if leaf is not value]
    found = depends_on(fn.log_prob(value.detach()), [leaves[name] for name in names])
    return {name for name, depends in zip(names, found, strict=True) if depends}


def _ancestors(parents: dict[str, set[str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def visit(name: str) -> set[str]:
        if name not in found:
            found[name] = set()  # a cycle cannot occur in one trace; this also ends one
            for parent in parents.get(name, ()):
                found[name] |= {parent} | visit(parent)
        return found[name]

    for name in parents:
        visit(name)
    return found


def mean_field_bias(model: Callable, guide: Callable, x: torch.Tensor) -> dict[str, list[str]]:
    r"""The latent sites at which a per-site analytic KL, as ``TraceMeanField_ELBO`` and
    :func:`pvae.elbo_terms` compute it, does *not* have the ELBO's expectation, each with the
    latent sites that make it so.

    The ELBO's KL is :math:`\mathbb{E}_q[\log q(z \mid x) - \log p(z)]`, a sum over the latent
    sites :math:`s` of :math:`\mathbb{E}_q[\log q(z_s \mid \cdot) - \log p(z_s \mid \cdot)]`.
    ``TraceMeanField_ELBO`` replaces each term by the analytic
    :math:`\mathrm{KL}(q(z_s \mid \cdot) \,\|\, p(z_s \mid \mathrm{pa}(s)))` at the other sites'
    drawn values, which integrates :math:`z_s` with those values held fixed. That has the
    same expectation unless a draw the model's distribution at :math:`s` depends on was itself
    drawn, in the guide, from :math:`z_s` (directly or through other draws): then those values
    move with :math:`z_s` and holding them fixed changes the integral. A top-down model
    :math:`z_2 \to z_1 \to x` with a bottom-up guide :math:`x \to z_1 \to z_2` is the usual
    case (the site :math:`z_1`, through :math:`z_2`). Same-order pairs (the guide's
    :math:`z_2` drawn from :math:`z_1`, the model's too, or a model with independent priors)
    and mean-field guides keep the expectation, whatever order the sites come in.

    The dependencies are read with autograd from one trace of the pair on ``x`` (each
    real-valued latent draw made a leaf tensor), in eval mode and with a forked RNG (the
    draws after it are unchanged): a distribution depends on a draw if its parameters are
    computed from it. Discrete latent draws are not followed. Only sites where
    torch has the analytic KL of the pair of distributions count (elsewhere
    ``TraceMeanField_ELBO`` falls back to the Monte Carlo term, which is unbiased).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: a few data points, e.g. ``data[:2]``.
    :returns: site name → the sorted names of the latent sites its prior depends on that the
        guide draws from it; empty if the analytic KL is unbiased at every site.
    """
    # a forked RNG: the probe leaves the caller's draws (training, monitoring) unchanged
    with forked_rng(x), evaluating(model, guide), torch.enable_grad():
        with LeafDraws():
            guide_trace = poutine.trace(guide).get_trace(x)
        latent = {s["name"]: s for s in sample_sites(guide_trace) if not s["is_observed"]}
        leaves = {
            name: site["value"]
            for name, site in latent.items()
            if isinstance(site["value"], torch.Tensor) and site["value"].requires_grad
        }
        if len(leaves) < 2:  # one latent draw: nothing for a prior to depend on
            return {}
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    ancestors = _ancestors(
        {name: _parents(site["fn"], site["value"], leaves) for name, site in latent.items()}
    )
    biased = {}
    for site in sample_sites(model_trace):
        name = site["name"]
        if site["is_observed"] or name not in leaves:
            continue
        if analytic_kl(latent[name]["fn"], site["fn"]) is None:
            continue
        moved = {t for t in _parents(site["fn"], site["value"], leaves) if name in ancestors[t]}
        if moved:
            biased[name] = sorted(moved)
    return biased
