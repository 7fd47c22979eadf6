"""The ELBO's reconstruction and KL terms per point and the smallest decoder variance."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from pvae.contract import (
    evaluating,
    observed_site,
    sample_sites,
    site_log_prob,
    trace_pair,
    with_obs_site,
)
from pvae.distributions import normal_variance
from pvae.estimation.meanfield import analytic_kl, mean_field_bias
from pvae.validation import check_pair_data, check_positive_int

__all__ = ["elbo_terms", "min_variance"]


@with_obs_site
def elbo_terms(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    chunk_size: int = 16384,
    obs_site: str | None = None,
) -> dict[str, torch.Tensor]:
    r"""One-sample ELBO decomposition of every data point, in eval mode without gradients:

    .. math:: \mathrm{ELBO}(x) = \underbrace{\mathbb{E}_q[\log p(x \mid z)]}_{\text{recon}}
        - \underbrace{\mathrm{KL}(q(z \mid x) \,\|\, p(z))}_{\text{kl}},

    the KL analytic where torch has it (as in ``TraceMeanField_ELBO``), else a one-sample
    estimate. At a site where the analytic KL would not have the ELBO's expectation (its prior
    depends on a latent the guide draws from it: :func:`~pvae.estimation.mean_field_bias`)
    the one-sample estimate is used there too, so ``elbo`` is always an unbiased estimate of
    the ELBO. Returns ``recon``, ``kl`` and ``elbo`` (shape ``(n,)``) and ``min_variance``, the
    smallest variance of a Normal likelihood at the observed site (``nan`` for others),
    with the row of ``x`` and the pixel where it occurs (``min_variance_point``,
    ``min_variance_pixel``; −1 without a Normal likelihood).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int chunk_size: the most points evaluated at once (default 16384).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    """
    check_pair_data(model, guide, x, "x")
    check_positive_int(chunk_size, "chunk_size")
    sampled = set(mean_field_bias(model, guide, x[:2]))
    parts = [_elbo_terms(model, guide, block, sampled) for block in x.split(chunk_size)]
    terms = {key: torch.cat([part[key] for part in parts]) for key in ("recon", "kl", "elbo")}
    minima = torch.stack([part["min_variance"] for part in parts])
    # nan (no Normal likelihood) sorts last; the first chunk then stands for all
    best = int(torch.nan_to_num(minima, nan=math.inf).argmin())
    terms["min_variance"] = minima[best]
    terms["min_variance_point"] = parts[best]["min_variance_point"] + best * chunk_size
    terms["min_variance_pixel"] = parts[best]["min_variance_pixel"]
    return terms


def _elbo_terms(
    model: Callable, guide: Callable, x: torch.Tensor, sampled: set[str]
) -> dict[str, torch.Tensor]:
    num_rows = x.shape[0]
    with evaluating(model, guide):
        model_trace, guide_trace = trace_pair(model, guide, x, "guide", check=True)
        recon = x.new_zeros(num_rows)
        kl = x.new_zeros(num_rows)
        guide_sites = {site["name"]: site for site in sample_sites(guide_trace)}
        for site in sample_sites(model_trace):
            if site["is_observed"]:
                recon = recon + site_log_prob(site, (num_rows,))
                continue
            q_site = guide_sites[site["name"]]
            site_kl = None if site["name"] in sampled else analytic_kl(q_site["fn"], site["fn"])
            if site_kl is None:
                site_kl = site_log_prob(q_site, (num_rows,)) - site_log_prob(site, (num_rows,))
            kl = kl + site_kl.expand(num_rows)
        observed = observed_site(model_trace)  # its variance, of the entries it observes
        variance, point, pixel = min_variance(observed["fn"], observed["value"])
        return {
            "recon": recon,
            "kl": kl,
            "elbo": recon - kl,
            "min_variance": variance,
            "min_variance_point": point,
            "min_variance_pixel": pixel,
        }


def min_variance(fn, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """The smallest variance of a Normal likelihood and its (row, pixel) in ``x``, the pixel
    counted in the flattened point (row-major, as ``x[row].flatten()``)."""
    variance = normal_variance(fn, x)
    if variance is None:
        return x.new_tensor(math.nan), -1, -1
    variance = variance.flatten(1)
    point, pixel = divmod(int(variance.argmin()), variance.shape[1])
    return variance[point, pixel], point, pixel
