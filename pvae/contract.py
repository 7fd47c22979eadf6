"""The site contract of a model/guide pair: tracing the pair, checking it, evaluating it."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import constraints

from pvae.finite import nonfinite_density_error

__all__ = [
    "FIXED_SUPPORTS",
    "ContractError",
    "LeafDraws",
    "base_support",
    "check_contract",
    "check_data_support",
    "check_registered_modules",
    "check_support",
    "depends_on",
    "evaluating",
    "forked_rng",
    "latent_site",
    "observed_site",
    "observed_sites",
    "observing",
    "sample_sites",
    "site_log_prob",
    "trace_pair",
    "with_obs_site",
]

# The observed site the tools read, where a model observes several (None: the only one).
_OBS_SITE: contextvars.ContextVar[str | None] = contextvars.ContextVar("obs_site", default=None)


class ContractError(ValueError):
    """A model/guide pair does not keep the site contract of :mod:`pvae.models`."""


class LeafDraws(Messenger):
    """Make every real-valued latent draw a leaf tensor that requires grad, so that autograd
    can tell which distributions depend on which draws (each edge once, not through paths)."""

    def _postprocess_message(self, msg):
        value = msg["value"]
        if (
            msg["type"] == "sample"
            and not msg["is_observed"]
            and isinstance(value, torch.Tensor)
            and value.is_floating_point()
        ):
            msg["value"] = value.detach().requires_grad_(True)


def depends_on(output: torch.Tensor, inputs) -> list[bool]:
    """For each tensor of ``inputs``, whether autograd has a path from it to ``output``: a
    structural dependency, which a gradient that happens to be zero still counts. Inputs that
    do not require grad have none."""
    inputs = list(inputs)
    tracked = [i for i, tensor in enumerate(inputs) if tensor.requires_grad]
    found = [False] * len(inputs)
    if not output.requires_grad or not tracked:
        return found
    grads = torch.autograd.grad(
        output.sum(), [inputs[i] for i in tracked], allow_unused=True, retain_graph=True
    )
    for i, grad in zip(tracked, grads, strict=True):
        found[i] = grad is not None
    return found


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


def forked_rng(x: torch.Tensor):
    """A forked global RNG on ``x``'s device: work inside it (a check, a probe, monitoring
    beside training) leaves the draws after it unchanged."""
    return torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])


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


def observed_sites(model_trace, conditioned=()) -> list[dict]:
    """Every sample site of the model inside ``pyro.plate("data", ...)`` that observes data,
    whatever their names. A trace of the model under ``poutine.condition`` marks the
    conditioned sites observed too: name them in ``conditioned``.

    :raises ContractError: if there is none, listing the sample sites.
    """
    sites = sample_sites(model_trace)
    observed = [
        site
        for site in sites
        if site["is_observed"] and _in_data_plate(site) and site["name"] not in conditioned
    ]
    if not observed:
        names = sorted(site["name"] for site in sites)
        raise ContractError(
            "the model must observe the data at a sample site inside pyro.plate('data', ...) "
            f"(pyro.sample(name, ..., obs=x)); its sample sites are {names}, none observed there"
        )
    return observed


def observed_site(model_trace, conditioned=()) -> dict:
    """The model's observed site in ``model_trace``, the one whose likelihood the tools read
    (its support, its variance, its mean): the one sample site inside ``pyro.plate("data",
    ...)`` that observes the data, whatever its name (``"x"`` in pvae's models, ``"obs"`` in
    Pyro's VAE example), or, where the model observes several, the one named by ``obs_site=``
    (:func:`observing`). Conditioned sites are as in :func:`observed_sites`.

    :raises ContractError: if there is none, if there are several and none is named, or if the
        named one is not among them, listing the observed sites.
    """
    observed = observed_sites(model_trace, conditioned)
    names = sorted(site["name"] for site in observed)
    chosen = _OBS_SITE.get()
    if chosen is not None:
        for site in observed:
            if site["name"] == chosen:
                return site
        raise ContractError(
            f"obs_site must name an observed site of the model inside the data plate, got "
            f"{chosen!r}; its observed sites are {names}"
        )
    if len(observed) == 1:
        return observed[0]
    raise ContractError(
        f"the model observes {len(observed)} sites inside the data plate ({names}); name the "
        "one whose likelihood scores the data with obs_site= (log p̂ sums every observed site)"
    )


@contextlib.contextmanager
def observing(obs_site: str | None):
    """Within this context every pvae tool reads ``obs_site`` as the model's observed site
    (:func:`observed_site`); ``None`` leaves the choice to the trace (the only observed site).
    The functions that take ``obs_site=`` enter it for their call; entering it around other
    calls (plots, a whole notebook cell) does the same for them.

    :raises ValueError: if ``obs_site`` is neither ``None`` nor a non-empty str.
    """
    if obs_site is not None and (not isinstance(obs_site, str) or not obs_site):
        raise ValueError(
            f"obs_site must be the name of a sample site (a str) or None, got {obs_site!r}"
        )
    token = _OBS_SITE.set(obs_site if obs_site is not None else _OBS_SITE.get())
    try:
        yield
    finally:
        _OBS_SITE.reset(token)


def with_obs_site(function: Callable) -> Callable:
    """Run ``function`` (which documents an ``obs_site=None`` keyword) within
    :func:`observing` of the ``obs_site`` it is called with."""

    @functools.wraps(function)
    def wrapper(*args, obs_site: str | None = None, **kwargs):
        with observing(obs_site):
            return function(*args, obs_site=obs_site, **kwargs)

    return wrapper


def base_support(fn):
    """``fn``'s support with every ``independent`` wrapper taken off."""
    support = fn.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support


def check_support(site, *, first_point: int = 0, repeats: int = 1) -> None:
    """Refuse data outside the support of the observed ``site``'s distribution, checked
    entry by entry, whether or not the distribution validates its arguments (Pyro's VAE
    example scores grey levels under a ``Bernoulli(..., validate_args=False)``, a number
    that is not a log-probability of anything). ``first_point`` is the index of the site's
    first row in the whole data and ``repeats`` how many consecutive rows each point fills, for
    the error's index.

    :raises ContractError: naming the site, the distribution, its support and the first entry
        outside it.
    """
    fn, value = site["fn"], site["value"]
    support = base_support(fn)
    try:
        inside = support.check(value)
    except (NotImplementedError, RuntimeError, ValueError):  # a support torch cannot check
        return
    if inside.shape != value.shape or bool(inside.all()):
        return
    flat = (~inside).reshape(value.shape[0], -1) if value.dim() > 1 else ~inside.unsqueeze(-1)
    row, entry = (int(i) for i in flat.nonzero()[0])
    bad = value.reshape(flat.shape)[row, entry].item()
    base = getattr(fn, "base_dist", fn)
    raise ContractError(
        f"the data at the model's observed site {site['name']!r} are outside the support of its "
        f"{type(base).__name__} ({support}): the first such entry is point "
        f"{first_point + row // repeats}, entry {entry}, value {bad!r}. Binarize the data for a "
        "Bernoulli, or use a likelihood whose support holds them"
    )


def latent_site(trace, site: str | None = None) -> str:
    """The latent site a diagnostic reads: ``site`` if it is a latent (unobserved) sample site
    of ``trace`` (a guide's or a model's), or, for ``None``, the trace's only one.

    :raises ValueError: naming the latent sites there are.
    """
    latent = [s["name"] for s in sample_sites(trace) if not s["is_observed"]]
    if site is None:
        if len(latent) == 1:
            return latent[0]
        raise ValueError(
            f"the pair has {len(latent)} latent sites {sorted(latent)}; pass site= to choose one"
        )
    if site not in latent:
        raise ValueError(
            f"site must be a latent site of the pair, got {site!r}; its latent sites are "
            f"{sorted(latent)}"
        )
    return site


def _check_traces(model_trace, guide_trace) -> None:
    model_sites = {site["name"]: site for site in sample_sites(model_trace)}
    for name, site in model_sites.items():
        if not _in_data_plate(site):
            raise ContractError(f"model site {name!r} is not inside pyro.plate('data', ...)")
    for site in observed_sites(model_trace):
        check_support(site)
    observed_site(model_trace)  # one observed site, or the one obs_site= names
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
    try:
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
    except ContractError:
        raise
    except ValueError as error:  # Pyro's checks refused a distribution's parameters
        if not check:
            raise
        failure = nonfinite_density_error(
            model,
            guide if proposal == "guide" else None,
            x,
            0,
            "Pyro's checks refused a distribution's parameters",
            label="the first point the pair was checked on",
        )
        if failure.site is None:  # not a non-finite number: the pair's own error
            raise
        raise failure from error
    if check:
        _check_traces(model_trace, guide_trace)
    return model_trace, guide_trace


#: Supports that hold no parameters: whether a value lies in one does not depend on the
#: distribution's parameters, so it can be checked without running the decoder.
FIXED_SUPPORTS = (
    constraints.real,
    constraints.boolean,
    constraints.positive,
    constraints.nonnegative,
    constraints.unit_interval,
    constraints.nonnegative_integer,
    constraints.positive_integer,
    constraints.simplex,
)


def _whole_data_sites(trace, block: torch.Tensor, x: torch.Tensor) -> list[dict] | None:
    """The observed sites of ``trace`` (the model run on ``block``, the first rows of ``x``)
    rewritten to hold all of ``x``, if each one's support is in :data:`FIXED_SUPPORTS` and
    its value is ``block`` itself or a reshape of it with a row per point; else ``None``."""
    sites = []
    for site in observed_sites(trace):
        value = site["value"]
        if not any(base_support(site["fn"]) is s for s in FIXED_SUPPORTS):
            return None
        if value is block:
            whole = x
        elif (
            value.dim() >= 1
            and value.shape[0] == block.shape[0]
            and value.numel() == block.numel()
            and value.data_ptr() == block.data_ptr()
            and value.is_contiguous()
            and x.is_contiguous()
        ):
            whole = x.reshape(x.shape[0], *value.shape[1:])
        else:
            return None
        sites.append({**site, "value": whole})
    return sites


def check_data_support(
    model: Callable, guide: Callable | None, x: torch.Tensor, *, chunk_size: int = 4096
) -> None:
    """:func:`check_support` on every point of ``x``: the model run on chunks of it (replaying
    the guide, or with the prior's draws), in eval mode without gradients.

    Where every observed site's support holds no parameters (:data:`FIXED_SUPPORTS`: a Normal's
    real line, a Bernoulli's {0, 1}) and its value is the data (or a reshape of it, a row per
    point), the model runs on two points only and the support is checked on all of ``x`` at
    once: the same check, without a pass of the networks over the data."""
    proposal = "guide" if guide is not None else "prior"
    with evaluating(model, guide):
        block = x[:2]
        model_trace, _ = trace_pair(model, guide, block, proposal, check=False)
        sites = _whole_data_sites(model_trace, block, x)
        if sites is not None:
            for site in sites:
                check_support(site)
            return
        for first in range(0, x.shape[0], chunk_size):
            block = x[first : first + chunk_size]
            model_trace, _ = trace_pair(model, guide, block, proposal, check=False)
            for site in observed_sites(model_trace):
                check_support(site, first_point=first)


def check_contract(model: Callable, guide: Callable | None, x: torch.Tensor) -> None:
    """Run ``guide`` and ``model`` once on ``x`` (eval mode, no gradients) and raise
    :class:`ContractError` if the pair breaks the site contract of :mod:`pvae.models`."""
    with evaluating(model, guide):
        trace_pair(model, guide, x, "guide" if guide is not None else "prior", check=True)


class _ModuleRegistrations(Messenger):
    """Records every ``pyro.param`` call whose initial value is a module's own
    :class:`torch.nn.Parameter` (what ``pyro.module(name, net)`` passes) while the store
    returned another tensor under that name: the module computes with its own parameter, the
    optimizer updates the store's, and neither moves."""

    def __init__(self):
        super().__init__()
        self.stale: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def _pyro_post_param(self, msg):
        init = msg["args"][1] if len(msg["args"]) > 1 else msg["kwargs"].get("init_tensor")
        stored = msg["value"]
        if isinstance(init, torch.nn.Parameter) and isinstance(stored, torch.Tensor):
            if init is not stored and init is not getattr(stored, "unconstrained", lambda: None)():
                self.stale[msg["name"]] = (tuple(init.shape), tuple(stored.shape))


def check_registered_modules(model: Callable, guide: Callable | None, x: torch.Tensor) -> None:
    """Refuse a pair whose ``pyro.module`` registrations found Pyro's param store holding other
    tensors under the same names: what running a notebook cell that builds new networks a
    second time without ``pyro.clear_param_store()`` leaves. ``pyro.module(name, net)`` then
    records the store's old tensors as the parameters (the ones an optimizer updates) while
    ``net`` computes with its own, so training would move neither; with a changed
    architecture the shapes differ too.

    :raises ContractError: naming the parameters (and the shapes, where they differ) and the
        two ways out.
    """
    spy = _ModuleRegistrations()
    with evaluating(model, guide), spy:
        trace_pair(model, guide, x, "guide" if guide is not None else "prior", check=False)
    if not spy.stale:
        return
    names = sorted(spy.stale)
    changed = [
        f"{name}: the module's {own}, the store's {stored}"
        for name, (own, stored) in sorted(spy.stale.items())
        if own != stored
    ]
    shapes = f"; their shapes differ ({'; '.join(changed[:3])})" if changed else ""
    continuing = (
        ""
        if changed
        else ", or register with pyro.module(name, net, update_module_params=True) to continue "
        "from the stored values"
    )
    raise ContractError(
        f"{len(names)} module parameters registered with pyro.module ({', '.join(names[:4])}"
        f"{', ...' if len(names) > 4 else ''}) are not the tensors Pyro's param store holds "
        f"under their names{shapes}. The store keeps an earlier run's parameters: the module "
        "would compute with its own while the optimizer updated the store's, and training "
        f"would move neither. Call pyro.clear_param_store() before building the pair "
        f"again{continuing}"
    )
