"""Latent-space diagnostics: KL per dimension, activity, mutual information, encoder scales."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.distributions import Independent, Normal, kl_divergence

from pvae.contract import evaluating, latent_site, trace_pair, with_obs_site
from pvae.diagnostics.decoder import decode_at
from pvae.diagnostics.likelihood import read_likelihood
from pvae.diagnostics.taxonomy import LatentDiagnostics
from pvae.validation import check_pair_data, check_positive_float, check_positive_int, check_site

__all__ = ["ACTIVE_UNIT_THRESHOLD", "diagnose"]

#: Burda et al.'s threshold on Cov_x(E_q[z_u | x]) for an active unit.
ACTIVE_UNIT_THRESHOLD = 0.01


def _diagonal_normal(fn, site: str) -> Normal:
    base = fn.base_dist if isinstance(fn, Independent) else fn
    if not isinstance(base, Normal) or (
        isinstance(fn, Independent) and fn.reinterpreted_batch_ndims != 1
    ):
        raise NotImplementedError(
            f"latent site {site!r} is a {type(fn).__name__}; the diagnostics need a diagonal "
            "Normal over one event dimension in the guide and the prior, like pvae's VAE"
        )
    return base


@with_obs_site
def diagnose(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    site: str | None = None,
    threshold: float = ACTIVE_UNIT_THRESHOLD,
    num_samples: int = 1,
    chunk_size: int = 1024,
    obs_site: str | None = None,
) -> LatentDiagnostics:
    r"""Posterior-collapse diagnostics of the latent ``site`` over the whole data set ``x`` [1, 2].

    - KL per dimension, analytic: :math:`\frac1n\sum_i \mathrm{KL}(q(z_u|x_i) \| p(z_u))`;
    - activity :math:`A_u = \mathrm{Cov}_x\big(\mathbb{E}_{q}[z_u \mid x]\big)`, active if
      :math:`A_u > 0.01` [1];
    - mutual information, Monte Carlo over the *whole* data set (a per-minibatch aggregate
      posterior biases it):

      .. math:: I(x; z) = \frac1n \sum_i \mathbb{E}_{q(z|x_i)}\Big[\log q(z \mid x_i)
          - \log \frac1n \sum_j q(z \mid x_j)\Big].

    A decoder that ignores z lets the optimum set every q(z|x) to the prior: KL 0, no active
    unit, I(x; z) = 0.

    :param model: a model keeping the site contract of :mod:`pvae.models`, whose prior on
        ``site`` is a diagonal Normal.
    :param guide: its guide, a diagonal Normal on ``site``.
    :param torch.Tensor x: the data set, shape ``(n, d)``.
    :param site: the latent site (default: the guide's only one; with several, name one).
    :param float threshold: the activity threshold (default 0.01).
    :param int num_samples: z samples per point for the mutual information (default 1).
    :param int chunk_size: points per pass (default 1024; the aggregate posterior is
        evaluated on chunks of samples against all n points).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).

    References

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    [2] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    check_pair_data(model, guide, x, "x")
    if site is not None:
        check_site(site)
    threshold = check_positive_float(threshold, "threshold")  # a float: 2**64 compares
    check_positive_int(num_samples, "num_samples")
    check_positive_int(chunk_size, "chunk_size")
    locs, scales, kls, errors, variances = [], [], [], [], []
    with evaluating(model, guide):
        for block in x.split(chunk_size):
            model_trace, guide_trace = trace_pair(model, guide, block, "guide", check=True)
            site = latent_site(guide_trace, site)
            q = _diagonal_normal(guide_trace.nodes[site]["fn"], site)
            p = _diagonal_normal(model_trace.nodes[site]["fn"], site)
            locs.append(q.loc.expand(q.batch_shape))
            scales.append(q.scale.expand(q.batch_shape))
            kls.append(kl_divergence(q, p).expand(q.batch_shape))
            decoded = decode_at(model, block, site, locs[-1])
            errors.append(decoded["error"])
            variances.append(decoded["variance"])
        loc, scale = torch.cat(locs), torch.cat(scales)
        activity = loc.var(0, correction=0)
        information = _mutual_information(loc, scale, num_samples, chunk_size)
        variance = torch.cat(variances)
    likelihood = read_likelihood(model, guide, x[:2])
    return LatentDiagnostics(
        kl_per_dim=torch.cat(kls).mean(0),
        activity=activity,
        active=activity > threshold,
        mutual_information=information,
        scales=scale,
        reconstruction_error=float(torch.cat(errors).mean()),
        decoder_variance=float(variance.mean()),
        min_decoder_variance=float(variance.min()),
        variance_learned=likelihood.variance_learned,
        log_density_bound=likelihood.log_density_bound,
        likelihood_family=likelihood.family,
        variance_depends_on_z=likelihood.variance_depends_on_z,
        data_eigenvalues=torch.linalg.eigvalsh(torch.cov(x.flatten(1).T, correction=0)).flip(0)
        if x.shape[0] > 1
        else x.new_zeros(x[0].numel()),
    )


def _mutual_information(loc, scale, num_samples: int, chunk_size: int) -> float:
    num_points = loc.shape[0]
    aggregate = Normal(loc, scale)  # q(z | x_j) for every j, batch (n, q)
    total = 0.0
    for start in range(0, num_points, chunk_size):
        q_i = Normal(loc[start : start + chunk_size], scale[start : start + chunk_size])
        z = q_i.sample((num_samples,))  # (s, b, q)
        log_q = q_i.log_prob(z).sum(-1)  # (s, b)
        # log q(z) = logsumexp_j log q(z | x_j) − log n, over the whole data set
        pairwise = aggregate.log_prob(z.unsqueeze(-2)).sum(-1)  # (s, b, n)
        log_aggregate = torch.logsumexp(pairwise, -1) - math.log(num_points)
        total += (log_q - log_aggregate).sum().item()
    return total / (num_points * num_samples)
