"""Per-data-point importance-sampled log p(x), ELBO and IWAE bounds for any model/guide pair."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence
from tqdm import tqdm

from pvae.validation import (
    check_choice,
    check_data,
    check_dtypes,
    check_model_data,
    check_num_levels,
    check_positive_int,
)

__all__ = [
    "ContractError",
    "ImportanceEstimate",
    "bits_per_dim",
    "elbo_per_point",
    "elbo_terms",
    "evaluating",
    "iwae_bound",
    "log_marginal",
    "psis_khat",
]

PROPOSALS = ("guide", "prior")
DEFAULT_CHUNK_SIZE = 16384


class ContractError(ValueError):
    """A model/guide pair does not keep the site contract of :mod:`pvae.models`."""


@dataclass
class ImportanceEstimate:
    """Per-data-point results of :func:`log_marginal`; every field has shape ``(n,)``.

    :ivar estimate: :math:`\\log \\hat p(x)` in nats.
    :ivar stderr: its delta-method Monte Carlo standard error (``nan`` for K = 1).
    :ivar ess: the importance-sampling effective sample size, between 1 and K.
    :ivar khat: the PSIS Pareto shape k̂: < 0.5 good, 0.5–0.7 usable, > 0.7 unreliable;
        ``inf`` where K is too small for the Pareto fit (about K < 30), ``nan`` for K = 1 or
        where every weight is equal (the estimate is then exact).
    :ivar elbo: the mean log-weight, an unbiased estimate of the ELBO (guide proposal).
    :ivar log_weights: the raw log-weights, shape ``(n, K)``, if asked for, else ``None``.
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

    def __len__(self) -> int:
        return self.estimate.shape[0]

    def summary(self) -> dict[str, float]:
        """Averages over the data points: the mean estimate and its standard error (points
        independent), mean ESS, the share of points with k̂ > 0.7, and the mean ELBO."""
        n = len(self)
        return {
            "num_points": n,
            "num_samples": self.num_samples,
            "log_marginal": self.estimate.mean().item(),
            "stderr": (self.stderr.pow(2).sum().sqrt() / n).item(),
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


@contextlib.contextmanager
def evaluating(*modules):
    """Put every :class:`torch.nn.Module` among ``modules`` in eval mode, without gradients,
    and restore their modes afterwards. Plain functions are passed over."""
    modes = [(m, m.training) for m in modules if isinstance(m, torch.nn.Module)]
    for module, _ in modes:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.train(mode)


def _in_data_plate(site) -> bool:
    return any(frame.name == "data" for frame in site["cond_indep_stack"])


def _site_log_prob(site, num_rows: int) -> torch.Tensor:
    log_prob = site["fn"].log_prob(site["value"])
    if site["mask"] is not None:  # poutine.mask: masked-out entries contribute nothing
        log_prob = log_prob.masked_fill(~site["mask"], 0.0)
    if log_prob.shape != (num_rows,):
        raise ContractError(
            f"site {site['name']!r} has log-density shape {tuple(log_prob.shape)}, expected "
            f"({num_rows},): one value per data point. Put every site inside "
            "pyro.plate('data', x.shape[0]) and sum pixel dimensions with .to_event(1)"
        )
    return log_prob


def _sample_sites(trace):
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample"
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary", False)
    ]


def _check_traces(model_trace, guide_trace) -> None:
    model_sites = {site["name"]: site for site in _sample_sites(model_trace)}
    if "x" not in model_sites or not model_sites["x"]["is_observed"]:
        raise ContractError(
            "the model must observe the data at a sample site named 'x' "
            f"(pyro.sample('x', ..., obs=x)); its sample sites are {sorted(model_sites)}"
        )
    for name, site in model_sites.items():
        if not _in_data_plate(site):
            raise ContractError(f"model site {name!r} is not inside pyro.plate('data', ...)")
    if guide_trace is None:
        return
    latent = {name for name, site in model_sites.items() if not site["is_observed"]}
    guided = {site["name"] for site in _sample_sites(guide_trace)}
    if latent != guided:
        raise ContractError(
            f"the guide must sample exactly the model's latent sites {sorted(latent)}, "
            f"but samples {sorted(guided)}"
        )
    for site in _sample_sites(guide_trace):
        if site["is_observed"]:
            raise ContractError(f"the guide observes site {site['name']!r}; guides observe nothing")
        if not _in_data_plate(site):
            raise ContractError(
                f"guide site {site['name']!r} is not inside pyro.plate('data', ...)"
            )


def _traces(model, guide, x: torch.Tensor, proposal: str, check: bool):
    if proposal == "guide":
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    else:
        guide_trace = None
        model_trace = poutine.trace(model).get_trace(x)
    if check:
        _check_traces(model_trace, guide_trace)
    return model_trace, guide_trace


def _check_has_density(guide_trace) -> None:
    for site in _sample_sites(guide_trace):
        fn = site["fn"]
        while isinstance(fn, (dist.Independent, dist.MaskedDistribution)):
            fn = fn.base_dist
        if isinstance(fn, dist.Delta):
            raise ValueError(
                f"the guide's site {site['name']!r} is a point mass (Delta): importance weights "
                "need a guide with a density; use proposal='prior' or a Normal guide"
            )


def _log_weights(model, guide, x: torch.Tensor, proposal: str, check: bool) -> torch.Tensor:
    """log p(x, z) − log q(z | x) for one z ~ q per row of ``x`` (prior proposal: log p(x | z))."""
    num_rows = x.shape[0]
    model_trace, guide_trace = _traces(model, guide, x, proposal, check)
    if check and guide_trace is not None:
        _check_has_density(guide_trace)
    log_weight = x.new_zeros(num_rows)
    for site in _sample_sites(model_trace):
        if proposal == "guide" or site["is_observed"]:
            log_weight = log_weight + _site_log_prob(site, num_rows)
    if guide_trace is not None:
        for site in _sample_sites(guide_trace):
            log_weight = log_weight - _site_log_prob(site, num_rows)
    return log_weight


def _iter_log_weights(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_samples: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    proposal: str = "guide",
    progress: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, log_weights)`` blocks: ``log_weights[i, k]`` is the k-th log importance
    weight of data point ``x[start + i]``, shape ``(points in block, num_samples)``.

    Points and samples are stacked along the data plate, at most ``chunk_size`` rows a pass, so
    memory is bounded by the chunk (plus K weights per point), not by ``num_samples``. The
    callers validate the arguments and set eval mode and ``no_grad`` (see :func:`log_marginal`).
    """
    num_points = x.shape[0]
    check = True
    with tqdm(total=num_points, disable=not progress, desc="log p(x)", unit="pt") as bar:
        if num_samples <= chunk_size:
            points_per_pass = chunk_size // num_samples
            for start in range(0, num_points, points_per_pass):
                block = x[start : start + points_per_pass]
                rows = block.expand(num_samples, *block.shape).reshape(-1, block.shape[-1])
                log_weights = _log_weights(model, guide, rows, proposal, check)
                check = False
                yield start, log_weights.reshape(num_samples, -1).T
                bar.update(block.shape[0])
        else:
            for start in range(num_points):
                parts = []
                for first in range(0, num_samples, chunk_size):
                    size = min(chunk_size, num_samples - first)
                    rows = x[start : start + 1].expand(size, -1)
                    parts.append(_log_weights(model, guide, rows, proposal, check))
                    check = False
                yield start, torch.cat(parts).unsqueeze(0)
                bar.update(1)


def psis_khat(log_weights: torch.Tensor) -> torch.Tensor:
    """Pareto-smoothed importance sampling shape k̂ per row of ``log_weights`` ``(n, K)``,
    from :func:`arviz.psislw` [1]. ``nan`` for K = 1 and for rows whose weights are all equal.

    [1] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    """
    log_weights = log_weights.detach().cpu()
    khat = torch.full(log_weights.shape[:1], math.nan, dtype=log_weights.dtype)
    largest = log_weights.max(-1).values
    spread = largest - log_weights.min(-1).values
    # Weights equal up to round-off (e.g. the exact posterior as proposal) have no tail to fit.
    round_off = 64 * torch.finfo(log_weights.dtype).eps * largest.abs().clamp(min=1)
    rows = (spread > round_off).nonzero().squeeze(-1)
    if log_weights.shape[-1] < 2 or rows.numel() == 0:
        return khat
    values = log_weights[rows].numpy().astype(np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # arviz warns about large k̂ (we report it) and announces its refactor once a day.
        warnings.simplefilter("ignore")
        import arviz

        _, shape = arviz.psislw(values)
    khat[rows] = torch.as_tensor(np.asarray(shape), dtype=khat.dtype)
    return khat


def _summarize(log_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    num_samples = log_weights.shape[-1]
    log_total = torch.logsumexp(log_weights, -1)
    estimate = log_total - math.log(num_samples)
    ess = torch.exp(2 * log_total - torch.logsumexp(2 * log_weights, -1))
    if num_samples > 1:
        weights = torch.exp(log_weights - log_weights.max(-1, keepdim=True).values)
        stderr = weights.std(-1) / (math.sqrt(num_samples) * weights.mean(-1))
    else:
        stderr = torch.full_like(estimate, math.nan)
    return {
        "estimate": estimate,
        "stderr": stderr,
        "ess": ess,
        "elbo": log_weights.mean(-1),
        "khat": psis_khat(log_weights).to(log_weights.device),
    }


def bits_per_dim(log_px, data_dim: int, *, num_levels: int | None = None) -> torch.Tensor | float:
    r"""Convert :math:`\log p(x)` in nats per point to bits per dimension.

    For a discrete likelihood (e.g. Bernoulli on binary pixels), ``num_levels=None``:
    :math:`-\log p(x) / (d \ln 2)`. For a density on data dequantized from ``num_levels``
    grey levels to :math:`(x + u) / L \in [0, 1)` (:func:`pvae.data.from_levels` with
    ``dequantize=True``), each pixel's bin has width :math:`1/L`, so

    .. math:: \text{bits/dim} = -\frac{\log p(x)}{d \ln 2} + \log_2 L,

    an upper bound on the bits/dim of the discrete model that integrates the density over the
    bins [1]. Only numbers on the same data (same levels, same pixels) can be compared: uniform
    pixels cost :math:`\log_2 L` bits/dim (4.09 for 17 levels, 1 for binary data).

    :param log_px: log-likelihoods in nats per point (a float or tensor).
    :param int data_dim: d, the pixels per point.
    :param int num_levels: L for dequantized data, or ``None`` for a discrete likelihood.

    [1] Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
        models. ICLR.
    """
    check_positive_int(data_dim, "data_dim")
    offset = 0.0
    if num_levels is not None:
        offset = math.log2(check_num_levels(num_levels))
    return -log_px / (data_dim * math.log(2)) + offset


def check_contract(model: Callable, guide: Callable | None, x: torch.Tensor) -> None:
    """Run ``guide`` and ``model`` once on ``x`` (eval mode, no gradients) and raise
    :class:`ContractError` if the pair breaks the site contract of :mod:`pvae.models`."""
    with evaluating(model, guide):
        _traces(model, guide, x, "guide" if guide is not None else "prior", check=True)


def _check_estimator_args(model, x, num_samples, chunk_size, proposal, guide=None):
    check_data(x, "x")
    check_model_data(model, x, "x")
    check_dtypes(model, guide, x, "x")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(chunk_size, "chunk_size")
    check_choice(proposal, "proposal", PROPOSALS)


def log_marginal(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_samples: int = 1000,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    proposal: str = "guide",
    return_log_weights: bool = False,
    progress: bool = True,
) -> ImportanceEstimate:
    r"""Importance-sampled :math:`\log p(x)` of every data point, with its diagnostics.

    .. math::

        \log \hat p(x) = \log \frac{1}{K} \sum_{k=1}^K \frac{p(x, z_k)}{q(z_k \mid x)},
        \qquad z_k \sim q(\cdot \mid x),

    computed as a ``logsumexp`` of log-weights, one estimate per data point (log-densities are
    summed over event dimensions and latent sites, never over the data plate; Pyro's
    ``vectorized_importance_weights`` sums over the plate). With ``proposal="prior"``,
    :math:`z_k \sim p(z)` and the weights are :math:`p(x \mid z_k)`.

    :math:`\mathbb{E}[\log \hat p(x)] \le \log p(x)` (Jensen) and equals the IWAE bound
    :math:`\mathcal{L}_K` [1]; an estimate that grows without bound during training therefore
    proves that the likelihood is unbounded. Read ``stderr`` together with ``khat``: the
    delta-method standard error [3] :math:`\mathrm{sd}(w)/(\sqrt{K}\,\bar w)` is itself
    unreliable when k̂ > 0.7 [2].

    ``model`` and ``guide``, where they are modules, are evaluated in eval mode without
    gradients, so evaluation never changes their parameters or buffers (networks a plain
    function closes over are the caller's to put in eval mode). Memory is bounded by
    ``chunk_size`` rows of model evaluations, not by K (plus K weights per point in flight).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide (ignored, and may be ``None``, for ``proposal="prior"``).
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: K, the number of importance samples per point, exactly
        (default 1000).
    :param int chunk_size: the most (sample, point) rows evaluated in one pass (default 16384).
    :param str proposal: ``"guide"`` (default) or ``"prior"``.
    :param bool return_log_weights: also return the ``(n, K)`` log-weights (default ``False``).
    :param bool progress: show a tqdm progress bar over the points (default ``True``).
    :rtype: ImportanceEstimate
    :raises ContractError: if the pair does not keep the site contract.

    References

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    [2] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    [3] Owen, A. B. (2013). Monte Carlo Theory, Methods and Examples, Ch. 9 (ratio estimates).
    """
    _check_estimator_args(model, x, num_samples, chunk_size, proposal, guide)
    if proposal == "guide" and guide is None:
        raise ValueError("guide is None, but proposal='guide' needs a guide")
    # Results go into tensors allocated up front: small long-lived allocations between the
    # large per-pass temporaries would fragment the heap and raise the peak memory.
    fields = {key: x.new_empty(x.shape[0]) for key in ("estimate", "stderr", "ess", "khat", "elbo")}
    if return_log_weights:
        fields["log_weights"] = x.new_empty(x.shape[0], num_samples)
    with evaluating(model, guide):
        for start, log_weights in _iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples,
            chunk_size=chunk_size,
            proposal=proposal,
            progress=progress,
        ):
            block = _summarize(log_weights)
            if return_log_weights:
                block["log_weights"] = log_weights
            for key, value in block.items():
                fields[key][start : start + log_weights.shape[0]] = value
    return ImportanceEstimate(num_samples=num_samples, proposal=proposal, **fields)


def elbo_per_point(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo ELBO of every data point and its standard error, each shape ``(n,)``:

    .. math:: \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x, z) - \log q(z \mid x)]
        = \mathcal{L}_1 \le \log p(x).

    Estimated as the mean of ``num_samples`` log-weights; the standard error is their
    standard deviation over :math:`\sqrt{K}` (``nan`` for K = 1).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: samples per point (default 100).
    :param int chunk_size: the most (sample, point) rows evaluated in one pass (default 16384).
    :param bool progress: show a tqdm progress bar (default ``False``: usually short).
    :returns: ``(elbo, stderr)``, each shape ``(n,)``.
    """
    _check_estimator_args(model, x, num_samples, chunk_size, "guide", guide)
    means, errors = x.new_empty(x.shape[0]), x.new_full((x.shape[0],), math.nan)
    with evaluating(model, guide):
        for start, log_weights in _iter_log_weights(
            model, guide, x, num_samples=num_samples, chunk_size=chunk_size, progress=progress
        ):
            rows = slice(start, start + log_weights.shape[0])
            means[rows] = log_weights.mean(-1)
            if num_samples > 1:
                errors[rows] = log_weights.std(-1) / math.sqrt(num_samples)
    return means, errors


def iwae_bound(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    num_samples: int,
    num_repeats: int = 10,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The IWAE bound :math:`\mathcal{L}_K` [1] of every data point and its standard error:

    .. math:: \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^K
        \frac{p(x, z_k)}{q(z_k \mid x)}\Big], \qquad
        \mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_K \le \mathcal{L}_{K+1} \le \log p(x),

    estimated by averaging ``num_repeats`` independent K-sample estimates.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: K.
    :param int num_repeats: independent K-sample estimates averaged (default 10).
    :param int chunk_size: the most (sample, point) rows evaluated in one pass (default 16384).
    :param bool progress: show a tqdm progress bar (default ``False``).
    :returns: ``(bound, stderr)``, each shape ``(n,)``; ``stderr`` is ``nan`` for one repeat.

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    """
    check_positive_int(num_repeats, "num_repeats")
    _check_estimator_args(model, x, num_samples, chunk_size, "guide", guide)
    means, errors = x.new_empty(x.shape[0]), x.new_full((x.shape[0],), math.nan)
    with evaluating(model, guide):
        for start, log_weights in _iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples * num_repeats,
            chunk_size=chunk_size,
            progress=progress,
        ):
            rows = slice(start, start + log_weights.shape[0])
            grouped = log_weights.reshape(log_weights.shape[0], num_repeats, num_samples)
            estimates = torch.logsumexp(grouped, -1) - math.log(num_samples)
            means[rows] = estimates.mean(-1)
            if num_repeats > 1:
                errors[rows] = estimates.std(-1) / math.sqrt(num_repeats)
    return means, errors


def elbo_terms(
    model: Callable, guide: Callable, x: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, torch.Tensor]:
    r"""One-sample ELBO decomposition of every data point, in eval mode without gradients:

    .. math:: \mathrm{ELBO}(x) = \underbrace{\mathbb{E}_q[\log p(x \mid z)]}_{\text{recon}}
        - \underbrace{\mathrm{KL}(q(z \mid x) \,\|\, p(z))}_{\text{kl}},

    the KL analytic where torch has it (as in ``TraceMeanField_ELBO``), else a one-sample
    estimate. Returns ``recon``, ``kl`` and ``elbo`` (shape ``(n,)``) and ``min_variance``, the
    smallest variance of a Normal likelihood at site ``"x"`` (``nan`` for other likelihoods),
    with the row of ``x`` and the pixel where it occurs (``min_variance_point``,
    ``min_variance_pixel``; −1 without a Normal likelihood).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int chunk_size: the most points evaluated at once (default 16384).
    """
    check_data(x, "x")
    check_model_data(model, x, "x")
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
        model_trace, guide_trace = _traces(model, guide, x, "guide", check=True)
        recon = x.new_zeros(num_rows)
        kl = x.new_zeros(num_rows)
        guide_sites = {site["name"]: site for site in _sample_sites(guide_trace)}
        for site in _sample_sites(model_trace):
            if site["is_observed"]:
                recon = recon + _site_log_prob(site, num_rows)
                continue
            q_site = guide_sites[site["name"]]
            try:
                site_kl = kl_divergence(q_site["fn"], site["fn"])
            except NotImplementedError:
                site_kl = _site_log_prob(q_site, num_rows) - _site_log_prob(site, num_rows)
            kl = kl + site_kl.expand(num_rows)
        variance, point, pixel = _min_variance(model_trace.nodes["x"]["fn"], x)
        return {
            "recon": recon,
            "kl": kl,
            "elbo": recon - kl,
            "min_variance": variance,
            "min_variance_point": point,
            "min_variance_pixel": pixel,
        }


def _min_variance(fn, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """The smallest variance of a Normal likelihood and its (row, pixel) in ``x``."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    if isinstance(fn, torch.distributions.Normal):
        variance = fn.scale.expand_as(x).pow(2)
    elif hasattr(fn, "log_variance"):  # pvae.constructions.NormalLogVariance
        variance = fn.log_variance.expand_as(x).exp()
    else:
        return x.new_tensor(math.nan), -1, -1
    point, pixel = divmod(int(variance.argmin()), x.shape[-1])
    return variance[point, pixel], point, pixel
