"""Log importance weights of every point in passes of bounded memory."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from tqdm.auto import tqdm

from pvae.contract import (
    ContractError,
    check_support,
    evaluating,
    forked_rng,
    observed_sites,
    sample_sites,
    site_log_prob,
    trace_pair,
)
from pvae.estimation.common_noise import PARTICLE_PLATE, SAMPLE_BLOCK, CommonNoise
from pvae.estimation.memory import parse_memory, peak_memory
from pvae.finite import nonfinite_density_error
from pvae.validation import KEY_LIMIT

__all__ = ["CPU_PASS_BYTES", "DEFAULT_MAX_MEMORY", "check_passes", "iter_log_weights"]

#: The memory budget of one estimate when neither ``chunk_size`` nor ``max_memory`` is given.
DEFAULT_MAX_MEMORY = "1GiB"


#: On CPU, the most memory the temporaries of one pass take when a budget picks the rows:
#: larger passes are no faster (the matrix products are full long before), and the allocator
#: hands their memory back to the system after every pass, to fault it in again on the next.
CPU_PASS_BYTES = 16 * 2**20


def _check_finite(log_weights: torch.Tensor, start: int, model, guide, x, proposal) -> None:
    """Refuse a block whose log-weights hold NaN or +inf, or −inf for every sample of a
    point: overflow, not an estimate (:class:`pvae.finite.NonFiniteDensityError`). A single
    −inf (a draw where the model has no density) is a weight of zero, not an error."""
    upper = log_weights.max(-1).values  # NaN where a row has one; +inf; −inf if all −inf
    if bool(torch.isfinite(upper).all()) and not bool(log_weights.isnan().any()):
        return
    bad = log_weights.isnan().any(-1) | ~torch.isfinite(upper)
    row = int(bad.nonzero()[0])
    weights = log_weights[row]
    counts = (
        f"the log importance weights are not finite ({int(weights.isnan().sum())} NaN, "
        f"{int((weights == math.inf).sum())} +inf and {int((weights == -math.inf).sum())} "
        f"-inf of {weights.numel()} samples)"
    )
    raise nonfinite_density_error(
        model, guide if proposal == "guide" else None, x, start + row, counts
    )


def _check_has_density(guide_trace) -> None:
    for site in sample_sites(guide_trace):
        fn = site["fn"]
        while isinstance(fn, (dist.Independent, dist.MaskedDistribution)):
            fn = fn.base_dist
        if isinstance(fn, dist.Delta):
            raise ValueError(
                f"the guide's site {site['name']!r} is a point mass (Delta): importance weights "
                "need a guide with a density; use proposal='prior' or a Normal guide"
            )


def _log_weights(model_trace, guide_trace, proposal: str, shape: tuple[int, ...]) -> torch.Tensor:
    """log p(x, z) − log q(z | x) for the traced draws (prior proposal: log p(x | z)), with
    ``shape`` (one value per row, or per (sample, point) in the vectorized layout)."""
    log_weight = 0.0
    for site in sample_sites(model_trace):
        if proposal == "guide" or site["is_observed"]:
            log_weight = log_weight + site_log_prob(site, shape)
    if guide_trace is not None:
        for site in sample_sites(guide_trace):
            log_weight = log_weight - site_log_prob(site, shape)
    return log_weight


_SUMMARY_TEMPORARIES = 8


def _max_plate_nesting(*traces) -> int:
    dims = [
        -frame.dim
        for trace in traces
        if trace is not None
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized and frame.dim is not None
    ]
    return max(dims, default=1)


@dataclass
class _Plan:
    """How :func:`iter_log_weights` lays out its passes."""

    vectorized: bool
    nesting: int  # plates in the pair; the particle plate goes just outside them
    rows: int  # (sample, point) rows per pass
    seed: int
    block: int  # samples per block of common random numbers: min(K, SAMPLE_BLOCK)
    first_point: int = 0  # the index of x[0] in the draws' key (a shard of a larger x)
    unkeyed: set[str] = field(default_factory=set)  # sites drawn from the global RNG


class _Evaluator:
    """Log-weights of ``size`` samples (from ``first``) of each of ``points`` in one pass."""

    def __init__(self, model, guide, x: torch.Tensor, proposal: str, plan: _Plan):
        self.model, self.guide, self.x, self.proposal, self.plan = model, guide, x, proposal, plan
        self.fallbacks: set[str] = set()  # sites drawn from the global RNG, not common noise

    def __call__(self, points: range, first: int, size: int) -> torch.Tensor:
        """Shape ``(len(points), size)``."""
        plan, block = self.plan, self.x[points.start : points.stop]
        offset = plan.first_point
        keys = range(points.start + offset, points.stop + offset)
        noise = CommonNoise(plan.seed, keys, first, size, plan.vectorized, plan.block)
        self.fallbacks = noise.fallbacks
        if plan.vectorized:
            particles = pyro.plate(PARTICLE_PLATE, size, dim=-plan.nesting - 1)
            traces = trace_pair(
                self.model, self.guide, block, self.proposal, False, noise, particles
            )
            for site in observed_sites(traces[0]):
                check_support(site, first_point=keys.start)
            return _log_weights(*traces, self.proposal, (size, len(points))).T.contiguous()
        rows = block.repeat_interleave(size, dim=0)
        traces = trace_pair(self.model, self.guide, rows, self.proposal, False, noise)
        for site in observed_sites(traces[0]):
            check_support(site, first_point=keys.start, repeats=size)
        return _log_weights(*traces, self.proposal, (rows.shape[0],)).reshape(len(points), size)


def check_passes(model, guide, x: torch.Tensor, **options) -> set[str]:
    """Run on ``x[0]`` the checks :func:`iter_log_weights` runs before its first pass (the
    site contract, a proposal with a density, ``vectorize=True``'s broadcast, the memory
    budget for one point), raising as it would, in eval mode and on a forked RNG (nothing after
    it changes). ``options`` are its (``num_samples``, ``chunk_size``, ``max_memory``,
    ``proposal``, ``vectorize``, ``seed``).

    :returns: the proposal's latent sites that :class:`CommonNoise` cannot key to (seed, point,
        sample) and that draw from torch's global RNG instead (a Laplace or a discrete site):
        where there are any, an estimate depends on how the points are split into passes or
        shards.
    """
    with forked_rng(x), evaluating(model, guide), torch.inference_mode():
        plan = _plan(model, guide, x[:1], extra_bytes_per_point=0, **options)
    return set(plan.unkeyed)


def _plan(
    model,
    guide,
    x: torch.Tensor,
    *,
    num_samples: int,
    chunk_size: int | None,
    max_memory,
    proposal: str,
    vectorize: bool | None,
    seed: int | None,
    extra_bytes_per_point: int,
    first_point: int = 0,
) -> _Plan:
    """Check the pair on one point, choose the layout (vectorized particles where the pair
    broadcasts over them) and the rows per pass (``chunk_size``, or the most that fit in
    ``max_memory`` as measured on a probe pass)."""
    if seed is None:
        seed = int(torch.randint(KEY_LIMIT, ()))
    model_trace, guide_trace = trace_pair(model, guide, x[:1], proposal, check=True)
    if guide_trace is not None:
        _check_has_density(guide_trace)
    nesting = _max_plate_nesting(model_trace, guide_trace)
    plan = _Plan(False, nesting, 1, seed, min(num_samples, SAMPLE_BLOCK), first_point)
    probe_size = min(num_samples, 64)

    def probe(vectorized: bool) -> tuple[torch.Tensor, int, set[str]]:
        """One point's first ``probe_size`` log-weights in a layout, the bytes that pass held
        at its peak, and the sites drawn from the global RNG."""
        plan.vectorized = vectorized
        evaluate, weights = _Evaluator(model, guide, x, proposal, plan), []
        used = peak_memory(lambda: weights.append(evaluate(range(1), 0, probe_size)))
        return weights[0], used, evaluate.fallbacks

    stacked, used, plan.unkeyed = probe(False)
    if vectorize is not False:
        failure, vectorized_used = _check_vectorized(lambda: probe(True), stacked)
        if failure is None:
            used = vectorized_used
        else:
            if vectorize:
                raise ContractError(
                    f"vectorize=True, but the pair does not broadcast over a plate of samples "
                    f"at dim {-plan.nesting - 1} ({failure}); write the networks and sites to "
                    "broadcast over leading dims, or pass vectorize=None or False"
                )
            plan.vectorized = False
    if chunk_size is not None:
        plan.rows = chunk_size
        return plan
    budget = parse_memory(DEFAULT_MAX_MEMORY if max_memory is None else max_memory)
    # A row's share of the probe pass, and of the summaries of its log-weight (several
    # temporaries of the pass's (points, K) weights: logsumexp, exp, std, PSIS).
    per_row = math.ceil(used / probe_size)
    per_row += _SUMMARY_TEMPORARIES * x.element_size()
    # Beyond the passes: a point's K weights gathered from several passes, and the results
    # (n numbers per field, n·K log-weights if kept). A budget the caller gives covers the
    # results too; the default budget is for the passes alone, the results being what the
    # caller asked for whatever the budget.
    fixed = _SUMMARY_TEMPORARIES * num_samples * x.element_size()
    if max_memory is not None:
        fixed += x.shape[0] * (extra_bytes_per_point + 5 * x.element_size())
    available = budget - fixed
    if available < per_row:
        given = (
            f"max_memory={max_memory!r}"
            if max_memory is not None
            else (f"the default max_memory ({DEFAULT_MAX_MEMORY!r})")
        )
        raise ValueError(
            f"{given} is too small for this pair and data (num_samples={num_samples}): the "
            f"results need {fixed:,} bytes and each (sample, point) row of a pass about "
            f"{per_row:,} (measured on a probe pass); give a larger max_memory"
        )
    plan.rows = available // per_row
    if x.device.type == "cpu":
        plan.rows = min(plan.rows, max(CPU_PASS_BYTES // per_row, 1))
    return plan


def _check_vectorized(probe: Callable, stacked: torch.Tensor) -> tuple[str | None, int]:
    """Why the vectorized layout fails on the probe (``None`` if it matches the stacked one),
    and the bytes its probe pass held."""
    try:
        vectorized, used, fallbacks = probe()
    except Exception as error:  # any failure to broadcast: the stacked layout always works
        return f"{type(error).__name__}: {error}", 0
    if vectorized.shape != stacked.shape:
        shapes = f"{tuple(vectorized.shape)}, not {tuple(stacked.shape)}"
        return f"its log-weights have shape {shapes}", used
    if fallbacks:  # draws from the global RNG: the two layouts cannot be compared
        return None, used
    tolerance = 1e-4 if stacked.dtype == torch.float32 else 1e-9
    if not torch.allclose(vectorized, stacked, rtol=tolerance, atol=tolerance, equal_nan=True):
        gap = (vectorized - stacked).abs().max().item()
        return f"its log-weights differ from the stacked evaluation by up to {gap:.3g}", used
    return None, used


def iter_log_weights(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_samples: int,
    chunk_size: int | None = None,
    max_memory=None,
    proposal: str = "guide",
    progress: bool = False,
    vectorize: bool | None = None,
    seed: int | None = None,
    extra_bytes_per_point: int = 0,
    first_point: int = 0,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, log_weights)`` blocks: ``log_weights[i, k]`` is the k-th log importance
    weight of data point ``x[start + i]``, shape ``(points in block, num_samples)``.

    A pass evaluates at most ``rows`` (sample, point) pairs (:func:`_plan`): whole points while
    K fits in a pass, else one point's samples in equal passes. The draws are keyed to
    (point, sample) (:class:`~pvae.estimation.common_noise.CommonNoise`), so the log-weights
    do not depend on the split. ``first_point`` is the index of ``x[0]`` in those keys, so
    that a shard ``x[a:b]`` with ``first_point=a`` draws what the whole ``x`` draws for its
    points. The callers validate the arguments and set eval mode and inference mode (see
    :func:`log_marginal`).
    """
    num_points = x.shape[0]
    plan = _plan(
        model,
        guide,
        x,
        num_samples=num_samples,
        chunk_size=chunk_size,
        max_memory=max_memory,
        proposal=proposal,
        vectorize=vectorize,
        seed=seed,
        extra_bytes_per_point=extra_bytes_per_point,
        first_point=first_point,
    )
    evaluate = _Evaluator(model, guide, x, proposal, plan)
    # The probe passes ran with Pyro's and torch's checks (if enabled); the rest need not.
    with (
        tqdm(total=num_points, disable=not progress, desc="log p(x)", unit="pt") as bar,
        pyro.validation_enabled(False),
    ):
        if num_samples <= plan.rows:
            points_per_pass = plan.rows // num_samples
            for start in range(0, num_points, points_per_pass):
                points = range(start, min(start + points_per_pass, num_points))
                log_weights = evaluate(points, 0, num_samples)
                _check_finite(log_weights, start, model, guide, x, proposal)
                yield start, log_weights
                bar.update(len(points))
        else:
            passes = -(-num_samples // plan.rows)  # equal passes: no small remainder
            step = -(-num_samples // passes)
            for start in range(num_points):
                parts = [
                    evaluate(range(start, start + 1), first, min(step, num_samples - first))
                    for first in range(0, num_samples, step)
                ]
                log_weights = torch.cat(parts, dim=1)
                _check_finite(log_weights, start, model, guide, x, proposal)
                yield start, log_weights
                bar.update(1)
