"""The ELBO's reconstruction and KL terms per point and the smallest decoder variance."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.distributions import kl_divergence

from pvae.contract import evaluating, observed_site, sample_sites, site_log_prob, trace_pair
from pvae.distributions import normal_variance
from pvae.validation import check_pair_data, check_positive_int

__all__ = ["elbo_terms", "min_variance"]


def elbo_terms(
    model: Callable, guide: Callable, x: torch.Tensor, *, chunk_size: int = 16384
) -> dict[str, torch.Tensor]:
    r"""One-sample ELBO decomposition of every data point, in eval mode without gradients:

    .. math:: \mathrm{ELBO}(x) = \underbrace{\mathbb{E}_q[\log p(x \mid z)]}_{\text{recon}}
        - \underbrace{\mathrm{KL}(q(z \mid x) \,\|\, p(z))}_{\text{kl}},

    the KL analytic where torch has it (as in ``TraceMeanField_ELBO``), else a one-sample
    estimate. Returns ``recon``, ``kl`` and ``elbo`` (shape ``(n,)``) and ``min_variance``, the
    smallest variance of a Normal likelihood at the observed site (``nan`` for others),
    with the row of ``x`` and the pixel where it occurs (``min_variance_point``,
    ``min_variance_pixel``; −1 without a Normal likelihood).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int chunk_size: the most points evaluated at once (default 16384).
    """
    check_pair_data(model, guide, x, "x")
    check_positive_int(chunk_size, "chunk_size")
    parts = [_elbo_terms(model, guide, block) for block in x.split(chunk_size)]
    terms = {key: torch.cat([part[key] for part in parts]) for key in ("recon", "kl", "elbo")}
    minima = torch.stack([part["min_variance"] for part in parts])
    # nan (no Normal likelihood) sorts last; the first chunk then stands for all
    best = int(torch.nan_to_num(minima, nan=math.inf).argmin())
    terms["min_variance"] = minima[best]
    terms["min_variance_point"] = parts[best]["min_variance_point"] + best * chunk_size
    terms["min_variance_pixel"] = parts[best]["min_variance_pixel"]
    return terms


def _elbo_terms(model: Callable, guide: Callable, x: torch.Tensor) -> dict[str, torch.Tensor]:
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
            try:
                site_kl = kl_divergence(q_site["fn"], site["fn"])
            except NotImplementedError:
                site_kl = site_log_prob(q_site, (num_rows,)) - site_log_prob(site, (num_rows,))
            kl = kl + site_kl.expand(num_rows)
        variance, point, pixel = min_variance(observed_site(model_trace)["fn"], x)
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
