"""The site contract of a model/guide pair: tracing the pair, checking it, evaluating it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = [
    "ContractError",
    "check_contract",
    "evaluating",
    "sample_sites",
    "site_log_prob",
    "trace_pair",
]


class ContractError(ValueError):
    """A model/guide pair does not keep the site contract of :mod:`pvae.models`."""


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


def site_log_prob(site, shape: tuple[int, ...]) -> torch.Tensor:
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


def sample_sites(trace):
    return [
        site
        for site in trace.nodes.values()
        if site["type"] == "sample"
        and not site_is_subsample(site)
        and not site["infer"].get("is_auxiliary", False)
    ]


def _check_traces(model_trace, guide_trace) -> None:
    model_sites = {site["name"]: site for site in sample_sites(model_trace)}
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
    guided = {site["name"] for site in sample_sites(guide_trace)}
    if latent != guided:
        raise ContractError(
            f"the guide must sample exactly the model's latent sites {sorted(latent)}, "
            f"but samples {sorted(guided)}"
        )
    for site in sample_sites(guide_trace):
        if site["is_observed"]:
            raise ContractError(f"the guide observes site {site['name']!r}; guides observe nothing")
        if not _in_data_plate(site):
            raise ContractError(
                f"guide site {site['name']!r} is not inside pyro.plate('data', ...)"
            )


def trace_pair(
    model, guide, x: torch.Tensor, proposal: str, check: bool, noise=None, particles=None
):
    """Trace the proposal, then the model replaying it, on ``x``. ``noise`` (a messenger, e.g.
    the estimators' common random numbers) supplies the proposal's draws; ``particles`` a
    ``pyro.plate`` of samples outside every plate of the pair (vectorized layout)."""
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


def check_contract(model: Callable, guide: Callable | None, x: torch.Tensor) -> None:
    """Run ``guide`` and ``model`` once on ``x`` (eval mode, no gradients) and raise
    :class:`ContractError` if the pair breaks the site contract of :mod:`pvae.models`."""
    with evaluating(model, guide):
        trace_pair(model, guide, x, "guide" if guide is not None else "prior", check=True)
