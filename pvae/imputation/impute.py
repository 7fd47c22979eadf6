"""Missing-data imputation with a trained pair: Metropolis-within-Gibbs, pseudo-Gibbs and
importance resampling, chains vectorized over points."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable

import pyro
import torch
from torch.distributions import constraints
from tqdm.auto import tqdm

from pvae.contract import base_support, evaluating, observed_site, trace_pair, with_obs_site
from pvae.estimation.psis import psis_khat
from pvae.finite import nonfinite_density_error
from pvae.imputation.masks import check_mask, mask_from_nan
from pvae.imputation.passes import PairPass, check_imputable, run_pair
from pvae.imputation.result import METHODS, Imputation
from pvae.validation import (
    check_bool,
    check_choice,
    check_data,
    check_dtypes,
    check_model_data,
    check_pair,
    check_positive_int,
    check_seed,
)

__all__ = ["impute"]

#: The most data entries (rows × entries per point) one pass holds when ``chunk_size`` is
#: ``None``: 4 Mi, 32 MiB of float64 per copy of the completed data.
_PASS_ENTRIES = 2**22


def _check_init(init, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The completed data the samplers start from: ``x`` with the missing entries ``init``."""
    if isinstance(init, torch.Tensor):
        if init.shape != x.shape or init.dtype != x.dtype:
            raise ValueError(
                f"init must be a number or a tensor of x's shape {tuple(x.shape)} and dtype "
                f"{x.dtype}, got shape {tuple(init.shape)} and dtype {init.dtype}"
            )
        start = torch.where(mask, x, init)
        label = "init"
    else:
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ValueError(f"init must be a finite number or a tensor, got {init!r}")
        start = torch.where(mask, x, torch.as_tensor(float(init), dtype=x.dtype))
        label = "x (its missing entries filled with init)"
    check_data(start, label)
    return start


def _finite_or_raise(log_weight: torch.Tensor, model, guide, rows, points: int, first: int):
    """Refuse NaN or +inf log-weights: overflow, not a density ratio."""
    bad = log_weight.isnan() | (log_weight == math.inf)
    if bool(bad.any()):
        row = int(bad.nonzero()[0])
        raise nonfinite_density_error(
            model,
            guide,
            rows,
            row,
            "the log-density ratio p(x, z) / q(z | x) is not finite",
            label=f"the completed point {first + row % points}",
        )


def _select(accept: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(accept.reshape(-1, *[1] * (new.dim() - 1)), new, old)


def _stacked(tensor: torch.Tensor, copies: int) -> torch.Tensor:
    """``copies`` copies of ``tensor`` one after the other along the rows: row
    ``c · n + i`` is ``tensor[i]``."""
    return tensor.repeat(copies, *[1] * (tensor.dim() - 1))


def _chains(model, guide, start, mask, *, method, num_steps, num_samples, bar, first):
    """``num_samples`` chains for each point of ``start`` (completed data), run together as
    rows; returns the last states, E[x | z] at them, the acceptance and log p(x̃, z) per step."""
    points = start.shape[0]
    observed = _stacked(start, num_samples)
    keep = _stacked(mask, num_samples)
    rows = observed
    accepted = torch.zeros(rows.shape[0], dtype=start.dtype, device=start.device)
    trace, latents = [], None
    for step in range(num_steps):
        proposal = run_pair(model, guide, rows)
        if method == "pseudo-gibbs" or latents is None:  # the first step starts the chain
            chosen, accept = proposal, None
            latents = proposal.latents
            log_joint = proposal.log_joint()
            _finite_or_raise(log_joint - proposal.log_guide, model, guide, rows, points, first)
        else:
            current = run_pair(model, guide, rows, latents)
            new = proposal.log_joint() - proposal.log_guide
            old = current.log_joint() - current.log_guide
            _finite_or_raise(new, model, guide, rows, points, first)
            _finite_or_raise(old, model, guide, rows, points, first)
            accept = torch.rand_like(new).log() < new - old
            accepted += accept
            latents = {
                k: _select(accept, v, current.latents[k]) for k, v in proposal.latents.items()
            }
            log_joint = torch.where(accept, proposal.log_joint(), current.log_joint())
            chosen = current
        trace.append(log_joint)
        draw = (
            proposal.sample()
            if accept is None
            else _select(accept, proposal.sample(), chosen.sample())
        )
        if step == num_steps - 1:
            means = _last_means(proposal, chosen, accept, draw)
        rows = torch.where(keep, observed, draw)
        bar.update(1)
    acceptance = accepted.reshape(num_samples, points).mean(0) / max(num_steps - 1, 1)
    shape = (num_samples, points, *start.shape[1:])
    return rows.reshape(shape), means.reshape(shape), acceptance, torch.stack(trace)


def _last_means(proposal: PairPass, current: PairPass, accept, draw) -> torch.Tensor:
    """E[x | z] at the chains' last latents (the draw itself where there is no closed form)."""
    new = proposal.mean()
    if new is None:
        return draw
    return new if accept is None else _select(accept, new, current.mean())


def _split_rhat(trace: torch.Tensor, num_samples: int, points: int) -> torch.Tensor:
    """Rank-normalized split-R̂ per point of the log p(x̃, z) trace ``(steps, chains · points)``
    over its second half, by arviz; ``nan`` with fewer than 4 draws there."""
    half = trace[trace.shape[0] // 2 :]
    if half.shape[0] < 4:
        return torch.full((points,), math.nan, dtype=trace.dtype)
    import arviz as az  # its import costs seconds: only where chains ran

    draws = half.reshape(half.shape[0], num_samples, points).transpose(0, 1).cpu().numpy()
    with warnings.catch_warnings():  # many chains of few draws is what is asked here
        warnings.filterwarnings("ignore", "More chains", UserWarning)
        values = az.rhat(az.convert_to_dataset(draws.astype("float64")))["x"].values
    return torch.as_tensor(values, dtype=trace.dtype).reshape(points)


def _importance(model, guide, start, mask, *, num_particles, num_samples):
    """Sampling importance resampling (Rubin 1988): K proposals from q(z | x̃), weighted by
    p(x^o, z) / q(z | x̃), then a resampled z and x^m ~ p(x^m | z) for each imputation."""
    points = start.shape[0]
    rows = _stacked(start, num_particles)
    flat_mask = _stacked(mask, num_particles).reshape(rows.shape[0], -1)
    proposal = run_pair(model, guide, rows)
    log_weights = proposal.log_joint(flat_mask) - proposal.log_guide
    _finite_or_raise(log_weights, model, guide, rows, points, 0)
    log_weights = log_weights.reshape(num_particles, points).T  # (points, K)
    weights = torch.softmax(log_weights, -1)
    if not bool(torch.isfinite(weights).all()):  # every weight −inf: no proposal has density
        point = int((~torch.isfinite(weights).all(-1)).nonzero()[0])
        raise nonfinite_density_error(
            model, guide, rows, point, "every proposal has zero density p(x^o, z)"
        )
    chosen = torch.multinomial(weights, num_samples, replacement=True)  # (points, S)
    flat_choice = (chosen.T * points + torch.arange(points, device=chosen.device)).reshape(-1)
    latents = {k: v[flat_choice] for k, v in proposal.latents.items()}
    redraw = run_pair(model, guide, _stacked(start, num_samples), latents)
    samples = torch.where(
        _stacked(mask, num_samples), _stacked(start, num_samples), redraw.sample()
    )
    shape = (num_samples, points, *start.shape[1:])
    means = proposal.mean()
    if means is None:  # the resampled draws' own mean
        mean = samples.reshape(shape).mean(0)
        stderr = samples.reshape(shape).std(0) / math.sqrt(num_samples)
    else:
        means = means.reshape(num_particles, points, -1).transpose(0, 1)  # (points, K, D)
        mean = (weights.unsqueeze(-1) * means).sum(1)
        spread = (weights.unsqueeze(-1) * (means - mean.unsqueeze(1))).square().sum(1)
        mean, stderr = mean.reshape(start.shape), spread.sqrt().reshape(start.shape)
    mean, stderr = torch.where(mask, start, mean), stderr.where(~mask, 0.0)
    ess = 1 / weights.square().sum(-1)
    return samples.reshape(shape), mean, stderr, ess, psis_khat(log_weights)


@with_obs_site
def impute(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    method: str = "mwg",
    num_steps: int = 200,
    num_samples: int = 20,
    num_particles: int = 1000,
    init: float | torch.Tensor = 0.0,
    chunk_size: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    obs_site: str | None = None,
) -> Imputation:
    r"""Multiple imputations of the missing entries of ``x`` from a trained model/guide pair:
    draws from :math:`p(x^m \mid x^o)` under the model.

    ``method="mwg"``: Mattei & Frellsen's Metropolis-within-Gibbs [1]. The chain's state is
    :math:`(z, \hat x^m)`; each step proposes :math:`\tilde z \sim q(z \mid x^o, \hat x^m)`
    from the guide, accepts it with probability

    .. math:: \rho = \min\Big(1, \frac{p(x^o, \hat x^m \mid \tilde z)\, p(\tilde z)
        \,/\, q(\tilde z \mid x^o, \hat x^m)}{p(x^o, \hat x^m \mid z)\, p(z)
        \,/\, q(z \mid x^o, \hat x^m)}\Big),

    an independence Metropolis–Hastings step that leaves :math:`p(z \mid x^o, \hat x^m)`
    invariant, then draws :math:`\hat x^m \sim p(x^m \mid z)`: an exact Gibbs step where the
    likelihood factorizes over the entries given :math:`z`. So the chain leaves
    :math:`p(z, x^m \mid x^o)` invariant whatever the guide; the guide only sets how fast it
    mixes. With the exact posterior as guide every ratio is 1 and every proposal is accepted.

    ``"pseudo-gibbs"``: Rezende et al.'s [2] alternation :math:`z \sim q(z \mid x^o, \hat x^m)`,
    :math:`\hat x^m \sim p(x^m \mid z)`, i.e. MWG accepting every proposal. Its stationary
    distribution is :math:`p(x^m \mid x^o)` only where the guide is the exact posterior.

    ``"importance"``: sampling importance resampling (as in MIWAE [3]): ``num_particles``
    proposals :math:`z_k \sim q(z \mid x^o, \hat x^m_0)` from the completed start
    :math:`\hat x^m_0` (``init``), weights
    :math:`w_k \propto p(x^o \mid z_k)\, p(z_k) / q(z_k \mid x^o, \hat x^m_0)`, then for each
    imputation a :math:`z_k` drawn by weight and :math:`\hat x^m \sim p(x^m \mid z_k)`;
    consistent as K grows, biased for finite K (read ``khat``).

    Every point's ``num_samples`` chains (or resamples) run together, vectorized over the
    points: rows of ``chunk_size`` points at a time (by default as many as keep a pass under
    4 Mi data entries). Each chain starts from ``x`` with its missing entries set to ``init``,
    its first step a pseudo-Gibbs one; ``samples`` holds the chains' last states, so give
    ``num_steps`` enough for them to forget the start (``rhat`` and ``status`` say whether
    they did).

    :param model: a model keeping the site contract of :mod:`pvae.models` whose observed site
        holds the data (or a reshape of it) under a likelihood independent over entries given
        the latents (``.to_event`` of Normal, Bernoulli, ...), and whose distributions read
        the data only there.
    :param guide: its guide, run on completed data (an amortized encoder: a per-point guide
        has no posterior for a completed point).
    :param torch.Tensor x: data, shape ``(n, *event_shape)``; entries where ``mask`` is
        ``False`` are ignored and may be NaN.
    :param torch.Tensor mask: ``torch.bool`` of ``x``'s shape, ``True`` where observed, at
        least one observed entry per point; ``None`` (default): the entries of ``x`` that are
        not NaN.
    :param str method: ``"mwg"`` (default), ``"pseudo-gibbs"`` or ``"importance"``.
    :param int num_steps: steps of each chain, the first included (default 200; ignored by
        importance resampling).
    :param int num_samples: imputations per point: independent chains, or resamples
        (default 20).
    :param int num_particles: importance resampling's proposals per point (default 1000).
    :param init: the starting value of the missing entries (default 0, which is in the
        support of a Normal, Bernoulli or continuous Bernoulli likelihood), a number or a
        tensor of ``x``'s shape; importance resampling's guide reads it.
    :param int chunk_size: points per pass (default ``None``: chosen as above).
    :param int seed: seeds torch's RNG for the call (the draws then depend on ``seed`` and
        ``chunk_size``); ``None`` (default) draws from the global RNG as it stands.
    :param bool progress: show a tqdm bar over the steps (default ``True``).
    :param obs_site: the observed site to impute where the model observes several
        (:func:`pvae.contract.observing`).
    :rtype: Imputation
    :raises ContractError: for a pair that breaks the site contract or whose likelihood does
        not factorize over the entries (saying why).

    References

    [1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS, Sec. 4.
    [2] Rezende, D. J., Mohamed, S. & Wierstra, D. (2014). Stochastic Backpropagation and
        Approximate Inference in Deep Generative Models. ICML, Sec. 6 / App. F.
    [3] Mattei, P.-A. & Frellsen, J. (2019). MIWAE: Deep Generative Modelling and Imputation
        of Incomplete Data Sets. ICML.
    """
    check_pair(model, guide, guide_required=True)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() or x.dim() < 2 or x.shape[0] == 0:
        check_data(x, "x")  # its errors: a floating-point (num_points, *event_shape) tensor
    if mask is None:
        mask = mask_from_nan(x)
    check_mask(mask, x)
    check_choice(method, "method", tuple(METHODS))
    check_positive_int(num_steps, "num_steps")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(num_particles, "num_particles")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
    if seed is not None:
        check_seed(seed)
    check_bool(progress, "progress")
    start = _check_init(init, x, mask)
    check_model_data(model, start, "x")
    check_dtypes(model, guide, start, "x")
    chains = num_particles if method == "importance" else num_samples
    per_chunk = chunk_size or max(1, _PASS_ENTRIES // (chains * start[0].numel()))
    chunks = [range(a, min(a + per_chunk, x.shape[0])) for a in range(0, x.shape[0], per_chunk)]
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    fields: dict[str, list[torch.Tensor]] = {}
    with evaluating(model, guide), rng:
        if seed is not None:
            torch.manual_seed(seed)
        model_trace, _ = trace_pair(model, guide, start[:1], "guide", check=True)
        check_imputable(model, guide, start[:1])
        binary = base_support(observed_site(model_trace)["fn"]) is constraints.boolean
        steps = 1 if method == "importance" else num_steps
        with (
            tqdm(
                total=steps * len(chunks),
                disable=not progress,
                desc=f"impute ({method})",
                unit="step" if steps > 1 else "pass",
            ) as bar,
            pyro.validation_enabled(False),
        ):
            for points in chunks:
                part = {
                    "start": start[points.start : points.stop],
                    "mask": mask[points.start : points.stop],
                }
                if method == "importance":
                    samples, mean, stderr, ess, khat = _importance(
                        model,
                        guide,
                        part["start"],
                        part["mask"],
                        num_particles=num_particles,
                        num_samples=num_samples,
                    )
                    bar.update(1)
                    found = {
                        "samples": samples,
                        "mean": mean,
                        "stderr": stderr,
                        "ess": ess,
                        "khat": khat,
                    }
                else:
                    samples, means, acceptance, trace = _chains(
                        model,
                        guide,
                        part["start"],
                        part["mask"],
                        method=method,
                        num_steps=num_steps,
                        num_samples=num_samples,
                        bar=bar,
                        first=points.start,
                    )
                    found = {
                        "samples": samples,
                        "mean": torch.where(part["mask"], part["start"], means.mean(0)),
                        "stderr": (means.std(0) / math.sqrt(num_samples)).where(~part["mask"], 0.0)
                        if num_samples > 1
                        else torch.full_like(means[0], math.nan).where(~part["mask"], 0.0),
                        "acceptance": acceptance,
                        "rhat": _split_rhat(trace, num_samples, len(points)),
                    }
                for key, value in found.items():
                    fields.setdefault(key, []).append(value)
    joined = {k: torch.cat(v, dim=1 if k == "samples" else 0) for k, v in fields.items()}
    settings = {
        "num_samples": num_samples,
        "seed": seed,
        "init": init if not isinstance(init, torch.Tensor) else "tensor",
    }
    if method == "importance":
        settings["num_particles"] = num_particles
    else:
        settings["num_steps"] = num_steps
    return Imputation(
        samples=joined["samples"],
        mean=joined["mean"],
        mean_stderr=joined["stderr"],
        mask=mask,
        method=method,
        acceptance=joined["acceptance"] if method == "mwg" else None,
        rhat=joined.get("rhat"),
        ess=joined.get("ess"),
        khat=joined.get("khat"),
        settings=settings,
        binary=binary,
    )
