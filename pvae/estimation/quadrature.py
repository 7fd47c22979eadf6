"""Exact log p(x) by quadrature over a one- or two-dimensional latent: an oracle for the rest."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro import poutine

from pvae.contract import evaluating, sample_sites, site_log_prob, trace_pair
from pvae.display import Displayed
from pvae.validation import check_data, check_model_data, check_positive_int

__all__ = ["QuadratureEstimate", "log_marginal_quadrature"]

#: log-integrand values this far below a point's largest are left out of its window.
WINDOW_NATS = 60.0


@dataclass(repr=False)
class QuadratureEstimate(Displayed):
    """Per-point results of :func:`log_marginal_quadrature`.

    :ivar estimate: :math:`\\log p(x)` in nats, shape ``(n,)``: composite Simpson's rule in log
        space on the point's window, at the finest refinement.
    :ivar error: the change of the estimate between the last two refinements (nats, shape
        ``(n,)``): a quadrature error estimate, not a Monte Carlo one; ``converged`` says
        whether it is below the tolerance.
    :ivar converged: ``error <= tol``, shape ``(n,)``.
    :ivar lower: the window's lower corner per point, shape ``(n, q)``.
    :ivar upper: its upper corner, shape ``(n, q)``.
    :ivar num_nodes: nodes per latent dimension of the finest refinement.
    """

    estimate: torch.Tensor
    error: torch.Tensor
    converged: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    num_nodes: int

    def __len__(self) -> int:
        return self.estimate.shape[0]

    def _display(self):
        n = len(self)
        title = (
            f"QuadratureEstimate: log p(x) by composite Simpson quadrature ({self.num_nodes} "
            f"nodes per latent dimension) of {n} points"
        )
        if n == 0:
            return title, []
        spread = self.estimate.std().item() / n**0.5 if n > 1 else math.nan
        return title, [
            ("log p(x)", f"{self.estimate.mean().item():.6g} nats per point (mean)"),
            ("across points", f"se {spread:.2g} (the points' spread / √n)"),
            (
                "quadrature error",
                f"{self.error.max().item():.2g} nats at most (the last refinement's change); "
                f"converged on {int(self.converged.sum())} of {n} points",
            ),
        ]


def _latent_site(model, x: torch.Tensor) -> tuple[str, int, bool]:
    """The model's one latent site, its dimension q ≤ 2, and whether its event is a vector."""
    model_trace, _ = trace_pair(model, None, x[:1], "prior", check=True)
    latent = [site for site in sample_sites(model_trace) if not site["is_observed"]]
    if len(latent) != 1:
        names = [site["name"] for site in latent]
        raise ValueError(f"quadrature needs a model with one latent site, got {names}")
    site = latent[0]
    event = tuple(site["fn"].event_shape)
    if event not in ((), (1,), (2,)):
        raise ValueError(
            f"quadrature needs a latent of dimension 1 or 2; site {site['name']!r} has event "
            f"shape {event}"
        )
    return site["name"], event[0] if event else 1, bool(event)


def _log_joint(model, site: str, vector: bool, x: torch.Tensor, z: torch.Tensor, chunk: int):
    """log p(x_i, z_ik) for nodes ``z`` of shape ``(n, m, q)``, shape ``(n, m)``; rows are
    point-major, ``chunk`` of them per pass."""
    n, m, q = z.shape
    flat = z.reshape(n * m, q)
    parts = []
    for start in range(0, n * m, chunk):
        rows = torch.arange(start, min(start + chunk, n * m), device=x.device)
        block, value = x[rows // m], flat[rows]
        conditioned = poutine.condition(model, data={site: value if vector else value[:, 0]})
        trace = poutine.trace(conditioned).get_trace(block)
        total = 0.0
        for node in sample_sites(trace):
            total = total + site_log_prob(node, (block.shape[0],))
        parts.append(total)
    return torch.cat(parts).reshape(n, m)


def _simpson(num_nodes: int, like: torch.Tensor) -> torch.Tensor:
    """log of Simpson's weights on ``num_nodes`` (odd) unit-spaced nodes."""
    weights = like.new_full((num_nodes,), 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return (weights / 3).log()


def _grid(lower: torch.Tensor, upper: torch.Tensor, num_nodes: int):
    """Tensor-product nodes ``(n, num_nodes**q, q)`` on each point's box and the log-weights
    ``(n, num_nodes**q)`` of Simpson's rule on them."""
    n, q = lower.shape
    steps = torch.linspace(0, 1, num_nodes, dtype=lower.dtype, device=lower.device)
    axes = lower.unsqueeze(-1) + (upper - lower).unsqueeze(-1) * steps  # (n, q, G)
    log_h = ((upper - lower) / (num_nodes - 1)).log()  # (n, q)
    unit = _simpson(num_nodes, lower)
    if q == 1:
        return axes[:, 0, :, None], unit + log_h[:, :1]
    first, second = axes[:, 0, :, None].expand(-1, -1, num_nodes), axes[:, 1, None, :]
    nodes = torch.stack([first, second.expand(-1, num_nodes, -1)], -1).reshape(n, -1, 2)
    weights = (unit[:, None] + unit[None, :]).reshape(-1) + log_h.sum(-1, keepdim=True)
    return nodes, weights


def log_marginal_quadrature(
    model: Callable,
    x: torch.Tensor,
    *,
    bound: float = 10.0,
    coarse_nodes: int | None = None,
    max_nodes: int | None = None,
    tol: float = 1e-6,
    chunk_size: int = 2**16,
) -> QuadratureEstimate:
    r""":math:`\log p(x) = \log \int p(x \mid z)\, p(z)\, dz` of every data point by quadrature,
    for a model with one latent site of dimension 1 or 2: the exact answer the sampling
    estimators (:func:`log_marginal`, the ELBO, the IWAE bound) are checked against.

    The log-integrand :math:`\log p(x, z)` is evaluated by conditioning the model's latent
    site on the nodes (the model's own densities, under ``pyro.plate("data")``). First on a
    coarse grid over :math:`[-b, b]^q` (``bound``; the N(0, 1) prior leaves less than
    :math:`e^{-b^2/2}` of its mass outside), which finds each point's window: the box of the
    nodes whose log-integrand is within :data:`WINDOW_NATS` of the point's largest, one coarse
    cell wider on each side.
    Then composite Simpson's rule in log space (``logsumexp`` of log-integrand plus
    log-weight) on the window, with the nodes per dimension doubled until the estimate
    changes by at most ``tol`` nats or ``max_nodes`` is reached.

    What it cannot see: mass in a peak narrower than a coarse cell (:math:`2b /
    (\text{coarse\_nodes} - 1)`) between two coarse nodes, and mass outside :math:`[-b, b]^q`.
    Integrands with kinks (ReLU decoders) converge more slowly than smooth ones; ``error``
    and ``converged`` report it.

    :param model: a model keeping the site contract of :mod:`pvae.models`, with one latent
        site whose event shape is ``()``, ``(1,)`` or ``(2,)``.
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param float bound: the half-width b of the coarse grid (default 10).
    :param int coarse_nodes: nodes per dimension of the coarse grid (default 4097 for q = 1,
        257 for q = 2).
    :param int max_nodes: the most nodes per dimension on the window (default 16385 for q = 1,
        1025 for q = 2).
    :param float tol: the change in nats at which the refinement stops (default 1e-6).
    :param int chunk_size: the most (node, point) rows evaluated in one pass (default 65536).
    :rtype: QuadratureEstimate
    """
    check_data(x, "x")
    check_model_data(model, x, "x")
    check_positive_int(chunk_size, "chunk_size")
    if not (isinstance(bound, int | float) and math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound must be a finite number > 0, got {bound!r}")
    if not (isinstance(tol, int | float) and tol > 0):
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    with evaluating(model), torch.no_grad():
        site, q, vector = _latent_site(model, x)
        coarse = coarse_nodes or (4097 if q == 1 else 257)
        finest = max_nodes or (16385 if q == 1 else 1025)
        for name, value in (("coarse_nodes", coarse), ("max_nodes", finest)):
            if check_positive_int(value, name) < 3 or value % 2 == 0:
                raise ValueError(f"{name} must be an odd integer ≥ 3, got {value!r}")

        def integrate(lower, upper, num_nodes):
            nodes, log_weights = _grid(lower, upper, num_nodes)
            log_f = _log_joint(model, site, vector, x, nodes, chunk_size)
            return torch.logsumexp(log_f + log_weights, -1), log_f, nodes

        box = x.new_full((x.shape[0], q), bound)
        _, log_f, nodes = integrate(-box, box, coarse)
        if bool(log_f.isnan().any()):
            point, node = (int(i) for i in log_f.isnan().nonzero()[0])
            raise ValueError(
                f"log p(x, z) is NaN for point {point} at z = {nodes[point, node].tolist()}: "
                "the model's density is not defined there (e.g. a variance that underflows)"
            )
        if not torch.isfinite(log_f.max(-1).values).all():
            raise ValueError(
                "the log-integrand is not finite at any coarse node for some point: the "
                "model gives these data no density on the grid"
            )
        inside = log_f >= log_f.max(-1, keepdim=True).values - WINDOW_NATS
        cell = 2 * bound / (coarse - 1)
        kept = torch.where(inside.unsqueeze(-1), nodes, math.nan)
        lower = (kept.nan_to_num(math.inf).amin(1) - cell).clamp(min=-bound)
        upper = (kept.nan_to_num(-math.inf).amax(1) + cell).clamp(max=bound)
        num_nodes = min(129 if q == 1 else 65, finest)
        estimate, _, _ = integrate(lower, upper, num_nodes)
        error = torch.full_like(estimate, math.inf)
        while 2 * num_nodes - 1 <= finest and not bool((error <= tol).all()):
            num_nodes = 2 * num_nodes - 1
            refined, _, _ = integrate(lower, upper, num_nodes)
            error, estimate = (refined - estimate).abs(), refined
    return QuadratureEstimate(
        estimate=estimate,
        error=error,
        converged=error <= tol,
        lower=lower,
        upper=upper,
        num_nodes=num_nodes,
    )
