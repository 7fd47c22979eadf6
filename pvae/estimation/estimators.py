"""Per-data-point importance-sampled log p(x), ELBO and IWAE bounds for any model/guide pair."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch

from pvae.contract import evaluating, observing, with_obs_site
from pvae.estimation.memory import check_pass_options
from pvae.estimation.passes import check_passes, iter_log_weights
from pvae.estimation.psis import psis_khat
from pvae.estimation.result import ImportanceEstimate, log_mean_weight
from pvae.validation import (
    KEY_LIMIT,
    check_bool,
    check_choice,
    check_nonnegative_int,
    check_pair_data,
    check_positive_int,
    check_seed,
)

__all__ = ["PROPOSALS", "check_log_marginal_args", "elbo_per_point", "iwae_bound", "log_marginal"]

PROPOSALS = ("guide", "prior")


def _summarize(log_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    num_samples = log_weights.shape[-1]
    estimate, stderr = log_mean_weight(log_weights)
    log_total = estimate + math.log(num_samples)
    ess = torch.exp(2 * log_total - torch.logsumexp(2 * log_weights, -1))
    # The estimates from the first K/4 and K/2 draws: nested, so their disagreement with the
    # full estimate measures how far it still moves with K (the trust rule reads it).
    nested = torch.full(
        (*estimate.shape, 2), math.nan, dtype=estimate.dtype, device=estimate.device
    )
    if num_samples >= 4:
        for column, size in enumerate((num_samples // 4, num_samples // 2)):
            nested[..., column] = log_mean_weight(log_weights[..., :size])[0]
    return {
        "estimate": estimate,
        "stderr": stderr,
        "ess": ess,
        "elbo": log_weights.mean(-1),
        "khat": psis_khat(log_weights).to(log_weights.device),
        "nested": nested,
    }


def _check_estimator_args(
    model, guide, x, num_samples, proposal, *, chunk_size, max_memory, progress, seed, vectorize
) -> dict:
    """Check the arguments the three estimators share; return the pass options."""
    check_pair_data(model, guide, x, "x")
    check_positive_int(num_samples, "num_samples")
    check_pass_options(chunk_size, max_memory, "rows per pass")
    check_choice(proposal, "proposal", PROPOSALS)
    check_bool(vectorize, "vectorize", allow_none=True)
    if seed is not None:
        check_seed(seed, limit=KEY_LIMIT)
    if proposal == "guide" and guide is None:
        raise ValueError("guide is None, but proposal='guide' needs a guide")
    check_bool(progress, "progress")
    return {
        "chunk_size": chunk_size,
        "max_memory": max_memory,
        "progress": progress,
        "seed": seed,
        "vectorize": vectorize,
    }


def _per_point(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    reduce: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    outputs: dict[str, tuple[int, ...]],
    *,
    num_samples: int,
    extra_bytes_per_point: int = 0,
    **passes,
) -> dict[str, torch.Tensor]:
    """The driver of the three estimators: ``reduce`` maps each block of log-weights ``(points,
    num_samples)`` to per-point results, gathered into tensors of shape ``(n, *outputs[key])``
    (``nan`` where ``reduce`` leaves a key out), in eval mode under ``torch.inference_mode``."""
    # Allocated up front: small long-lived allocations between the large per-pass temporaries
    # would fragment the heap and raise the peak memory.
    fields = {key: x.new_full((x.shape[0], *shape), math.nan) for key, shape in outputs.items()}
    with evaluating(model, guide), torch.inference_mode():
        for start, log_weights in iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples,
            extra_bytes_per_point=extra_bytes_per_point,
            **passes,
        ):
            rows = slice(start, start + log_weights.shape[0])
            for key, value in reduce(log_weights).items():
                fields[key][rows] = value
    return fields


@with_obs_site
def log_marginal(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_samples: int = 1000,
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    proposal: str = "guide",
    return_log_weights: bool = False,
    progress: bool = True,
    seed: int | None = None,
    vectorize: bool | None = None,
    obs_site: str | None = None,
    first_point: int = 0,
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

    ``model`` and ``guide``, where they are modules, are evaluated in eval mode under
    ``torch.inference_mode``, so evaluation never changes their parameters or buffers
    (networks a plain function closes over are the caller's to put in eval mode).

    Points and samples are evaluated in passes of at most ``chunk_size`` (sample, point) rows;
    by default the rows per pass are chosen to fit ``max_memory`` (default 1 GiB; on CPU at
    most 16 MiB of temporaries a pass, past which passes get no faster), as measured on a
    probe pass. Memory is bounded by the pass, not by K. The samples of a point come from
    noise keyed to (``seed``, point, sample index), so the results do not depend on
    ``chunk_size``, ``max_memory`` or the layout (up to float rounding) for guides built from
    Normal and multivariate Normal distributions (also independent, masked and transformed);
    other distributions draw from torch's global RNG. Where the pair broadcasts over a
    leading plate of samples (``vectorize``), the guide runs once per point and only the
    model once per sample.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide (ignored, and may be ``None``, for ``proposal="prior"``).
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: K, the number of importance samples per point, exactly
        (default 1000).
    :param int chunk_size: the most (sample, point) rows evaluated in one pass; overrides
        ``max_memory`` (give one of them).
    :param max_memory: the memory budget of the passes and results, in bytes or as a string
        like ``"512MiB"`` (used when ``chunk_size`` is ``None``; by default ``"1GiB"`` for the
        passes, beside the results).
    :param str proposal: ``"guide"`` (default) or ``"prior"``.
    :param bool return_log_weights: also return the ``(n, K)`` log-weights (default ``False``).
    :param bool progress: show a tqdm progress bar over the points (default ``True``).
    :param int seed: the key of the draws, an integer in ``[0, 2**62)``; ``None`` (default)
        draws one from torch's global RNG, so ``torch.manual_seed`` makes a call repeatable.
    :param vectorize: ``None`` (default): evaluate the K samples of a point on a
        ``pyro.plate`` of particles where the pair broadcasts over it (checked on one point
        against the one-row-per-sample layout), else one row per sample; ``True``: require the
        particle plate; ``False``: one row per sample.
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :param int first_point: the index of ``x[0]`` in the draws' key (default 0): a call on
        the shard ``x_all[a:b]`` with ``first_point=a`` and the same ``seed`` gives what one
        call on ``x_all`` gives for those points (:func:`pvae.estimation.sharded_log_marginal`
        runs the shards as Ray tasks).
    :rtype: ImportanceEstimate
    :raises ContractError: if the pair does not keep the site contract.

    References

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    [2] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    [3] Owen, A. B. (2013). Monte Carlo Theory, Methods and Examples, Ch. 9 (ratio estimates).
    """
    passes = _check_estimator_args(
        model,
        guide,
        x,
        num_samples,
        proposal,
        chunk_size=chunk_size,
        max_memory=max_memory,
        progress=progress,
        seed=seed,
        vectorize=vectorize,
    )
    check_bool(return_log_weights, "return_log_weights")
    check_nonnegative_int(first_point, "first_point")
    outputs = {key: () for key in ("estimate", "stderr", "ess", "khat", "elbo")}
    outputs["nested"] = (2,)
    if return_log_weights:
        outputs["log_weights"] = (num_samples,)

    def reduce(log_weights):
        block = _summarize(log_weights)
        if return_log_weights:
            block["log_weights"] = log_weights
        return block

    fields = _per_point(
        model,
        guide,
        x,
        reduce,
        outputs,
        num_samples=num_samples,
        proposal=proposal,
        extra_bytes_per_point=num_samples * x.element_size() if return_log_weights else 0,
        first_point=first_point,
        **passes,
    )
    return ImportanceEstimate(num_samples=num_samples, proposal=proposal, **fields)


def check_log_marginal_args(model, guide, x, **options) -> set[str]:
    """Check a call ``log_marginal(model, guide, x, **options)`` without running it, for callers
    that send the call elsewhere (:func:`pvae.sharded_log_marginal`'s tasks) and should refuse
    it here, once: an unknown keyword (``TypeError``), every value :func:`log_marginal`
    checks, and the pair on one point as its first pass would
    (:func:`~pvae.estimation.passes.check_passes`).

    :returns: the proposal's latent sites whose draws are not keyed to (seed, point, sample).
    """
    try:
        bound = inspect.signature(log_marginal).bind(model, guide, x, **options)
    except TypeError as error:  # an unknown keyword: Python's message names it, not the call
        raise TypeError(f"log_marginal {error}") from None
    bound.apply_defaults()
    given = bound.arguments
    passes = _check_estimator_args(
        model,
        guide,
        x,
        given["num_samples"],
        given["proposal"],
        chunk_size=given["chunk_size"],
        max_memory=given["max_memory"],
        progress=given["progress"],
        seed=given["seed"],
        vectorize=given["vectorize"],
    )
    check_bool(given["return_log_weights"], "return_log_weights")
    check_nonnegative_int(given["first_point"], "first_point")
    del passes["progress"]
    with observing(given["obs_site"]):  # checks its value; the pair is traced with it
        return check_passes(
            model,
            guide,
            x,
            num_samples=given["num_samples"],
            proposal=given["proposal"],
            first_point=given["first_point"],
            **passes,
        )


@with_obs_site
def elbo_per_point(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    seed: int | None = None,
    vectorize: bool | None = None,
    obs_site: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo ELBO of every data point and its standard error, each shape ``(n,)``:

    .. math:: \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x, z) - \log q(z \mid x)]
        = \mathcal{L}_1 \le \log p(x).

    Estimated as the mean of ``num_samples`` log-weights; the standard error is their
    standard deviation over :math:`\sqrt{K}` (``nan`` for K = 1). Passes and draws as in
    :func:`log_marginal`, which reads the same draws for the same ``seed``.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: samples per point (default 100).
    :param chunk_size: as in :func:`log_marginal`; so are ``max_memory``, ``seed`` and
        ``vectorize``.
    :param bool progress: show a tqdm progress bar (default ``False``: usually short).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :returns: ``(elbo, stderr)``, each shape ``(n,)``.
    """
    passes = _check_estimator_args(
        model,
        guide,
        x,
        num_samples,
        "guide",
        chunk_size=chunk_size,
        max_memory=max_memory,
        progress=progress,
        seed=seed,
        vectorize=vectorize,
    )

    def reduce(log_weights):
        if num_samples == 1:
            return {"elbo": log_weights.mean(-1)}
        return {
            "elbo": log_weights.mean(-1),
            "stderr": log_weights.std(-1) / math.sqrt(num_samples),
        }

    fields = _per_point(
        model,
        guide,
        x,
        reduce,
        {"elbo": (), "stderr": ()},
        num_samples=num_samples,
        **passes,
    )
    return fields["elbo"], fields["stderr"]


@with_obs_site
def iwae_bound(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    num_samples: int,
    num_repeats: int = 10,
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    seed: int | None = None,
    vectorize: bool | None = None,
    obs_site: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The IWAE bound :math:`\mathcal{L}_K` [1] of every data point and its standard error:

    .. math:: \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^K
        \frac{p(x, z_k)}{q(z_k \mid x)}\Big], \qquad
        \mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_K \le \mathcal{L}_{K+1} \le \log p(x),

    estimated by averaging ``num_repeats`` independent K-sample estimates. Passes and draws as
    in :func:`log_marginal`.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: K.
    :param int num_repeats: independent K-sample estimates averaged (default 10).
    :param chunk_size: as in :func:`log_marginal`; so are ``max_memory``, ``seed`` and
        ``vectorize``.
    :param bool progress: show a tqdm progress bar (default ``False``).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :returns: ``(bound, stderr)``, each shape ``(n,)``; ``stderr`` is ``nan`` for one repeat.

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    """
    check_positive_int(num_repeats, "num_repeats")
    passes = _check_estimator_args(
        model,
        guide,
        x,
        num_samples,
        "guide",
        chunk_size=chunk_size,
        max_memory=max_memory,
        progress=progress,
        seed=seed,
        vectorize=vectorize,
    )

    def reduce(log_weights):
        grouped = log_weights.reshape(log_weights.shape[0], num_repeats, num_samples)
        estimates = torch.logsumexp(grouped, -1) - math.log(num_samples)
        if num_repeats == 1:
            return {"bound": estimates.mean(-1)}
        return {
            "bound": estimates.mean(-1),
            "stderr": estimates.std(-1) / math.sqrt(num_repeats),
        }

    fields = _per_point(
        model,
        guide,
        x,
        reduce,
        {"bound": (), "stderr": ()},
        num_samples=num_samples * num_repeats,
        **passes,
    )
    return fields["bound"], fields["stderr"]
