"""The decoder at the posterior mean: reconstruction error and decoder variance."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pyro import poutine

from pvae.contract import evaluating, latent_site, observed_site, with_obs_site
from pvae.distributions import normal_variance
from pvae.validation import check_data, check_pair_data, check_positive_int, check_site

__all__ = [
    "decode_at",
    "decode_at_posterior_mean",
    "decoder_variance",
    "mean_error",
    "reconstruction_error",
]


def decode_at(model, x: torch.Tensor, site: str, loc: torch.Tensor) -> dict:
    """The model's likelihood at ``site`` = ``loc`` (e.g. the posterior mean): the squared
    error of its mean per point, shape ``(n,)``, and its variance per point and pixel (``nan``
    without a Normal likelihood), as ``{"error": ..., "variance": ...}``. Both are of what the
    observed site (:func:`~pvae.contract.observed_site`) observes: ``x``, or its part where the
    model observes several sites."""
    trace = poutine.trace(poutine.condition(model, data={site: loc})).get_trace(x)
    observed = observed_site(trace, conditioned=(site,))
    fn, value = observed["fn"], observed["value"]
    error = (value - fn.mean.expand_as(value)).flatten(1).pow(2).sum(-1)
    variance = normal_variance(fn, value)
    if variance is None:
        variance = torch.full_like(value, math.nan)
    return {"error": error, "variance": variance.flatten(1)}


def decode_at_posterior_mean(model, guide, x: torch.Tensor, site: str | None = None) -> dict:
    """:func:`decode_at` the guide's posterior mean of ``site`` (default: the guide's only
    latent site) for the points ``x``: the squared error of the decoder's mean per point and
    its variance per point and pixel, in eval mode without gradients. Checks nothing but that
    ``site`` is a latent site of the guide."""
    with evaluating(model, guide):
        guide_trace = poutine.trace(guide).get_trace(x)
        site = latent_site(guide_trace, site)
        return decode_at(model, x, site, guide_trace.nodes[site]["fn"].mean)


@with_obs_site
def reconstruction_error(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    site: str | None = None,
    chunk_size: int = 4096,
    obs_site: str | None = None,
) -> torch.Tensor:
    r"""Squared reconstruction error of every point through the posterior mean [1]:

    .. math:: e(x) = \big\| x - \mu_x\big(\mathbb{E}_{q}[z \mid x]\big) \big\|^2,

    summed over the d pixels, where :math:`\mu_x(z)` is the mean of the model's likelihood at
    the observed site given ``z``. For a point-mass guide (the autoencoder) the posterior mean is
    the encoder's output. Runs in eval mode without gradients.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide, whose distribution at ``site`` has a ``mean``.
    :param torch.Tensor x: data, shape ``(n, *event_shape)``.
    :param site: the latent site (default: the guide's only one).
    :param int chunk_size: points per pass (default 4096).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :returns: shape ``(n,)``.

    References

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    check_pair_data(model, guide, x, "x")
    if site is not None:
        check_site(site)
    check_positive_int(chunk_size, "chunk_size")
    errors = [
        decode_at_posterior_mean(model, guide, block, site)["error"]
        for block in x.split(chunk_size)
    ]
    return torch.cat(errors)


def mean_error(x: torch.Tensor) -> float:
    """The reconstruction error of every point by the mean of ``x``, averaged over the points:
    the total variance, what a decoder that ignores z (a collapsed VAE) achieves at best."""
    check_data(x, "x")
    return (x - x.mean(0)).flatten(1).pow(2).sum(-1).mean().item()


def decoder_variance(model, guide, x: torch.Tensor) -> float:
    """The mean variance of the model's Normal likelihood at ``x`` over points and pixels (γ
    for a shared variance; ``nan`` for another likelihood)."""
    with evaluating(model, guide):
        trace = poutine.trace(poutine.replay(model, poutine.trace(guide).get_trace(x)))
        observed = observed_site(trace.get_trace(x))
        variance = normal_variance(observed["fn"], observed["value"])
    return math.nan if variance is None else variance.mean().item()
