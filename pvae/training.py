"""Training: stochastic variational inference over minibatches with Pyro's SVI."""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import torch_item, zero_grads
from pyro.optim import PyroOptim
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import is_validation_enabled
from tqdm import tqdm

from pvae.marginal import check_contract, elbo_terms
from pvae.validation import (
    check_bool,
    check_choice,
    check_data,
    check_dtypes,
    check_model_data,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_seed,
)
from pvae.watchdog import Watchdog

__all__ = [
    "ELBOS",
    "NONFINITE",
    "FitState",
    "History",
    "KLWeight",
    "NonFiniteError",
    "default_optimizer",
    "fit",
    "kl_cyclical",
    "kl_warmup",
]

logger = logging.getLogger(__name__)

ELBOS = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}


class KLWeight(Messenger):
    r"""Scale every *latent* sample site (model and guide) by β, leaving observed sites alone.

    Applied around both the model and the guide, it turns the ELBO into
    :math:`\mathbb{E}_q[\log p(x|z)] - \beta\,\mathrm{KL}(q \| p)` for ``Trace_ELBO`` and
    ``TraceMeanField_ELBO`` alike (a :func:`pyro.poutine.scale` restricted to latent sites).
    """

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.beta


def kl_warmup(epochs: int, start: float = 0.0) -> Callable[[int], float]:
    """A KL-weight schedule for :func:`fit`: β rises linearly from ``start`` at epoch 0 to 1 at
    epoch ``epochs`` and stays there (KL annealing / warm-up)."""
    check_positive_int(epochs, "epochs")
    if check_nonnegative_float(start, "start") > 1:
        raise ValueError(f"start must be in [0, 1], got {start!r}")

    def schedule(epoch: int) -> float:
        return min(1.0, start + (1.0 - start) * epoch / epochs)

    return schedule


def kl_cyclical(
    period: int, *, ramp: float = 0.5, cycles: int | None = None
) -> Callable[[int], float]:
    """A cyclical KL-weight schedule for :func:`fit` (Fu et al. [1]): every ``period`` epochs β
    rises linearly from 0 to 1 over the first ``ramp`` share of the period, then stays at 1
    until the period ends; after ``cycles`` periods (default: never) it stays at 1.

    [1] Fu, H., Li, C., Liu, X., Gao, J., Celikyilmaz, A. & Carin, L. (2019). Cyclical
        Annealing Schedule: A Simple Approach to Mitigating KL Vanishing. NAACL.
    """
    check_positive_int(period, "period")
    if not 0 < check_positive_float(ramp, "ramp") <= 1:
        raise ValueError(f"ramp must be in (0, 1], got {ramp!r}")
    if cycles is not None:
        check_positive_int(cycles, "cycles")

    def schedule(epoch: int) -> float:
        if cycles is not None and epoch >= cycles * period:
            return 1.0
        return min(1.0, (epoch % period) / (ramp * period))

    return schedule


class JointOptim(PyroOptim):
    """A Pyro optimizer that steps every parameter with *one* torch optimizer.

    ``pyro.optim.Adam`` keeps a separate ``torch.optim.Adam`` per parameter tensor and
    :meth:`pyro.infer.SVI.step` then refills every gradient with fresh zeros. For networks of
    many tensors that per-parameter Python work is a large share of a small minibatch step.
    This optimizer (still driven by ``SVI.step``) adds parameters to a single torch optimizer
    as SVI first reports them, steps them together (torch's multi-tensor ``foreach`` kernels)
    and resets their gradients to ``None`` (``zero_grad(set_to_none=True)``), so SVI has no
    zeros to write. The update is the same as Pyro's per-parameter Adam.

    :param optim_constructor: a :class:`torch.optim.Optimizer` class, e.g. ``torch.optim.Adam``.
    :param dict optim_args: its keyword arguments, e.g. ``{"lr": 1e-3}`` (one dict for every
        parameter; per-parameter callables are what ``pyro.optim`` is for).
    :param float lr_decay: multiply the learning rate by this factor after every step
        (default 1: constant), like ``pyro.optim.ClippedAdam``'s ``lrd``.
    """

    def __init__(
        self,
        optim_constructor: type[torch.optim.Optimizer],
        optim_args: dict,
        *,
        lr_decay: float = 1.0,
    ):
        if not isinstance(optim_args, dict):
            raise TypeError(f"optim_args must be a dict, got {type(optim_args).__name__}")
        if not 0 < check_positive_float(lr_decay, "lr_decay") <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
        super().__init__(optim_constructor, optim_args)
        self.lr_decay = lr_decay
        self.optimizer: torch.optim.Optimizer | None = None
        self._seen: set[torch.Tensor] = set()

    def __call__(self, params, *args, **kwargs) -> None:
        new = [p for p in params if p not in self._seen]
        if new:
            if self.optimizer is None:
                self.optimizer = self.pt_optim_constructor(new, **self.pt_optim_args)
            else:  # at the current (decayed) rate, like the parameters already there
                self.optimizer.add_param_group(
                    {"params": new, "lr": self.optimizer.param_groups[0]["lr"]}
                )
            self._seen.update(new)
            self._restore_waiting_state(new)
        if self.optimizer is None:  # a step that reported no parameters: nothing to update
            return
        self.optimizer.step(*args, **kwargs)
        self.optimizer.zero_grad(set_to_none=True)
        if self.lr_decay != 1:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.lr_decay

    #: The entry of each parameter's :meth:`get_state` that holds its param group's learning rate.
    LR_KEY = "group_lr"

    def get_state(self) -> dict:
        """Optimizer state per parameter, keyed by Pyro param name like ``PyroOptim``'s. Each
        entry also holds the parameter's current (decayed) learning rate under :attr:`LR_KEY`,
        so that an optimizer restored with :meth:`set_state` continues the ``lr_decay``
        schedule where this one stands instead of starting it again (also for parameters
        that have no other state, e.g. under plain SGD)."""
        if self.optimizer is None:  # nothing stepped yet: what set_state left waiting
            return {
                name: _copy(state) for name, state in self._state_waiting_to_be_consumed.items()
            }
        store = pyro.get_param_store()
        return {
            store.param_name(p): {
                **_copy(self.optimizer.state.get(p, {})),
                self.LR_KEY: group["lr"],
            }
            for group in self.optimizer.param_groups
            for p in group["params"]
        }

    def set_state(self, state_dict: dict) -> None:
        """Load state from :meth:`get_state`; applied to each parameter, with its learning rate,
        when SVI first steps it (to parameters already seen, at once). The saved learning rate
        replaces the one this optimizer was built with, so that an ``lr_decay`` schedule goes
        on where it stood.

        :raises ValueError: (when applied) for an entry that another optimizer wrote, e.g. the
            per-parameter ``state_dict`` of ``pyro.optim.Adam``.
        """
        self._state_waiting_to_be_consumed.update(state_dict)
        if self.optimizer is not None:
            self._restore_waiting_state(list(self._seen))

    def _restore_waiting_state(self, params) -> None:
        store = pyro.get_param_store()
        for p in params:
            name = store.param_name(p)
            state = self._state_waiting_to_be_consumed.pop(name, None)
            if state is not None:
                if not isinstance(state, dict) or {"state", "param_groups"} <= set(state):
                    raise ValueError(
                        f"the optimizer state for parameter {name!r} is not a JointOptim "
                        "state (it looks like a per-parameter pyro.optim optimizer's "
                        "state_dict, e.g. pyro.optim.Adam's); restore it into that optimizer "
                        "class, or start JointOptim afresh"
                    )
                state = _copy(state)
                lr = state.pop(self.LR_KEY, None)
                if lr is not None:
                    group = next(g for g in self.optimizer.param_groups if _holds(g, p))
                    group["lr"] = check_positive_float(lr, f"state[{name!r}][{self.LR_KEY!r}]")
                self.optimizer.state[p] = state


def _copy(state: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def _holds(group: dict, p: torch.Tensor) -> bool:
    return any(q is p for q in group["params"])  # by identity: == on tensors is elementwise


class History(list):
    """The per-epoch records :func:`fit` returns: a list of dicts with the keys

    ``epoch``, ``loss`` (the training objective per point, averaged over the epoch's steps,
    with the KL weight), ``kl_weight``, and, on the fixed monitoring subset of the training
    data, ``elbo``, ``recon``, ``kl`` (nats per point, KL weight 1) and ``min_variance`` (the
    smallest decoder variance, ``nan`` without a Normal likelihood, with
    ``min_variance_point`` and ``min_variance_pixel``, the monitored row and pixel where it
    occurs); with validation data the same prefixed ``val_``; with
    ``on_nonfinite="lower-lr"``, ``lr_halvings`` (how often the epoch was repeated at half
    the learning rate after a non-finite step).
    """

    def column(self, key: str) -> np.ndarray:
        """One quantity over the epochs, as an array."""
        if self and key not in self[0]:
            raise KeyError(f"history has no column {key!r}; it has {sorted(self[0])}")
        return np.array([record[key] for record in self], dtype=float)


#: What :func:`fit` does after a non-finite step (its ``on_nonfinite`` argument).
NONFINITE = ("raise", "lower-lr")
#: With ``on_nonfinite="lower-lr"``: the factor on the learning rate per repeat of an epoch,
#: and the most repeats in a row before :func:`fit` gives up.
LR_FACTOR = 0.5
MAX_HALVINGS = 10


class NonFiniteError(FloatingPointError):
    """A training step of :func:`fit` met a non-finite loss, gradient or parameter.

    Raised after the pair and the optimizer are back in their last good state (never with the
    step's update applied). The message gives the full diagnosis; so do the attributes:

    :ivar int epoch: the epoch of the step (from 1).
    :ivar int step: the step within the epoch (from 1).
    :ivar int global_step: the step's place in the run, ``(epoch - 1) * steps per epoch +
        step``.
    :ivar loss: the step's loss (``None`` where the step raised before it had one).
    :ivar parameters: Pyro param-store names of the parameters whose *values* are not finite,
        each with the count and the first offending index (a dict, name → description).
    :ivar gradients: the same for the parameters whose *gradients* are not finite.
    :ivar site: the first sample site (guide first, then the model replayed on the guide's
        draws) with a non-finite distribution parameter, value or log-density on the step's
        minibatch, ``None`` if every site is finite (the non-finite numbers then arise in the
        backward pass); ``program`` says ``"guide"`` or ``"model"`` and ``site_detail`` what.
    :ivar str restored: which state the pair and the optimizer are back in.
    :ivar int halvings: the learning-rate halvings in a row before this error
        (``on_nonfinite="lower-lr"``).
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int = 0,
        step: int = 0,
        global_step: int = 0,
        loss: float | None = None,
        parameters: dict[str, str] | None = None,
        gradients: dict[str, str] | None = None,
        site: str | None = None,
        program: str | None = None,
        site_detail: str = "",
        restored: str = "",
        halvings: int = 0,
    ):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.global_step = global_step
        self.loss = loss
        self.parameters = parameters or {}
        self.gradients = gradients or {}
        self.site = site
        self.program = program
        self.site_detail = site_detail
        self.restored = restored
        self.halvings = halvings


@dataclass
class _Failure:
    """The diagnosis of one non-finite step (see :class:`NonFiniteError`)."""

    epoch: int
    step: int
    global_step: int
    loss: float | None
    parameters: dict[str, str]
    gradients: dict[str, str]
    site: str | None = None
    program: str | None = None
    site_detail: str = ""
    cause: BaseException | None = None
    params: set = field(default_factory=set)  # every parameter the step read
    after_update: bool = False  # the step went through; its update made values non-finite
    have_gradients: bool = True

    def summary(self) -> str:
        def names(entries: dict[str, str], limit: int = 8) -> str:
            shown = [f"{name!r} ({where})" for name, where in list(entries.items())[:limit]]
            more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
            return "; ".join(shown) + more if entries else "all finite"

        where = f"epoch {self.epoch}, step {self.step} (global step {self.global_step})"
        if self.after_update:
            head = f"non-finite parameters after the update of {where}, whose loss was "
        else:
            head = f"non-finite training step at {where}: loss "
        head += "none (the step raised)" if self.loss is None else f"{self.loss:g}"
        gradients = names(self.gradients) if self.have_gradients else "none at hand"
        if self.site is not None:
            site = f"{self.site!r} in the {self.program}: {self.site_detail}"
        else:
            site = self.site_detail or (
                "none: every sample site is finite on this minibatch"
                + (
                    ", so the non-finite numbers arise in the backward pass"
                    if self.gradients
                    else ""
                )
            )
        return (
            f"{head}; parameter values: {names(self.parameters)}; gradients: {gradients}; "
            f"first non-finite sample site: {site}"
            + (f"; the step raised {_first_line(self.cause)}" if self.cause is not None else "")
        )

    def error(self, restored: str, halvings: int, hint: str) -> NonFiniteError:
        keep = ("epoch", "step", "global_step", "loss", "parameters", "gradients", "site")
        details = {k: getattr(self, k) for k in (*keep, "program", "site_detail")}
        return NonFiniteError(
            f"{self.summary()}. {restored[0].upper()}{restored[1:]}. {hint}",
            **details,
            restored=restored,
            halvings=halvings,
        )


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0].rstrip(':')}"


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every entry of every tensor is finite. A 2-norm is NaN or infinite if an entry
    is, and torch computes those of many tensors in one fused pass (the cheapest full read);
    only where a norm is not finite (or overflowed, for entries near the float maximum) does
    an exact entry-wise check decide."""
    tensors = [t for t in tensors if t.is_floating_point() or t.is_complex()]
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors)
    try:
        if bool(torch.stack(norms).isfinite().all()):
            return True
    except RuntimeError:  # tensors on several devices
        if all(bool(norm.isfinite()) for norm in norms):
            return True
    return all(bool(t.isfinite().all()) for t in tensors)


def _entries(t: torch.Tensor) -> str:
    """Where ``t`` is not finite: counts and the first offending index."""
    t = t.detach()
    bad = ~torch.isfinite(t)
    first = int(bad.flatten().nonzero()[0]) if bad.any() else 0
    index = tuple(int(i) for i in np.unravel_index(first, tuple(t.shape))) if t.dim() else ()
    return (
        f"{int(t.isnan().sum())} NaN and {int(t.isinf().sum())} infinite of {t.numel()} "
        f"entries, the first at index {index}"
    )


def _site_problem(site: dict) -> str | None:
    """What is non-finite at a sample site: a distribution parameter (outermost
    distribution first), the value, or the log-density of the value; ``None`` if nothing."""
    fn, value = site["fn"], site["value"]
    distribution = fn
    while distribution is not None:
        for key, tensor in vars(distribution).items():
            if isinstance(tensor, torch.Tensor) and not _all_finite([tensor]):
                return (
                    f"distribution parameter {key.lstrip('_')!r} of "
                    f"{type(distribution).__name__}: {_entries(tensor)}"
                )
        distribution = getattr(distribution, "base_dist", None)
    if isinstance(value, torch.Tensor) and not _all_finite([value]):
        return f"value: {_entries(value)}"
    log_prob = fn.log_prob(value)
    if isinstance(log_prob, torch.Tensor) and not _all_finite([log_prob]):
        return f"log-density: {_entries(log_prob)}"
    return None


def _first_bad_site(model, guide, x: torch.Tensor) -> tuple[str | None, str | None, str, set]:
    """Re-run ``guide`` and the model replayed on its draws on the minibatch ``x`` (no
    gradients, no Pyro checks, a forked RNG) and find the first sample site with a non-finite
    number; also return the parameters (unconstrained) that the pair reads."""
    try:
        with torch.no_grad(), pyro.validation_enabled(False), _forked_rng(x):
            guide_trace = poutine.trace(guide).get_trace(x)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    except Exception as err:  # the diagnosis must not hide the non-finite step
        return None, None, f"unknown: re-running the pair on the minibatch raised {err!r}", set()
    params = set()
    for trace in (guide_trace, model_trace):
        for node in trace.nodes.values():
            unconstrained = getattr(node.get("value"), "unconstrained", None)
            if node["type"] == "param" and unconstrained is not None:
                params.add(unconstrained())
    for program, trace in (("guide", guide_trace), ("model", model_trace)):
        for name, node in trace.nodes.items():
            if node["type"] == "sample":
                try:
                    problem = _site_problem(node)
                except Exception as err:
                    problem = f"its log-density raised {err!r}"
                if problem is not None:
                    return name, program, problem, params
    return None, None, "", params


def _nonfinite(params: Iterable[torch.Tensor], gradients: bool = False) -> dict[str, str]:
    """Param-store name → where the value (or the gradient) is not finite, in store order."""
    params = set(params)
    found = {}
    for name, p in pyro.get_param_store().named_parameters():
        tensor = p.grad if gradients else p
        if p in params and tensor is not None and not _all_finite([tensor]):
            found[name] = _entries(tensor)
            params.discard(p)
    for p in params:  # parameters outside the store, e.g. cleared since
        tensor = p.grad if gradients else p
        if tensor is not None and not _all_finite([tensor]):
            found[f"<parameter of shape {tuple(p.shape)} outside the param store>"] = _entries(
                tensor
            )
    return found


_RATES = ("lr", "initial_lr", "group_lr")  # a learning rate under these keys
_RATE_LISTS = ("base_lrs", "_last_lr")  # a scheduler's rates, one per param group


def _scaled_lr(entry, factor: float):
    """An optimizer state entry (a :class:`JointOptim` entry, a torch ``state_dict`` or a
    scheduler's) with every learning rate in it multiplied by ``factor``."""
    if isinstance(entry, list):
        return [_scaled_lr(value, factor) for value in entry]
    if not isinstance(entry, dict):
        return entry
    scaled = {}
    for key, value in entry.items():
        if key in _RATES and isinstance(value, numbers.Real | torch.Tensor):
            scaled[key] = value * factor
        elif key in _RATE_LISTS and isinstance(value, list):
            scaled[key] = [rate * factor for rate in value]
        else:
            scaled[key] = _scaled_lr(value, factor)
    return scaled


def _scaled_args(optimizer: PyroOptim, args, factor: float):
    """A PyroOptim's ``optim_args`` (a dict, or a callable returning one) with the learning
    rate multiplied by ``factor`` (torch's default rate where the dict has none)."""
    if callable(args):

        def scaled(*names):  # PyroOptim passes as many names as the original takes
            return _scaled_args(optimizer, args(*names), factor)

        return scaled
    lr = args.get("lr")
    if lr is None:
        default = inspect.signature(optimizer.pt_optim_constructor).parameters.get("lr")
        lr = getattr(default, "default", None)
        if not isinstance(lr, numbers.Real):
            raise ValueError(
                f"cannot lower the learning rate of {type(optimizer).__name__} with "
                f"optim_args {args!r}: give its lr explicitly"
            )
    return {**args, "lr": lr * factor}


class _LastGood:
    """The last state of a training run known to be finite, for :func:`fit` to go back to
    after a non-finite step: the values of the parameters, the buffers of the pair's modules
    and the optimizer state, taken whenever an epoch's steps have all gone through and
    left finite values (and at the start). A parameter first seen later (Pyro creates them
    when a program first runs) enters with its value before its first update."""

    def __init__(self, modules: list[torch.nn.Module], optimizer: PyroOptim, epochs_done: int):
        self.optimizer = optimizer
        self.buffers = [b for module in modules for b in module.buffers()]
        self._step_buffers = [b.clone() for b in self.buffers]  # as before the current step
        self.params: dict[torch.Tensor, torch.Tensor] = {}
        self.epochs_done = epochs_done
        self._take_rest()

    def _take_rest(self) -> None:
        self.buffer_values = [b.clone() for b in self.buffers]
        waiting = getattr(self.optimizer, "_state_waiting_to_be_consumed", {})
        self.optimizer_state = copy.deepcopy({**waiting, **self.optimizer.get_state()})
        self.optimizer_args = self.optimizer.pt_optim_args

    @contextlib.contextmanager
    def buffers_kept(self):
        saved = [b.clone() for b in self.buffers]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in zip(self.buffers, saved, strict=True):
                    buffer.copy_(value)

    def before_step(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self._step_buffers, self.buffers)

    def note(self, params: set[torch.Tensor]) -> None:
        """Called with a step's parameters before its update."""
        if not params <= self.params.keys():
            for p in params - self.params.keys():
                self.params[p] = p.detach().clone()

    def take(self, epochs_done: int) -> bool:
        """Take the current state if it is finite; return whether it was."""
        if not _all_finite([*self.params, *self.buffers]):
            return False
        self.params = {p: p.detach().clone() for p in self.params}
        self.epochs_done = epochs_done
        self._take_rest()
        return True

    def finite(self) -> bool:
        return _all_finite([*self.params.values(), *self.buffer_values])

    def step_intact(self, failure: _Failure) -> bool:
        """Whether the state before the failed step is good: its update was never applied
        (the check came before it, not at the end of the epoch), the parameter values are
        finite and so were the buffers before the step."""
        return (
            not failure.after_update and not failure.parameters and _all_finite(self._step_buffers)
        )

    def undo_step(self, params: Iterable[torch.Tensor]) -> None:
        """Back to the state before the failed step (its update was never applied)."""
        with torch.no_grad():
            for buffer, value in zip(self.buffers, self._step_buffers, strict=True):
                buffer.copy_(value)
        self._clear_grads(params)

    def rewind(self, params: Iterable[torch.Tensor], lr_factor: float = 1.0) -> None:
        """Back to the state taken last, with the learning rate times ``lr_factor``."""
        with torch.no_grad():
            for p, value in self.params.items():
                p.copy_(value)
            for buffer, value in zip(self.buffers, self.buffer_values, strict=True):
                buffer.copy_(value)
        self._clear_grads(params)
        # The optimizer forgets its parameters and re-creates their state from the snapshot
        # (PyroOptim's waiting state) when the next step reports them.
        state, args = copy.deepcopy(self.optimizer_state), self.optimizer_args
        if lr_factor != 1:
            state = _scaled_lr(state, lr_factor)
            args = _scaled_args(self.optimizer, args, lr_factor)
        if isinstance(self.optimizer, JointOptim):
            self.optimizer.optimizer = None
            self.optimizer._seen = set()
        else:
            self.optimizer.optim_objs.clear()
            self.optimizer.grad_clip.clear()
        self.optimizer._state_waiting_to_be_consumed = state
        self.optimizer.pt_optim_args = args

    def _clear_grads(self, params: Iterable[torch.Tensor]) -> None:
        for p in {*self.params, *params}:
            p.grad = None

    def describe(self) -> str:
        if self.epochs_done == 0:
            return "before the first step"
        return f"at the end of epoch {self.epochs_done}"


_FIT_STATE_KEYS = (
    "epochs_done",
    "history",
    "order_seed",
    "order_rng",
    "torch_rng",
    "cuda_rng",
    "watchdog",
)


@dataclass
class FitState:
    """Where a :func:`fit` run stands at the end of an epoch: what ``fit(..., resume=state)``
    needs, beside the pair's weights and the optimizer state, to continue the run as if it
    had never stopped (bitwise on CPU, with the same data and arguments).

    :func:`fit` hands one to ``on_epoch_end`` after every epoch. :meth:`to_dict` and
    :meth:`from_dict` convert it to and from plain Python values and tensors, which
    ``torch.save`` writes and ``torch.load(weights_only=True)`` reads.

    :ivar int epochs_done: epochs trained so far.
    :ivar list history: their records (see :class:`History`).
    :ivar int order_seed: the seed of fit's batch-order generator (the monitoring subset is
        its first draw).
    :ivar torch.Tensor order_rng: that generator's state (``get_state()``).
    :ivar torch.Tensor torch_rng: torch's global CPU RNG state (the draws of training).
    :ivar cuda_rng: the CUDA RNG states of all devices (``torch.cuda.get_rng_state_all()``),
        for data on a CUDA device, else ``None``.
    :ivar watchdog: the :class:`~pvae.watchdog.Watchdog`'s state (its baseline variance and
        the warnings it gave), ``None`` if none watched.

    Python's and NumPy's RNGs are not part of it (Pyro and pvae draw from torch's), nor is
    anything that lives in the pair's modules (weights, and buffers such as the running γ* of
    ``variance="optimal"``) or in the optimizer: the caller saves and restores those.
    """

    epochs_done: int
    history: list[dict]
    order_seed: int
    order_rng: torch.Tensor
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None = None
    watchdog: dict | None = None

    def to_dict(self) -> dict:
        """The state as plain Python values (str, int, float, bool, None, lists and dicts of
        them) and tensors.

        :raises TypeError: for a history entry that is none of these, naming it.
        """
        self.check()
        return {
            "epochs_done": int(self.epochs_done),
            "history": _plain([dict(r) for r in self.history], "the fit state's history"),
            "order_seed": int(self.order_seed),
            "order_rng": self.order_rng.clone(),
            "torch_rng": self.torch_rng.clone(),
            "cuda_rng": None if self.cuda_rng is None else [s.clone() for s in self.cuda_rng],
            "watchdog": (
                None if self.watchdog is None else _plain(self.watchdog, "the fit state's watchdog")
            ),
        }

    @classmethod
    def from_dict(cls, state: dict) -> FitState:
        """The inverse of :meth:`to_dict`.

        :raises ValueError: for a missing or unknown key, or a value of the wrong kind,
            naming the key.
        """
        if not isinstance(state, dict):
            raise TypeError(f"a fit state must be a dict, got {type(state).__name__}")
        for key in _FIT_STATE_KEYS:
            if key not in state:
                raise ValueError(f"the fit state has no key {key!r}")
        for key in state:
            if key not in _FIT_STATE_KEYS:
                raise ValueError(
                    f"the fit state has an unknown key {key!r}; it holds {list(_FIT_STATE_KEYS)}"
                )
        result = cls(**state)
        result.check()
        result.history = [dict(record) for record in result.history]
        return result

    def check(self) -> None:
        """Check every field's kind, naming the field."""
        if not _is_int(self.epochs_done) or self.epochs_done < 0:
            raise ValueError(
                f"the fit state's 'epochs_done' must be a non-negative integer, got "
                f"{self.epochs_done!r}"
            )
        if not isinstance(self.history, list) or not all(
            isinstance(record, dict) for record in self.history
        ):
            raise ValueError("the fit state's 'history' must be a list of dicts (epoch records)")
        if len(self.history) != self.epochs_done:
            raise ValueError(
                f"the fit state's 'history' holds {len(self.history)} records but "
                f"'epochs_done' is {self.epochs_done}"
            )
        if not _is_int(self.order_seed):
            raise ValueError(
                f"the fit state's 'order_seed' must be an integer, got {self.order_seed!r}"
            )
        size = torch.Generator().get_state().shape
        for key in ("order_rng", "torch_rng"):
            value = getattr(self, key)
            if not (
                isinstance(value, torch.Tensor)
                and value.dtype == torch.uint8
                and value.shape == size
            ):
                raise ValueError(
                    f"the fit state's {key!r} must be a CPU generator state (a uint8 tensor of "
                    f"shape {tuple(size)}), got {_describe(value)}"
                )
        if self.cuda_rng is not None and not (
            isinstance(self.cuda_rng, list)
            and all(isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in self.cuda_rng)
        ):
            raise ValueError(
                "the fit state's 'cuda_rng' must be None or a list of CUDA generator states "
                f"(uint8 tensors), got {_describe(self.cuda_rng)}"
            )
        if self.watchdog is not None and not isinstance(self.watchdog, dict):
            raise ValueError(
                f"the fit state's 'watchdog' must be None or a dict, got {_describe(self.watchdog)}"
            )


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:200]


def _plain(value, where: str):
    """``value`` as plain Python values that ``torch.load(weights_only=True)`` reads back (a
    checkpoint's config and history, a fit state's history); errors name ``where``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has a key {key!r} that is not a string")
        return {key: _plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}); a checkpoint's config and history "
        "and a fit state hold plain values (str, int, float, bool, None, and lists and dicts "
        "of them)"
    )


def _adam_args(lr: float, data: torch.Tensor) -> dict:
    """Adam's arguments for :func:`fit`'s default optimizer: fused where torch supports it
    for the data's device and dtype (torch ≥ 2.4 on CPU), else torch's default kernel."""
    probe = torch.zeros(1, dtype=data.dtype, device=data.device, requires_grad=True)
    try:
        torch.optim.Adam([probe], lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return {"lr": lr}
    return {"lr": lr, "fused": True}


def default_optimizer(lr: float, data: torch.Tensor) -> JointOptim:
    """:func:`fit`'s default optimizer for ``data``: Adam at ``lr`` over every parameter at
    once (:class:`JointOptim`), fused where torch has a kernel for the data's device."""
    return JointOptim(torch.optim.Adam, _adam_args(lr, data))


def _forked_rng(x: torch.Tensor):
    return torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])


def _monitor(model, guide, x: torch.Tensor, prefix: str = "") -> dict[str, float]:
    # A forked RNG: monitoring (or not, or on other data) leaves the training draws unchanged.
    with _forked_rng(x):
        terms = elbo_terms(model, guide, x)
    return {
        f"{prefix}{key}": value.mean().item() if isinstance(value, torch.Tensor) else value
        for key, value in terms.items()
    }


def fit(
    model: Callable,
    guide: Callable,
    data: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str = "meanfield",
    num_particles: int = 1,
    kl_weight: float | Callable[[int], float] = 1.0,
    seed: int | None = None,
    validation_data: torch.Tensor | None = None,
    monitor_size: int = 1024,
    max_plate_nesting: int = 1,
    optimizer: pyro.optim.PyroOptim | None = None,
    watchdog: bool | Watchdog = True,
    callback: Callable[[dict], None] | None = None,
    validate_every_step: bool = False,
    on_nonfinite: str = "raise",
    on_epoch_end: Callable[[FitState], None] | None = None,
    resume: FitState | None = None,
    progress: bool = True,
) -> History:
    r"""Fit ``model`` and ``guide`` to ``data`` by maximising the ELBO with Pyro's SVI.

    Each epoch visits every point once in a fresh random order, in minibatches of
    ``batch_size``. A minibatch of :math:`B` of the :math:`N` points is scaled by
    :math:`N / B` (``poutine.scale``), so each step is an unbiased estimate of the full-data
    objective

    .. math:: \sum_{i=1}^N \mathbb{E}_{q(z|x_i)}[\log p(x_i \mid z)]
        - \beta\,\mathrm{KL}(q(z \mid x_i) \,\|\, p(z)),

    with the KL weight β applied to the latent sites only (:class:`KLWeight`). The pair must keep
    the site contract of :mod:`pvae.models`; plain functions work as well as PyroModules.

    Monitoring (at the end of each epoch, in eval mode without gradients, so it never changes a
    parameter) evaluates the ELBO terms and the smallest decoder variance on a fixed subset of
    ``monitor_size`` training points and on ``validation_data``.

    **Non-finite steps.** Every step is checked before its update is applied (one fused
    reduction over the gradients): a loss or a gradient that is not finite stops the step,
    and so do parameter values that are not finite at the end of an epoch (an update that
    overflowed). :func:`fit` then diagnoses it
    (the epoch, the step, the parameters whose values or gradients are not finite by their
    Pyro param-store names, with counts and the first offending index, and the first sample
    site with a non-finite distribution parameter, value or log-density on that minibatch),
    puts the pair and the optimizer back in the last good state and, by ``on_nonfinite``:

    - ``"raise"`` (default): raises :class:`NonFiniteError`. The last good state is the one
      before the failing step where its parameter values are still finite (the update is
      never applied; buffers the step's forward pass changed are put back), else the one at
      the end of the last epoch that left finite values (parameters, buffers and optimizer
      state; before the first step if there is none). Parameters are thus never left
      non-finite by training, and ``on_epoch_end`` never sees them so.
    - ``"lower-lr"``: goes back to the state at the end of the last good epoch, multiplies the
      learning rate by :data:`LR_FACTOR` (½), logs a warning and repeats the epoch (the same
      batch order, fresh draws), recording the halvings in the epoch's record as
      ``lr_halvings``; the lower rate stays for the rest of the run (the optimizer object
      keeps it). After :data:`MAX_HALVINGS` (10) halvings in a row without a finished epoch
      it raises :class:`NonFiniteError`. It lowers the rate of :class:`JointOptim` and of
      ``pyro.optim``'s per-parameter optimizers (and schedulers), whose torch optimizers it
      re-creates from the saved state.

    **Resuming.** ``on_epoch_end`` receives a :class:`FitState` after every epoch; to continue
    an interrupted run, restore the pair's weights and buffers (e.g. :func:`pvae.load`) and
    the optimizer's state (``optimizer.set_state(saved)`` on a new optimizer of the same kind)
    yourself, then call ``fit`` with ``resume=state``, ``epochs`` the run's total and the
    other arguments as before (the same data, batch size, monitoring, schedule). It trains
    epochs ``state.epochs_done + 1 .. epochs``, drawing the same batch orders and random
    numbers as the uninterrupted run would have, and returns the whole history.

    :param model: the model, called as ``model(x_batch)``.
    :param guide: the guide, called as ``guide(x_batch)``.
    :param torch.Tensor data: training data, shape ``(N, d)``.
    :param int epochs: passes over the data (default 10); with ``resume``, the total
        including the epochs already done.
    :param int batch_size: points per step (default 128); ``≥ N`` gives full-batch steps.
    :param float lr: Adam learning rate (default 1e-3).
    :param str elbo: ``"meanfield"`` (``TraceMeanField_ELBO``: analytic KL where it exists,
        default) or ``"trace"`` (``Trace_ELBO``: Monte Carlo KL). Same expectation.
    :param int num_particles: samples of z per point and step, vectorized (default 1).
    :param kl_weight: β ≥ 0, a number or a function of the epoch (e.g. :func:`kl_warmup`);
        default 1 (the ELBO).
    :param int seed: if given, ``pyro.set_rng_seed(seed)`` (torch, numpy and ``random``)
        before training and a batch order drawn from it; default ``None`` leaves the global RNGs
        alone and draws the batch order from torch's. With ``resume``, ``None`` or the run's
        seed (``resume.order_seed``); the RNGs then continue from the state instead.
    :param torch.Tensor validation_data: held-out data monitored each epoch, or ``None``.
    :param int monitor_size: training points monitored each epoch (default 1024; 0 turns
        monitoring off).
    :param int max_plate_nesting: plates in the model (1 for the data plate alone).
    :param optimizer: a Pyro optimizer (any :class:`pyro.optim.PyroOptim`; then ``lr`` is
        not used), default :class:`JointOptim` ``(torch.optim.Adam, {"lr": lr, "fused":
        True})``: the update of ``pyro.optim.Adam({"lr": lr})``, for all parameters at once
        and in one fused kernel where torch has one for the device (CPU and CUDA; else
        unfused).
    :param watchdog: warn (:class:`~pvae.watchdog.IllPosedWarning`, once) when the monitoring
        shows the signature of an unbounded likelihood: ``True`` (default) for a
        :class:`~pvae.watchdog.Watchdog` with its defaults, a configured ``Watchdog``, or
        ``False``. Needs monitoring (``monitor_size > 0``).
    :param callback: called with each epoch's record after monitoring, before the watchdog;
        it may add entries (e.g. an importance-sampled log p(x)), which then appear in the
        history. It runs on a forked RNG like the monitoring, so it does not change training.
    :param bool validate_every_step: Pyro's checks of traces and distribution arguments (on
        unless ``pyro.enable_validation(False)``) run on the first step of every epoch, and
        on every step only if this is ``True`` (default ``False``: the model's structure is the
        same at every step, and on small minibatches the checks cost a tenth of a step).
    :param str on_nonfinite: ``"raise"`` (default) or ``"lower-lr"``: what to do after a
        non-finite step (above).
    :param on_epoch_end: called with a :class:`FitState` after each epoch, once its record is
        in the history (after monitoring, ``callback`` and the watchdog), e.g. to write a
        checkpoint; on a forked RNG, so it does not change training.
    :param FitState resume: continue the run this state came from (above); ``None``
        (default) starts afresh.
    :param bool progress: show a tqdm progress bar (default ``True``).
    :returns: the per-epoch :class:`History` (with ``resume``, from the run's first epoch).
    :raises NonFiniteError: after a non-finite step (``on_nonfinite="raise"``) or after
        :data:`MAX_HALVINGS` learning-rate halvings in a row (``"lower-lr"``).
    """
    check_data(data, "data")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    check_choice(elbo, "elbo", ELBOS)
    num_particles = check_positive_int(num_particles, "num_particles")
    check_positive_int(max_plate_nesting, "max_plate_nesting")
    check_bool(validate_every_step, "validate_every_step")
    check_bool(progress, "progress")
    check_choice(on_nonfinite, "on_nonfinite", NONFINITE)
    if seed is not None:
        check_seed(seed)
    if not isinstance(watchdog, bool | Watchdog):
        raise TypeError(
            f"watchdog must be True, False or a pvae.watchdog.Watchdog, got {watchdog!r}"
        )
    if isinstance(monitor_size, bool) or not isinstance(monitor_size, int) or monitor_size < 0:
        raise ValueError(f"monitor_size must be a non-negative integer, got {monitor_size!r}")
    if not callable(kl_weight):
        check_nonnegative_float(kl_weight, "kl_weight")
    if optimizer is not None and not isinstance(optimizer, PyroOptim):
        raise TypeError(
            f"optimizer must be a pyro.optim.PyroOptim (e.g. pvae.training.JointOptim or "
            f"pyro.optim.Adam), got {type(optimizer).__name__}"
        )
    for name, function in (("callback", callback), ("on_epoch_end", on_epoch_end)):
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be callable or None, got {type(function).__name__}")
    start = 0
    if resume is not None:
        if not isinstance(resume, FitState):
            raise TypeError(
                f"resume must be a FitState (FitState.from_dict(saved) for a stored one), got "
                f"{type(resume).__name__}"
            )
        resume.check()
        start = resume.epochs_done
        if epochs <= start:
            raise ValueError(
                f"epochs ({epochs}) must exceed resume.epochs_done ({start}): epochs is the "
                "run's total, including the epochs already done"
            )
        if seed is not None and seed != resume.order_seed:
            raise ValueError(
                f"seed ({seed!r}) must be None or the seed of the run being resumed "
                f"(resume.order_seed = {resume.order_seed!r})"
            )
        if data.device.type == "cuda" and resume.cuda_rng is None:
            raise ValueError(
                "the data are on a CUDA device but resume.cuda_rng is None: the state comes "
                "from a run on the CPU, which cannot be continued on the GPU draw for draw"
            )
    check_model_data(model, data, "data")
    if validation_data is not None:
        check_data(validation_data, "validation_data", dim=data.shape[1])
        check_model_data(model, validation_data, "validation_data")
    check_dtypes(model, guide, data, "data")
    if validation_data is not None:
        check_dtypes(model, guide, validation_data, "validation_data")

    with _forked_rng(data):
        check_contract(model, guide, data[:2])  # before anything runs the pair on more data

    if resume is not None:
        order_seed = resume.order_seed
    else:
        if seed is not None:
            pyro.set_rng_seed(seed)
        order_seed = int(torch.randint(2**62, ())) if seed is None else seed
    generator = torch.Generator()
    generator.manual_seed(order_seed)
    num_points = data.shape[0]
    batch_size = min(batch_size, num_points)
    num_batches = math.ceil(num_points / batch_size)
    monitor_index = torch.randperm(num_points, generator=generator)[:monitor_size]
    monitor = data[monitor_index.to(data.device)]
    if watchdog is True:
        watchdog = Watchdog()
    watching = bool(watchdog) and monitor_size > 0
    if watching and resume is not None and resume.watchdog is not None:
        watchdog.set_state(resume.watchdog)
    elif watching:
        bound = getattr(model, "log_density_bound", None)  # e.g. VAE, MatteiFrellsen
        watchdog.reset(
            initial_variance=_monitor(model, guide, monitor)["min_variance"],
            bounded=callable(bound) and math.isfinite(bound()),
        )

    def scaled(program):
        def run(x, scale, beta):
            with poutine.scale(scale=scale), KLWeight(beta):
                return program(x)

        return run

    loss_fn = ELBOS[elbo](
        num_particles=num_particles,
        vectorize_particles=num_particles > 1,
        max_plate_nesting=max_plate_nesting,
    )
    if optimizer is None:
        optimizer = default_optimizer(lr, data)
    scaled_model, scaled_guide = scaled(model), scaled(guide)
    checked = is_validation_enabled()  # the user's pyro.enable_validation setting
    modules = [m for m in (model, guide) if isinstance(m, torch.nn.Module)]
    last_good = _LastGood(modules, optimizer, start)

    def diagnose(epoch, step, loss, args, params=(), cause=None, after_update=False):
        """The :class:`_Failure` of a step, or ``None`` for an error that is not about
        non-finite numbers."""
        with last_good.buffers_kept():  # the re-run must not move e.g. a running γ*
            site, program, detail, read = _first_bad_site(model, guide, args[0])
        read = {*params, *read, *last_good.params}
        failure = _Failure(
            epoch=epoch + 1,
            step=step + 1,
            global_step=epoch * num_batches + step + 1,
            loss=loss,
            parameters=_nonfinite(read),
            gradients=_nonfinite(read, gradients=True),
            site=site,
            program=program,
            site_detail=detail,
            cause=cause,
            params=read,
            after_update=after_update,
        )
        # Only the step's own backward pass leaves gradients worth reporting: not an update
        # already applied, nor a step that raised (maybe before it), unless they are bad.
        failure.have_gradients = bool(failure.gradients) or not (after_update or cause)
        if cause is not None and not (failure.parameters or failure.gradients or site):
            return None  # an error of its own, not a non-finite number
        return failure

    def train_epoch(epoch: int, beta: float, order: torch.Tensor):
        """The epoch's steps: the loss per point, and the failure or ``None``."""
        total, params = 0.0, set()
        for step, batch in enumerate(order.split(batch_size)):
            args = (data[batch], num_points / batch.shape[0], beta)
            last_good.before_step()
            try:
                with pyro.validation_enabled(checked and (step == 0 or validate_every_step)):
                    # SVI.step, with the check between the gradients and the update
                    with poutine.trace(param_only=True) as capture:
                        loss = loss_fn.loss_and_grads(scaled_model, scaled_guide, *args)
                    loss = torch_item(loss)
            except Exception as err:
                failure = diagnose(epoch, step, None, args, cause=err)
                if failure is None:
                    raise
                return total, failure
            params = {node["value"].unconstrained() for node in capture.trace.nodes.values()}
            last_good.note(params)
            if not (
                math.isfinite(loss) and _all_finite([p.grad for p in params if p.grad is not None])
            ):
                return total, diagnose(epoch, step, loss, args, params)
            optimizer(params)
            zero_grads(params)
            # A step's loss estimates the full-data loss; weighted by the batch's share of
            # the points, the epoch's steps sum to an estimate of the loss per point × N.
            total += loss * batch.shape[0]
            bar.update()
        if not last_good.take(epochs_done=epoch + 1):  # the last update overflowed
            return total, diagnose(epoch, step, loss, args, params, after_update=True)
        return total / num_points**2, None

    history = History(dict(record) for record in (resume.history if resume is not None else []))
    if resume is not None:
        generator.set_state(resume.order_rng)
        torch.set_rng_state(resume.torch_rng)
        if data.device.type == "cuda":
            torch.cuda.set_rng_state_all(resume.cuda_rng)
    bar = tqdm(total=(epochs - start) * num_batches, disable=not progress, desc="fit", unit="step")
    try:
        for epoch in range(start, epochs):
            beta = kl_weight(epoch) if callable(kl_weight) else kl_weight
            check_nonnegative_float(beta, f"kl_weight({epoch})")
            for module in modules:
                module.train()
            order = torch.randperm(num_points, generator=generator).to(data.device)
            halvings = 0
            while True:
                bar_at = bar.n
                loss, failure = train_epoch(epoch, beta, order)
                if failure is None:
                    break
                bar.update(bar_at - bar.n)
                if on_nonfinite == "raise" or halvings == MAX_HALVINGS or not last_good.finite():
                    raise _give_up(failure, last_good, halvings) from failure.cause
                halvings += 1
                last_good.rewind(failure.params, lr_factor=LR_FACTOR**halvings)
                logger.warning(
                    "%s. Repeating epoch %d from the state %s with the learning rate "
                    "multiplied by %g (halving %d of at most %d in a row).",
                    failure.summary(),
                    epoch + 1,
                    last_good.describe(),
                    LR_FACTOR**halvings,
                    halvings,
                    MAX_HALVINGS,
                )
            record = {"epoch": epoch + 1, "loss": loss, "kl_weight": beta}
            if on_nonfinite == "lower-lr":
                record["lr_halvings"] = halvings
            if monitor_size:
                record.update(_monitor(model, guide, monitor))
            if validation_data is not None:
                record.update(_monitor(model, guide, validation_data, prefix="val_"))
            if callback is not None:
                with _forked_rng(data):
                    callback(record)
            history.append(record)
            if watching:
                watchdog.check(history, monitor_index)
            logger.info("epoch %d: %s", epoch + 1, record)
            bar.set_postfix(
                {k: f"{record[k]:.4g}" for k in ("loss", "elbo", "val_elbo") if k in record}
            )
            if on_epoch_end is not None:
                state = FitState(
                    epochs_done=epoch + 1,
                    history=[dict(r) for r in history],
                    order_seed=order_seed,
                    order_rng=generator.get_state(),
                    torch_rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state_all() if data.device.type == "cuda" else None,
                    watchdog=watchdog.get_state() if watching else None,
                )
                with _forked_rng(data):
                    on_epoch_end(state)
    finally:
        bar.close()
    return history


def _give_up(failure: _Failure, last_good: _LastGood, halvings: int) -> NonFiniteError:
    """Put the pair and the optimizer back in the last good state; the error to raise."""
    lr_factor = LR_FACTOR**halvings
    if last_good.step_intact(failure):
        last_good.undo_step(failure.params)
        restored = "the step's update was not applied: the parameters, buffers and optimizer "
        restored += "state are as they were before it"
    elif last_good.finite():
        last_good.rewind(failure.params, lr_factor=lr_factor)
        restored = (
            "the parameters, buffers and optimizer state are as they were " + last_good.describe()
        )
    else:
        restored = (
            "there is no finite state to go back to (the parameters were not finite before "
            "training); the parameters are left as they are"
        )
    if halvings:
        hint = (
            f"Gave up after {halvings} halvings of the learning rate in a row (the rate is "
            f"now {lr_factor:g} times the one {last_good.describe()})."
        )
    else:
        hint = (
            "A lower learning rate, fit(on_nonfinite='lower-lr'), or a likelihood whose "
            "variance is bounded below (e.g. model 'normal-floor') may help."
        )
    return failure.error(restored, halvings, hint)
