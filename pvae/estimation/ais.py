r"""Annealed importance sampling of log p(x) per data point, and bidirectional Monte Carlo.

AIS [1] moves C chains per point from an initial distribution q(z) (the guide's q(z | x), or
the prior) to the posterior p(z | x) through T intermediate densities

.. math:: f_t(z) = q(z)^{1 - \beta_t}\, p(x, z)^{\beta_t}, \qquad
    0 = \beta_0 < \beta_1 < \dots < \beta_T = 1,

with one HMC transition leaving each :math:`f_t` invariant, and weights
:math:`\log w = \sum_t (\beta_t - \beta_{t-1}) \,[\log p(x, z_{t-1}) - \log q(z_{t-1})]`. Then
:math:`E[w] = p(x)`: :math:`\log \frac1C \sum_c w_c` is a stochastic lower bound, exact for any T
when q is the exact posterior. Run backwards from an exact posterior sample, the same chain
gives :math:`E[1/w] = 1/p(x)`, a stochastic upper bound [2]: on data simulated from the model,
whose generating latent is such a sample, the two bracket log p(x) (:func:`bdmc`).

References

[1] Neal, R. M. (2001). Annealed importance sampling. Statistics and Computing.
[2] Grosse, R. B., Ghahramani, Z. & Adams, R. P. (2015). Sandwiching the marginal likelihood
    using bidirectional Monte Carlo. arXiv:1511.02543.
[3] Wu, Y., Burda, Y., Salakhutdinov, R. & Grosse, R. (2017). On the quantitative analysis of
    decoder-based generative models. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from pvae.contract import (
    ContractError,
    check_data_support,
    evaluating,
    forked_rng,
    observed_sites,
    sample_sites,
    site_log_prob,
    trace_pair,
    with_obs_site,
)
from pvae.display import Displayed, with_error
from pvae.estimation.memory import check_pass_options, parse_memory, peak_memory
from pvae.estimation.passes import DEFAULT_MAX_MEMORY
from pvae.estimation.result import log_mean_weight, point_summary
from pvae.validation import (
    check_bool,
    check_choice,
    check_pair_data,
    check_positive_float,
    check_positive_int,
)

__all__ = [
    "CACHE_GUIDE",
    "AISEstimate",
    "BDMCResult",
    "ais",
    "bdmc",
    "sigmoid_schedule",
    "simulate",
]

#: Keep the guide's distribution between the evaluations of a block where the guide has one
#: sample site (its distribution cannot depend on its own value): the encoder then runs once a
#: block, not at every leapfrog step. ``False`` runs the guide at every evaluation, the
#: unoptimized path the tests compare with.
CACHE_GUIDE = True


def sigmoid_schedule(num_steps: int, sharpness: float = 4.0) -> torch.Tensor:
    r"""The sigmoidal annealing schedule of Grosse et al. [2]: :math:`\tilde\beta_t =
    \sigma(\delta (2t/T - 1))`, rescaled to run from 0 to 1; shape ``(T + 1,)``, float64.
    It spends more steps near β = 0 and β = 1, where the intermediate densities change fastest.
    """
    check_positive_int(num_steps, "num_steps")
    check_positive_float(sharpness, "sharpness")
    t = torch.linspace(-sharpness, sharpness, num_steps + 1, dtype=torch.float64)
    beta = torch.sigmoid(t)
    return (beta - beta[0]) / (beta[-1] - beta[0])


@dataclass(repr=False)
class AISEstimate(Displayed):
    """Per-data-point results of :func:`ais`; every tensor field has shape ``(n,)`` but
    ``log_weights`` ``(n, C)`` and ``increments`` ``(n, C, T)``.

    :ivar estimate: :math:`\\log \\frac1C \\sum_c w_c` in nats (a lower bound in expectation).
    :ivar stderr: its delta-method standard error over the C chains (``nan`` for C = 1).
    :ivar acceptance: the HMC acceptance rate, averaged over chains and steps.
    :ivar step_size: the leapfrog step size of every point and step, shape ``(n, T)``.
    :ivar log_weights: the chains' log-weights.
    :ivar num_steps: T.
    :ivar num_chains: C.
    :ivar proposal: the initial distribution, ``"guide"`` or ``"prior"``.
    :ivar increments: the per-step log-weight increments, if asked for (``None`` otherwise).
    """

    estimate: torch.Tensor
    stderr: torch.Tensor
    acceptance: torch.Tensor
    step_size: torch.Tensor
    log_weights: torch.Tensor
    num_steps: int
    num_chains: int
    proposal: str
    increments: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.estimate.shape[0]

    def _display(self):
        title = (
            f"AISEstimate: log p̂(x) by annealed importance sampling (HMC; {self.proposal} "
            f"start, T = {self.num_steps} steps, C = {self.num_chains} chains) of {len(self)} "
            "points"
        )
        if len(self) == 0:
            return title, []
        summary = self.summary()
        return title, [
            (
                "log p̂(x)",
                f"{with_error(summary['log_marginal'], summary['stderr_mc'])} nats per point "
                "(mean; Monte Carlo se over chains)",
            ),
            ("across points", f"se {summary['stderr_points']:.2g} (the points' spread / √n)"),
            ("acceptance", f"{summary['acceptance']:.2f} (HMC, mean over chains and steps)"),
            (
                "trust",
                "a lower bound in expectation, with no status of its own: bdmc() measures "
                "its gap on simulated data; ImportanceEstimate.status_given(ais) reads it",
            ),
        ]

    def summary(self) -> dict[str, float]:
        """Averages over the points: the mean estimate, its Monte Carlo standard error
        (``stderr_mc``, also as ``stderr``, points independent) and the standard error of the
        mean over points (``stderr_points``: the spread of log p(x) over the data, what a
        comparison of two models on other points must beat), and the mean acceptance rate."""
        summary = point_summary(self.estimate, self.stderr)
        return summary | {
            "stderr": summary["stderr_mc"],
            "num_chains": self.num_chains,
            "num_steps": self.num_steps,
            "acceptance": self.acceptance.nanmean().item(),
        }

    def to_dataset(self):
        """The results as an :class:`xarray.Dataset`, for arviz and xarray tools.

        Variables: ``log_weight`` with dims ``(chain, draw, point)``, one draw per chain (each
        of the C chains ends in one weight); ``increments`` with dims ``(chain, draw, point,
        step)`` if they were kept; ``step_size`` with dims ``(point, step)``; and, with dim
        ``point``, ``log_marginal``, ``stderr`` and ``acceptance``. Attributes:
        ``estimator`` (``"ais"``), ``num_steps``, ``num_chains``, ``proposal``.
        """
        import xarray as xr

        def numpy(values: torch.Tensor):
            return values.detach().cpu().numpy()

        chains = numpy(self.log_weights.T)[:, None, :]  # (C, 1, n)
        variables = {
            "log_weight": (("chain", "draw", "point"), chains),
            "step_size": (("point", "step"), numpy(self.step_size)),
            "log_marginal": ("point", numpy(self.estimate)),
            "stderr": ("point", numpy(self.stderr)),
            "acceptance": ("point", numpy(self.acceptance)),
        }
        if self.increments is not None:
            per_chain = numpy(self.increments.permute(1, 0, 2))[:, None]  # (C, 1, n, T)
            variables["increments"] = (("chain", "draw", "point", "step"), per_chain)
        return xr.Dataset(
            variables,
            coords={
                "chain": np.arange(self.num_chains),
                "draw": [0],
                "point": np.arange(len(self)),
                "step": np.arange(1, self.num_steps + 1),
            },
            attrs={
                "estimator": "ais",
                "num_steps": self.num_steps,
                "num_chains": self.num_chains,
                "proposal": self.proposal,
            },
        )

    def to_inference_data(self):
        """The results as :class:`arviz.InferenceData`, with :meth:`to_dataset` as its
        ``sample_stats`` group (``az.psislw(stats.log_weight.sel(draw=0).T)`` gives the
        Pareto k̂ of each point's C chain weights, meaningful only for C of 30 or more)."""
        import arviz

        return arviz.InferenceData(sample_stats=self.to_dataset())


def _check_real_latents(trace, owner: str) -> list[str]:
    names = []
    for site in sample_sites(trace):
        if site["is_observed"]:
            continue
        fn = site["fn"]
        support = fn.support
        while isinstance(support, dist.constraints.independent):
            support = support.base_constraint
        if fn.has_enumerate_support or support is not dist.constraints.real:
            raise ValueError(
                f"ais needs real-valued continuous latent sites (HMC moves them freely), but "
                f"the {owner}'s site {site['name']!r} has support {fn.support}"
            )
        names.append(site["name"])
    return names


class _Densities:
    """log q(z) and log p(x, z) of every row at given latent values, with their gradients."""

    def __init__(self, model, guide, rows: torch.Tensor, names: list[str]):
        self.model, self.guide, self.rows, self.names = model, guide, rows, names
        self.shape = (rows.shape[0],)
        self.guide_site: dict | None = None  # the guide's only site, kept (CACHE_GUIDE)

    def _log_q(self, z: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.guide_site is not None:
            site = self.guide_site
            return site_log_prob({**site, "value": z[site["name"]]}, self.shape)
        guide_trace = poutine.trace(poutine.condition(self.guide, data=z)).get_trace(self.rows)
        sites = sample_sites(guide_trace)
        samples = [s for s in guide_trace.nodes.values() if s["type"] == "sample"]
        if (
            CACHE_GUIDE
            and len(sites) == 1
            and len(samples) == 1 + sum(site_is_subsample(s) for s in samples)
        ):
            # One site, no auxiliary draws: its distribution is a function of x alone. Kept
            # without the graph to the guide's parameters (the gradients are to z) and
            # unvalidated, as the leapfrog steps' evaluations are.
            with torch.no_grad(), pyro.validation_enabled(False):
                kept = poutine.trace(poutine.condition(self.guide, data=z)).get_trace(self.rows)
            self.guide_site = dict(sample_sites(kept)[0])
        return sum(site_log_prob(s, self.shape) for s in sites)

    def __call__(self, z: dict[str, torch.Tensor], *, validate: bool = True):
        # A leapfrog trajectory may leave the region where the model's distributions have valid
        # parameters (a variance network's output underflowing to 0 far from the data): there
        # the densities are evaluated unvalidated, come out non-finite, and the proposal is
        # rejected, as Pyro's HMC does with a singular covariance.
        z = {name: value.detach().requires_grad_(True) for name, value in z.items()}
        with torch.enable_grad(), pyro.validation_enabled(validate):
            model_trace = poutine.trace(poutine.condition(self.model, data=z)).get_trace(self.rows)
            log_joint = sum(site_log_prob(s, self.shape) for s in sample_sites(model_trace))
            if self.guide is None:  # the prior as q: log q = log p(z)
                # conditioned, the latent sites count as observed: pick them by name
                log_q = sum(
                    site_log_prob(s, self.shape)
                    for s in sample_sites(model_trace)
                    if s["name"] in self.names
                )
            else:
                log_q = self._log_q(z)
            values = [z[name] for name in self.names]
            grad_q = torch.autograd.grad(log_q.sum(), values, retain_graph=True)
            grad_joint = torch.autograd.grad(log_joint.sum(), values)
        return (
            log_q.detach(),
            log_joint.detach(),
            dict(zip(self.names, grad_q, strict=True)),
            dict(zip(self.names, grad_joint, strict=True)),
        )


def _per_row(value: torch.Tensor, rows: int) -> torch.Tensor:
    return value.reshape(rows, -1).sum(-1)


def _broadcast(per_row: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return per_row.reshape(per_row.shape + (1,) * (like.dim() - 1))


class _Chains:
    """The state of every row's chain: latent values, their densities and gradients."""

    def __init__(self, densities: _Densities, z: dict[str, torch.Tensor]):
        self.densities = densities
        self.set(z, *densities(z))

    def set(self, z, log_q, log_joint, grad_q, grad_joint):
        self.z, self.log_q, self.log_joint = z, log_q, log_joint
        self.grad_q, self.grad_joint = grad_q, grad_joint

    def energy_grad(self, beta: float, grad_q, grad_joint) -> dict[str, torch.Tensor]:
        # U = −[(1 − β) log q + β log p(x, z)]
        return {n: -((1 - beta) * grad_q[n] + beta * grad_joint[n]) for n in grad_q}

    def hmc(self, beta: float, step_size: torch.Tensor, num_leapfrog: int) -> torch.Tensor:
        """One HMC transition leaving f_β invariant, per row; returns the acceptance per row."""
        rows = self.log_q.shape[0]
        momentum = {n: torch.randn_like(v) for n, v in self.z.items()}

        def energy(log_q, log_joint):
            return -((1 - beta) * log_q + beta * log_joint)

        def kinetic(p):
            return sum(_per_row(v.pow(2), rows) for v in p.values()) / 2

        start = energy(self.log_q, self.log_joint) + kinetic(momentum)
        z, p = dict(self.z), dict(momentum)
        grad = self.energy_grad(beta, self.grad_q, self.grad_joint)
        state = None
        for step in range(num_leapfrog):
            p = {n: p[n] - _broadcast(step_size, p[n]) * grad[n] / 2 for n in p}
            z = {n: z[n] + _broadcast(step_size, z[n]) * p[n] for n in z}
            state = self.densities(z, validate=False)
            grad = self.energy_grad(beta, state[2], state[3])
            p = {n: p[n] - _broadcast(step_size, p[n]) * grad[n] / 2 for n in p}
            del step
        log_q, log_joint, grad_q, grad_joint = state
        end = energy(log_q, log_joint) + kinetic(p)
        log_accept = (start - end).clamp(max=0.0)
        log_accept = torch.where(torch.isfinite(log_accept), log_accept, -math.inf)
        accept = torch.rand_like(log_accept).log() < log_accept

        def pick(new, old):
            return torch.where(_broadcast(accept, new), new, old)

        self.set(
            {n: pick(z[n], self.z[n]) for n in z},
            pick(log_q, self.log_q),
            pick(log_joint, self.log_joint),
            {n: pick(grad_q[n], self.grad_q[n]) for n in z},
            {n: pick(grad_joint[n], self.grad_joint[n]) for n in z},
        )
        return log_accept.exp()


def _initial_latents(model, guide, rows: torch.Tensor, names: list[str]):
    if guide is None:
        observed = poutine.block(model, hide_fn=lambda message: message["is_observed"])
        trace = poutine.trace(observed).get_trace(rows)
    else:
        trace = poutine.trace(guide).get_trace(rows)
    return {name: trace.nodes[name]["value"].detach() for name in names}


def _anneal(
    chains: _Chains,
    betas: torch.Tensor,
    step_size: torch.Tensor,
    *,
    num_leapfrog: int,
    num_chains: int,
    adapt: float | None,
    keep_increments: bool,
    bar,
):
    """Run the chains along ``betas`` (forward or reversed). ``step_size`` has shape
    ``(points, T)``; with ``adapt`` (a target acceptance) it is tuned in place per point and
    step. Returns the log-weights per row, the acceptance per row (mean over steps) and the
    increments ``(rows, T)`` if kept."""
    rows = chains.log_q.shape[0]
    log_weight = chains.log_q.new_zeros(rows)
    acceptance = chains.log_q.new_zeros(rows)
    increments = []
    num_steps = len(betas) - 1
    for t in range(1, num_steps + 1):
        delta = float(betas[t] - betas[t - 1])
        increment = delta * (chains.log_joint - chains.log_q)
        log_weight = log_weight + increment
        if keep_increments:
            increments.append(increment)
        if t == num_steps:
            bar.update()
            break  # no transition after the last increment: its density is not used
        size = step_size[:, t - 1].repeat_interleave(num_chains)
        accepted = chains.hmc(float(betas[t]), size, num_leapfrog)
        acceptance = acceptance + accepted
        if adapt is not None:
            per_point = accepted.reshape(-1, num_chains).mean(1)
            factor = torch.where(per_point > adapt, 1.25, 0.8).to(step_size.dtype)
            following = step_size[:, t - 1] * factor
            step_size[:, t:] = following.unsqueeze(1)
        bar.update()
    stacked = torch.stack(increments, -1) if keep_increments else None
    # T − 1 transitions (none for T = 1: no acceptance rate to report)
    acceptance = acceptance / (num_steps - 1) if num_steps > 1 else acceptance.fill_(math.nan)
    return log_weight, acceptance, stacked


def _check_ais_args(model, guide, x, proposal, num_steps, num_chains, num_leapfrog, step_size,
                    target_acceptance, chunk_size, progress) -> None:  # fmt: skip
    check_choice(proposal, "proposal", ("guide", "prior"))
    check_positive_int(num_steps, "num_steps")
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_leapfrog, "num_leapfrog")
    if step_size is not None:
        check_positive_float(step_size, "step_size")
    if not 0 < check_positive_float(target_acceptance, "target_acceptance") < 1:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}")
    check_bool(progress, "progress")
    if proposal == "guide" and guide is None:
        raise ValueError("proposal='guide' needs a guide; pass guide=None with proposal='prior'")
    check_pair_data(model, guide if proposal == "guide" else None, x, "x")


@with_obs_site
def ais(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_steps: int = 100,
    num_chains: int = 8,
    num_leapfrog: int = 10,
    step_size: float | None = None,
    target_acceptance: float = 0.65,
    proposal: str = "guide",
    chunk_size: int | None = None,
    max_memory: int | str | None = None,
    return_increments: bool = False,
    seed: int | None = None,
    progress: bool = True,
    obs_site: str | None = None,
) -> AISEstimate:
    r"""Annealed importance sampling of :math:`\log p(x)` for every data point [1, 3].

    ``num_chains`` chains per point start from the guide's :math:`q(z \mid x)` (or the prior,
    ``proposal="prior"``) and anneal to the posterior along :func:`sigmoid_schedule` with
    ``num_steps`` steps, one HMC transition (``num_leapfrog`` leapfrog steps, identity mass)
    per step but the last (nothing uses the density after it). With ``step_size=None`` a
    warm-up run of the same length, with its own chains, tunes the step size per point and
    step toward ``target_acceptance`` (×1.25 after a step whose acceptance was above it, ×0.8
    otherwise); the estimate then uses those step sizes, fixed, so every transition leaves its
    density invariant. The cost is about ``2 · num_steps · (num_leapfrog + 1)`` evaluations of
    the model and guide with gradients per chain (half that with a fixed ``step_size``).

    The pair must keep the site contract of :mod:`pvae.models` with real-valued continuous
    latent sites (any number); points and chains are laid out as rows of one batch, passes of
    ``chunk_size`` points, or by default as many as fit in ``max_memory`` (measured on a probe
    evaluation of one point's chains, as :func:`~pvae.estimation.log_marginal` measures its
    passes; on CPU too, since AIS's cost is in Pyro's per-evaluation overhead and fewer,
    larger passes are faster). Runs in eval mode; parameters are not changed.

    :param model: the model.
    :param guide: the guide (``None`` with ``proposal="prior"``).
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_steps: T, the intermediate densities (default 100).
    :param int num_chains: C, chains per point (default 8).
    :param int num_leapfrog: leapfrog steps per HMC transition (default 10).
    :param float step_size: a fixed leapfrog step size, or ``None`` (default) to tune it.
    :param float target_acceptance: the acceptance rate the tuning aims at (default 0.65).
    :param str proposal: ``"guide"`` (default) or ``"prior"``.
    :param int chunk_size: points per pass; overrides ``max_memory`` (give one of them).
    :param max_memory: the memory budget of the passes and results, in bytes or as a string
        such as ``"512MiB"`` (default 1 GiB for the passes).
    :param bool return_increments: keep the per-step log-weight increments.
    :param int seed: seed of the chains (the global RNG is left as it was); ``None``: drawn
        from the global RNG.
    :param bool progress: show a progress bar (default ``True``).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :returns: :class:`AISEstimate`.
    :raises ValueError: for bad arguments, a latent site that is not real-valued, or a pair
        that breaks the site contract.
    """
    _check_ais_args(model, guide, x, proposal, num_steps, num_chains, num_leapfrog, step_size,
                    target_acceptance, chunk_size, progress)  # fmt: skip
    check_pass_options(chunk_size, max_memory, "points per pass")
    guide = guide if proposal == "guide" else None
    if seed is None:
        seed = int(torch.randint(2**62, ()))
    betas = sigmoid_schedule(num_steps)
    results = []
    with (
        forked_rng(x),
        evaluating(model, guide),
    ):
        check_data_support(model, guide, x)  # every point, before the seed's draws
        torch.manual_seed(seed)
        model_trace, guide_trace = trace_pair(model, guide, x[:1], proposal, check=True)
        owner = "guide" if guide is not None else "model"
        names = _check_real_latents(guide_trace if guide is not None else model_trace, owner)
        with forked_rng(x):
            # the probe's draws leave the chains' as they were
            points = chunk_size or _points_per_pass(
                model, guide, x, names, num_chains, num_steps, max_memory, return_increments
            )
        passes = (1 if step_size is not None else 2) * math.ceil(len(x) / points)
        with tqdm(total=passes * num_steps, disable=not progress, desc="ais", unit="step") as bar:
            for first in range(0, len(x), points):
                block = x[first : first + points]
                results.append(
                    _run_block(
                        model, guide, block, names, betas, num_chains, num_leapfrog,
                        step_size, target_acceptance, return_increments, bar,
                    )
                )  # fmt: skip
    log_weights = torch.cat([r[0] for r in results])
    bad = torch.isnan(log_weights).any(1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"AIS's log-weights of x[{first}] are nan: the model's or the guide's log-density "
            "was not a number (or infinite with both signs) along its chains; check the pair "
            "on that point with pvae.log_marginal"
        )
    estimate, stderr = log_mean_weight(log_weights)
    return AISEstimate(
        estimate=estimate,
        stderr=stderr,
        acceptance=torch.cat([r[1] for r in results]),
        step_size=torch.cat([r[2] for r in results]),
        log_weights=log_weights,
        num_steps=num_steps,
        num_chains=num_chains,
        proposal=proposal,
        increments=torch.cat([r[3] for r in results]) if return_increments else None,
    )


def _points_per_pass(model, guide, x, names, num_chains, num_steps, max_memory, increments):
    """The most points whose chains fit in ``max_memory`` (default 1 GiB), from the peak bytes
    of one point's chains' density evaluation with gradients, and the per-row state of HMC."""
    rows = x[:1].repeat_interleave(num_chains, dim=0)
    densities = _Densities(model, guide, rows, names)
    z = _initial_latents(model, guide, rows, names)
    used = peak_memory(lambda: densities(z, validate=False))
    latent_bytes = sum(value[0].numel() for value in z.values()) * x.element_size()
    # A row's share of the probe with a tenth for the leapfrog's temporaries beside it, its
    # copy of the data point, and the HMC state of the warm-up's chains and the estimate's
    # (latents, momenta, proposals and gradients: 16 latents' sizes).
    per_row = math.ceil(1.1 * used / num_chains) + x[0].nbytes + 16 * latent_bytes
    # Per point beyond the passes: step sizes (T), log-weights (C) and increments (C · T).
    per_point = (num_steps + num_chains + (num_chains * num_steps if increments else 0)) * (
        x.element_size()
    )
    budget = parse_memory(DEFAULT_MAX_MEMORY if max_memory is None else max_memory)
    fixed = len(x) * per_point if max_memory is not None else 0
    available = budget - fixed
    if available < per_row * num_chains:
        given = f"max_memory={max_memory!r}" if max_memory is not None else "the default max_memory"
        raise ValueError(
            f"{given} is too small for AIS on this pair and data (num_chains={num_chains}): "
            f"the results need {fixed:,} bytes and each point's chains about "
            f"{per_row * num_chains:,} (measured on a probe); give a larger max_memory"
        )
    return max(1, available // (per_row * num_chains))


def _run_block(model, guide, block, names, betas, num_chains, num_leapfrog, step_size,
               target_acceptance, keep_increments, bar):  # fmt: skip
    rows = block.repeat_interleave(num_chains, dim=0)
    densities = _Densities(model, guide, rows, names)
    num_steps = len(betas) - 1
    sizes = block.new_full((len(block), num_steps), step_size or 0.1)
    if step_size is None:  # warm-up: tune per point and step, on chains of its own
        warm = _Chains(densities, _initial_latents(model, guide, rows, names))
        _anneal(warm, betas, sizes, num_leapfrog=num_leapfrog, num_chains=num_chains,
                adapt=target_acceptance, keep_increments=False, bar=bar)  # fmt: skip
    chains = _Chains(densities, _initial_latents(model, guide, rows, names))
    log_weight, acceptance, increments = _anneal(
        chains, betas, sizes, num_leapfrog=num_leapfrog, num_chains=num_chains, adapt=None,
        keep_increments=keep_increments, bar=bar,
    )  # fmt: skip
    n = len(block)
    return (
        log_weight.reshape(n, num_chains),
        acceptance.reshape(n, num_chains).mean(1),
        sizes,
        None if increments is None else increments.reshape(n, num_chains, num_steps),
    )


@dataclass(repr=False)
class BDMCResult(Displayed):
    """:func:`bdmc`'s sandwich per simulated point, shape ``(n,)`` each.

    :ivar lower: forward AIS, a stochastic lower bound on log p(x).
    :ivar lower_stderr: its standard error over chains.
    :ivar upper: reverse AIS from the generating latent, a stochastic upper bound.
    :ivar upper_stderr: its standard error over chains (delta method on 1/w).
    :ivar width: ``upper − lower``, an upper bound (in expectation) on the error of either.
    :ivar data: the simulated points, shape ``(n, d)``.
    :ivar forward: the forward :class:`AISEstimate`.
    """

    lower: torch.Tensor
    lower_stderr: torch.Tensor
    upper: torch.Tensor
    upper_stderr: torch.Tensor
    width: torch.Tensor
    data: torch.Tensor
    forward: AISEstimate

    def __len__(self) -> int:
        return self.lower.shape[0]

    def _display(self):
        n = len(self)
        title = (
            f"BDMCResult: the BDMC sandwich of log p(x) on {n} simulated points (forward and "
            f"reverse AIS, T = {self.forward.num_steps} steps, C = {self.forward.num_chains} "
            "chains)"
        )
        if n == 0:
            return title, []

        def mean(values, stderr):
            return with_error(values.mean().item(), (stderr.pow(2).sum().sqrt() / n).item())

        return title, [
            ("lower", f"{mean(self.lower, self.lower_stderr)} nats per point (forward AIS)"),
            ("upper", f"{mean(self.upper, self.upper_stderr)} nats per point (reverse AIS)"),
            (
                "width",
                f"{self.width.mean().item():.3g} mean, {self.width.max().item():.3g} largest "
                "(nats): bounds AIS's error, in expectation, on data like the model's own",
            ),
        ]


def simulate(model, like: torch.Tensor, num_points: int):
    """``num_points`` draws (x, z) from the model: its latent sites from the prior, x from the
    likelihood (``poutine.uncondition``); ``like`` gives the data's width, dtype and device."""
    template = like[:1].expand(num_points, *like.shape[1:]).clone()
    with torch.no_grad():
        observed = observed_sites(poutine.trace(model).get_trace(template))
        if len(observed) > 1:
            raise ContractError(
                f"bdmc simulates each point from the model's one observed site, but the model "
                f"observes {sorted(site['name'] for site in observed)}, which together make up a "
                "point in a way only the model knows"
            )
        name = observed[0]["name"]
        trace = poutine.trace(poutine.uncondition(model)).get_trace(template)
    x = trace.nodes[name]["value"].detach()
    latents = {
        site["name"]: site["value"].detach() for site in sample_sites(trace) if site["name"] != name
    }
    return x, latents


def bdmc(
    model: Callable,
    guide: Callable | None,
    like: torch.Tensor,
    *,
    num_points: int = 100,
    num_steps: int = 100,
    num_chains: int = 8,
    num_leapfrog: int = 10,
    step_size: float | None = None,
    target_acceptance: float = 0.65,
    proposal: str = "guide",
    seed: int | None = None,
    progress: bool = True,
) -> BDMCResult:
    r"""Bidirectional Monte Carlo [2]: how tight AIS is for this model and budget.

    Simulates ``num_points`` points from the model (z from the prior, x from the likelihood),
    runs forward AIS on them (:func:`ais`, a lower bound) and reverse AIS from each point's
    generating z, an exact posterior sample (an upper bound: :math:`-\log \frac1C \sum_c
    w'_c` with :math:`\log w' = \sum_t (\beta_{t-1} - \beta_t)[\log p(x, z_t) - \log q(z_t)]`
    along the schedule reversed). The sandwich [lower, upper] contains log p(x) in
    expectation; its width bounds the error of AIS (and of any estimator whose value falls in
    it) on data like the model's own.

    The reverse chains use the step sizes the forward run's warm-up chose (or ``step_size``).

    :param like: real data of the model's width (only its shape, dtype and device are used).
    :returns: :class:`BDMCResult`.
    """
    check_positive_int(num_points, "num_points")
    if seed is None:
        seed = int(torch.randint(2**62, ()))
    with forked_rng(like):
        torch.manual_seed(seed)
        with evaluating(model, guide):
            x, latents = simulate(model, like, num_points)
    forward = ais(model, guide, x, num_steps=num_steps, num_chains=num_chains,
                  num_leapfrog=num_leapfrog, step_size=step_size,
                  target_acceptance=target_acceptance, proposal=proposal, seed=seed + 1,
                  progress=progress)  # fmt: skip
    guide = guide if proposal == "guide" else None
    names = list(latents)
    rows = x.repeat_interleave(num_chains, dim=0)
    start = {n: v.repeat_interleave(num_chains, dim=0) for n, v in latents.items()}
    # Reverse step s runs the transition of β_{T−s}, which forward step T − s ran.
    forward_sizes = forward.step_size
    sizes = torch.cat([forward_sizes.flip(1)[:, 1:], forward_sizes[:, :1]], 1)
    betas = sigmoid_schedule(num_steps).flip(0)
    with (
        forked_rng(x),
        evaluating(model, guide),
        tqdm(total=num_steps, disable=not progress, desc="bdmc reverse", unit="step") as bar,
    ):
        torch.manual_seed(seed + 2)
        chains = _Chains(_Densities(model, guide, rows, names), start)
        log_weight, _, _ = _anneal(chains, betas, sizes, num_leapfrog=num_leapfrog,
                                   num_chains=num_chains, adapt=None, keep_increments=False,
                                   bar=bar)  # fmt: skip
    # The reverse increments are (β_{t−1} − β_t)(…) < 0 steps: _anneal summed Δβ with Δβ < 0,
    # so log_weight is log w'; the upper bound is −log mean(w').
    log_inverse, inverse_stderr = log_mean_weight(log_weight.reshape(num_points, num_chains))
    return BDMCResult(
        lower=forward.estimate,
        lower_stderr=forward.stderr,
        upper=-log_inverse,
        upper_stderr=inverse_stderr,
        width=-log_inverse - forward.estimate,
        data=x,
        forward=forward,
    )
