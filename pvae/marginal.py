"""Per-data-point importance-sampled log p(x), ELBO and IWAE bounds for any model/guide pair."""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence
from tqdm import tqdm

from pvae.memory import parse_memory, peak_memory
from pvae.validation import (
    check_bool,
    check_choice,
    check_num_levels,
    check_pair_data,
    check_positive_int,
    check_seed,
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
#: The memory budget of one estimate when neither ``chunk_size`` nor ``max_memory`` is given.
DEFAULT_MAX_MEMORY = "1GiB"
#: On CPU, the most memory the temporaries of one pass take when a budget picks the rows:
#: larger passes are no faster (the matrix products are full long before), and the allocator
#: hands their memory back to the system after every pass, to fault it in again on the next.
CPU_PASS_BYTES = 16 * 2**20


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


def _site_log_prob(site, shape: tuple[int, ...]) -> torch.Tensor:
    log_prob = site["fn"].log_prob(site["value"])
    if site["mask"] is not None:  # poutine.mask: masked-out entries contribute nothing
        log_prob = log_prob.masked_fill(~site["mask"], 0.0)
    if log_prob.shape != shape:
        raise ContractError(
            f"site {site['name']!r} has log-density shape {tuple(log_prob.shape)}, expected "
            f"{shape}: one value per data point (and sample). Put every site inside "
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


def _traces(model, guide, x: torch.Tensor, proposal: str, check: bool, noise=None, particles=None):
    """Trace the proposal, then the model replaying it, on ``x``. ``noise`` (a
    :class:`_CommonNoise`) supplies the proposal's draws; ``particles`` a ``pyro.plate`` of
    samples outside every plate of the pair (vectorized layout)."""
    with contextlib.ExitStack() as stack:
        if noise is not None:
            stack.enter_context(noise)
        if particles is not None:
            stack.enter_context(particles)
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


def _log_weights(model_trace, guide_trace, proposal: str, shape: tuple[int, ...]) -> torch.Tensor:
    """log p(x, z) − log q(z | x) for the traced draws (prior proposal: log p(x | z)), with
    ``shape`` (one value per row, or per (sample, point) in the vectorized layout)."""
    log_weight = 0.0
    for site in _sample_sites(model_trace):
        if proposal == "guide" or site["is_observed"]:
            log_weight = log_weight + _site_log_prob(site, shape)
    if guide_trace is not None:
        for site in _sample_sites(guide_trace):
            log_weight = log_weight - _site_log_prob(site, shape)
    return log_weight


#: Importance samples per block of common random numbers (see :class:`_CommonNoise`).
SAMPLE_BLOCK = 1024
_PARTICLES = "_pvae_particles"
_SUMMARY_TEMPORARIES = 8


class _CommonNoise(Messenger):
    """Draw the proposal's latent values from noise keyed to (data point, sample index), so that
    log-weights do not depend on how points and samples are split into passes.

    A reparameterizable site (Normal, MultivariateNormal, and Independent, masked or transformed
    versions of these) is drawn as its own ``rsample`` would, from standard-normal noise in which
    the block ``b`` of ``block`` samples (``min(K, SAMPLE_BLOCK)``, so that small K draws no
    more than it needs) of point ``i`` comes from a :class:`torch.Generator` seeded by a hash of
    ``(seed, site, draw, i, b)``. Other
    distributions draw from torch's global RNG as usual (they are then not split-invariant).

    :param int seed: the key of this call's draws.
    :param points: global indices of the pass's points.
    :param int first: index of the pass's first sample; ``size`` samples per point.
    :param bool vectorized: samples on the ``_pvae_particles`` plate (else rows point-major).
    :param int block: samples per block of noise.
    """

    def __init__(
        self, seed: int, points: range, first: int, size: int, vectorized: bool, block: int
    ):
        super().__init__()
        self.seed, self.points, self.first, self.size = seed, points, first, size
        self.block = block
        self.vectorized = vectorized
        self.fallbacks: set[str] = set()
        self._draws: dict[str, int] = {}
        self._generator: torch.Generator | None = None

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(msg):
            return  # observed, replayed from the guide, or a plate's index
        fn = msg["fn"]
        frames = {frame.name: frame.dim for frame in msg["cond_indep_stack"]}
        batch = len(fn.batch_shape)
        if "data" not in frames or (self.vectorized and _PARTICLES not in frames):
            self.fallbacks.add(msg["name"])
            return
        data = batch + frames["data"]
        particles = batch + frames[_PARTICLES] if self.vectorized else None

        def noise(shape: torch.Size, like: torch.Tensor) -> torch.Tensor | None:
            return self._noise(msg["name"], shape, data, particles, like)

        value = _reparameterized(fn, noise)
        if value is None:
            self.fallbacks.add(msg["name"])
        else:
            msg["value"] = value

    def _noise(self, name, shape, data, particles, like) -> torch.Tensor | None:
        rows = len(self.points) * (1 if self.vectorized else self.size)
        if shape[data] != rows or (particles is not None and shape[particles] != self.size):
            return None
        rest = [size for dim, size in enumerate(shape) if dim not in (data, particles)]
        draw = self._draws.get(name, 0)
        self._draws[name] = draw + 1
        blocks = [self._point_noise(name, draw, i, rest, like) for i in self.points]
        noise = torch.stack(blocks)  # (points, samples, *rest)
        if self.vectorized:
            return noise.movedim((0, 1), (data, particles))
        return noise.reshape(rows, *rest).movedim(0, data)

    def _point_noise(self, name, draw, point, rest, like) -> torch.Tensor:
        """Samples ``first`` to ``first + size`` of ``point``'s noise, shape ``(size, *rest)``."""
        if self._generator is None:
            self._generator = torch.Generator(device=like.device)
        parts = []
        first_block = self.first // self.block
        last_block = (self.first + self.size - 1) // self.block
        for block in range(first_block, last_block + 1):
            key = f"{self.seed}/{name}/{draw}/{point}/{block}".encode()
            self._generator.manual_seed(
                int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
            )
            noise = torch.randn(
                self.block, *rest, generator=self._generator, dtype=like.dtype, device=like.device
            )
            low = max(self.first - block * self.block, 0)
            high = min(self.first + self.size - block * self.block, self.block)
            parts.append(noise[low:high])
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _reparameterized(fn, noise: Callable) -> torch.Tensor | None:
    """``fn.rsample()`` computed from ``noise(shape, like)`` (standard normal), or ``None`` where
    ``fn`` is not a distribution handled here or the noise does not fit its shape."""
    if isinstance(fn, (dist.Independent, dist.MaskedDistribution)):
        return _reparameterized(fn.base_dist, noise)
    if isinstance(fn, torch.distributions.Normal):
        eps = noise(fn.batch_shape, fn.loc)
        return None if eps is None else fn.loc + fn.scale * eps
    if isinstance(fn, torch.distributions.MultivariateNormal):
        eps = noise(fn.batch_shape + fn.event_shape, fn.loc)
        if eps is None:
            return None
        return fn.loc + (fn.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
    if isinstance(fn, torch.distributions.TransformedDistribution):
        value = _reparameterized(fn.base_dist, noise)
        if value is None:
            return None
        for transform in fn.transforms:
            value = transform(value)
        return value
    return None


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
    """How :func:`_iter_log_weights` lays out its passes."""

    vectorized: bool
    nesting: int  # plates in the pair; the particle plate goes just outside them
    rows: int  # (sample, point) rows per pass
    seed: int
    block: int  # samples per block of common random numbers: min(K, SAMPLE_BLOCK)


class _Evaluator:
    """Log-weights of ``size`` samples (from ``first``) of each of ``points`` in one pass."""

    def __init__(self, model, guide, x: torch.Tensor, proposal: str, plan: _Plan):
        self.model, self.guide, self.x, self.proposal, self.plan = model, guide, x, proposal, plan
        self.fallbacks: set[str] = set()  # sites drawn from the global RNG, not common noise

    def __call__(self, points: range, first: int, size: int) -> torch.Tensor:
        """Shape ``(len(points), size)``."""
        plan, block = self.plan, self.x[points.start : points.stop]
        noise = _CommonNoise(plan.seed, points, first, size, plan.vectorized, plan.block)
        self.fallbacks = noise.fallbacks
        if plan.vectorized:
            particles = pyro.plate(_PARTICLES, size, dim=-plan.nesting - 1)
            traces = _traces(self.model, self.guide, block, self.proposal, False, noise, particles)
            return _log_weights(*traces, self.proposal, (size, len(points))).T.contiguous()
        rows = block.repeat_interleave(size, dim=0)
        traces = _traces(self.model, self.guide, rows, self.proposal, False, noise)
        return _log_weights(*traces, self.proposal, (rows.shape[0],)).reshape(len(points), size)


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
) -> _Plan:
    """Check the pair on one point, choose the layout (vectorized particles where the pair
    broadcasts over them) and the rows per pass (``chunk_size``, or the most that fit in
    ``max_memory`` as measured on a probe pass)."""
    if seed is None:
        seed = int(torch.randint(2**62, ()))
    model_trace, guide_trace = _traces(model, guide, x[:1], proposal, check=True)
    if guide_trace is not None:
        _check_has_density(guide_trace)
    nesting = _max_plate_nesting(model_trace, guide_trace)
    plan = _Plan(False, nesting, 1, seed, min(num_samples, SAMPLE_BLOCK))
    probe_size = min(num_samples, 64)

    def probe(vectorized: bool) -> tuple[torch.Tensor, int, set[str]]:
        """One point's first ``probe_size`` log-weights in a layout, the bytes that pass held
        at its peak, and the sites drawn from the global RNG."""
        plan.vectorized = vectorized
        evaluate, weights = _Evaluator(model, guide, x, proposal, plan), []
        used = peak_memory(lambda: weights.append(evaluate(range(1), 0, probe_size)))
        return weights[0], used, evaluate.fallbacks

    stacked, used, _ = probe(False)
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


def _iter_log_weights(
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
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, log_weights)`` blocks: ``log_weights[i, k]`` is the k-th log importance
    weight of data point ``x[start + i]``, shape ``(points in block, num_samples)``.

    A pass evaluates at most ``rows`` (sample, point) pairs (:func:`_plan`): whole points while
    K fits in a pass, else one point's samples in equal passes. The draws are keyed to
    (point, sample) (:class:`_CommonNoise`), so the log-weights do not depend on the split.
    The callers validate the arguments and set eval mode and inference mode (see
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
                yield start, evaluate(points, 0, num_samples)
                bar.update(len(points))
        else:
            passes = -(-num_samples // plan.rows)  # equal passes: no small remainder
            step = -(-num_samples // passes)
            for start in range(num_points):
                parts = [
                    evaluate(range(start, start + 1), first, min(step, num_samples - first))
                    for first in range(0, num_samples, step)
                ]
                yield start, torch.cat(parts, dim=1)
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
    if isinstance(log_px, bool) or not isinstance(log_px, numbers.Real | torch.Tensor):
        raise TypeError(f"log_px must be a number or a tensor, got {type(log_px).__name__}")
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


def _check_estimator_args(
    model, x, num_samples, chunk_size, max_memory, proposal, guide, vectorize, seed
):
    check_pair_data(model, guide, x, "x")
    check_positive_int(num_samples, "num_samples")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size")
        if max_memory is not None:
            raise ValueError(
                f"give chunk_size ({chunk_size!r}) or max_memory ({max_memory!r}), not both: "
                "chunk_size fixes the rows per pass, max_memory picks them"
            )
    if max_memory is not None:
        parse_memory(max_memory, "max_memory")
    check_choice(proposal, "proposal", PROPOSALS)
    check_bool(vectorize, "vectorize", allow_none=True)
    if seed is not None:
        check_seed(seed)
    if proposal == "guide" and guide is None:
        raise ValueError("guide is None, but proposal='guide' needs a guide")


@contextlib.contextmanager
def _estimating(model, guide):
    """Eval mode and ``torch.inference_mode`` (no autograd bookkeeping at all)."""
    with evaluating(model, guide), torch.inference_mode():
        yield


_PASSES_DOC = """
    Points and samples are evaluated in passes of at most ``chunk_size`` (sample, point) rows;
    by default the rows per pass are chosen to fit ``max_memory`` (default 1 GiB; on CPU at
    most 16 MiB of temporaries a pass, past which passes get no faster), as measured on a
    probe pass. Memory is bounded by the pass, not by K. The
    samples of a point come from noise keyed to (``seed``, point, sample index), so the
    results do not depend on ``chunk_size``, ``max_memory`` or the layout (up to float
    rounding) for guides built from Normal and multivariate Normal distributions (also
    independent, masked and transformed); other distributions draw from torch's global RNG.
    Where the pair broadcasts over a leading plate of samples (``vectorize``), the guide runs
    once per point and only the model once per sample.

"""

_PASSES_PARAMS = """
    :param int chunk_size: the most (sample, point) rows evaluated in one pass; overrides
        ``max_memory`` (give one of them).
    :param max_memory: the memory budget of the passes and results, in bytes or as a string
        like ``"512MiB"`` (used when ``chunk_size`` is ``None``; by default ``"1GiB"`` for the
        passes, beside the results).
    :param int seed: the key of the draws; ``None`` (default) draws one from torch's global
        RNG, so ``torch.manual_seed`` makes a call repeatable.
    :param vectorize: ``None`` (default): evaluate the K samples of a point on a
        ``pyro.plate`` of particles where the pair broadcasts over it (checked on one point
        against the one-row-per-sample layout), else one row per sample; ``True``: require the
        particle plate; ``False``: one row per sample.
"""


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
    PASSES_DOC
    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide (ignored, and may be ``None``, for ``proposal="prior"``).
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: K, the number of importance samples per point, exactly
        (default 1000).
    PASSES_PARAMS
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
    _check_estimator_args(
        model, x, num_samples, chunk_size, max_memory, proposal, guide, vectorize, seed
    )
    check_bool(return_log_weights, "return_log_weights")
    check_bool(progress, "progress")
    # Results go into tensors allocated up front: small long-lived allocations between the
    # large per-pass temporaries would fragment the heap and raise the peak memory.
    fields = {key: x.new_empty(x.shape[0]) for key in ("estimate", "stderr", "ess", "khat", "elbo")}
    if return_log_weights:
        fields["log_weights"] = x.new_empty(x.shape[0], num_samples)
    with _estimating(model, guide):
        for start, log_weights in _iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples,
            chunk_size=chunk_size,
            max_memory=max_memory,
            proposal=proposal,
            progress=progress,
            seed=seed,
            vectorize=vectorize,
            extra_bytes_per_point=num_samples * x.element_size() if return_log_weights else 0,
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
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    seed: int | None = None,
    vectorize: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo ELBO of every data point and its standard error, each shape ``(n,)``:

    .. math:: \mathrm{ELBO}(x) = \mathbb{E}_{q(z|x)}[\log p(x, z) - \log q(z \mid x)]
        = \mathcal{L}_1 \le \log p(x).

    Estimated as the mean of ``num_samples`` log-weights; the standard error is their
    standard deviation over :math:`\sqrt{K}` (``nan`` for K = 1). Passes and draws as in
    :func:`log_marginal`.

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_samples: samples per point (default 100).
    PASSES_PARAMS
    :param bool progress: show a tqdm progress bar (default ``False``: usually short).
    :returns: ``(elbo, stderr)``, each shape ``(n,)``.
    """
    _check_estimator_args(
        model, x, num_samples, chunk_size, max_memory, "guide", guide, vectorize, seed
    )
    check_bool(progress, "progress")
    means, errors = x.new_empty(x.shape[0]), x.new_full((x.shape[0],), math.nan)
    with _estimating(model, guide):
        for start, log_weights in _iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples,
            chunk_size=chunk_size,
            max_memory=max_memory,
            progress=progress,
            seed=seed,
            vectorize=vectorize,
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
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    progress: bool = False,
    seed: int | None = None,
    vectorize: bool | None = None,
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
    PASSES_PARAMS
    :param bool progress: show a tqdm progress bar (default ``False``).
    :returns: ``(bound, stderr)``, each shape ``(n,)``; ``stderr`` is ``nan`` for one repeat.

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    """
    check_positive_int(num_repeats, "num_repeats")
    _check_estimator_args(
        model, x, num_samples, chunk_size, max_memory, "guide", guide, vectorize, seed
    )
    check_bool(progress, "progress")
    means, errors = x.new_empty(x.shape[0]), x.new_full((x.shape[0],), math.nan)
    with _estimating(model, guide):
        for start, log_weights in _iter_log_weights(
            model,
            guide,
            x,
            num_samples=num_samples * num_repeats,
            chunk_size=chunk_size,
            max_memory=max_memory,
            progress=progress,
            seed=seed,
            vectorize=vectorize,
        ):
            rows = slice(start, start + log_weights.shape[0])
            grouped = log_weights.reshape(log_weights.shape[0], num_repeats, num_samples)
            estimates = torch.logsumexp(grouped, -1) - math.log(num_samples)
            means[rows] = estimates.mean(-1)
            if num_repeats > 1:
                errors[rows] = estimates.std(-1) / math.sqrt(num_repeats)
    return means, errors


for _function in (log_marginal, elbo_per_point, iwae_bound):
    _function.__doc__ = _function.__doc__.replace("    PASSES_DOC\n", _PASSES_DOC).replace(
        "    PASSES_PARAMS\n", _PASSES_PARAMS.lstrip("\n")
    )


def elbo_terms(
    model: Callable, guide: Callable, x: torch.Tensor, *, chunk_size: int = 16384
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
        model_trace, guide_trace = _traces(model, guide, x, "guide", check=True)
        recon = x.new_zeros(num_rows)
        kl = x.new_zeros(num_rows)
        guide_sites = {site["name"]: site for site in _sample_sites(guide_trace)}
        for site in _sample_sites(model_trace):
            if site["is_observed"]:
                recon = recon + _site_log_prob(site, (num_rows,))
                continue
            q_site = guide_sites[site["name"]]
            try:
                site_kl = kl_divergence(q_site["fn"], site["fn"])
            except NotImplementedError:
                site_kl = _site_log_prob(q_site, (num_rows,)) - _site_log_prob(site, (num_rows,))
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
