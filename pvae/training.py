"""Training: stochastic variational inference over minibatches with Pyro's SVI."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
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
)
from pvae.watchdog import Watchdog

__all__ = ["ELBOS", "History", "KLWeight", "fit", "kl_cyclical", "kl_warmup"]

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
        schedule where this one stands instead of starting it again."""
        if self.optimizer is None:  # nothing stepped yet: what set_state left waiting
            return {
                name: _copy(state) for name, state in self._state_waiting_to_be_consumed.items()
            }
        store = pyro.get_param_store()
        return {
            store.param_name(p): {**_copy(self.optimizer.state[p]), self.LR_KEY: group["lr"]}
            for group in self.optimizer.param_groups
            for p in group["params"]
            if p in self.optimizer.state
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
    occurs); with validation data the same prefixed ``val_``.
    """

    def column(self, key: str) -> np.ndarray:
        """One quantity over the epochs, as an array."""
        if self and key not in self[0]:
            raise KeyError(f"history has no column {key!r}; it has {sorted(self[0])}")
        return np.array([record[key] for record in self], dtype=float)


def _adam_args(lr: float, data: torch.Tensor) -> dict:
    """Adam's arguments for :func:`fit`'s default optimizer: fused where torch supports it
    for the data's device and dtype (torch ≥ 2.4 on CPU), else torch's default kernel."""
    probe = torch.zeros(1, dtype=data.dtype, device=data.device, requires_grad=True)
    try:
        torch.optim.Adam([probe], lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return {"lr": lr}
    return {"lr": lr, "fused": True}


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

    :param model: the model, called as ``model(x_batch)``.
    :param guide: the guide, called as ``guide(x_batch)``.
    :param torch.Tensor data: training data, shape ``(N, d)``.
    :param int epochs: passes over the data (default 10).
    :param int batch_size: points per step (default 128); ``≥ N`` gives full-batch steps.
    :param float lr: Adam learning rate (default 1e-3).
    :param str elbo: ``"meanfield"`` (``TraceMeanField_ELBO``: analytic KL where it exists,
        default) or ``"trace"`` (``Trace_ELBO``: Monte Carlo KL). Same expectation.
    :param int num_particles: samples of z per point and step, vectorized (default 1).
    :param kl_weight: β ≥ 0, a number or a function of the epoch (e.g. :func:`kl_warmup`);
        default 1 (the ELBO).
    :param int seed: if given, ``pyro.set_rng_seed(seed)`` (torch, numpy and ``random``)
        before training and a batch order drawn from it; default ``None`` leaves the global RNGs
        alone and draws the batch order from torch's.
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
    :param bool progress: show a tqdm progress bar (default ``True``).
    :returns: the per-epoch :class:`History`.
    """
    check_data(data, "data")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    check_choice(elbo, "elbo", ELBOS)
    num_particles = check_positive_int(num_particles, "num_particles")
    check_positive_int(max_plate_nesting, "max_plate_nesting")
    check_bool(validate_every_step, "validate_every_step")
    if isinstance(monitor_size, bool) or not isinstance(monitor_size, int) or monitor_size < 0:
        raise ValueError(f"monitor_size must be a non-negative integer, got {monitor_size!r}")
    if not callable(kl_weight):
        check_nonnegative_float(kl_weight, "kl_weight")
    check_model_data(model, data, "data")
    if validation_data is not None:
        check_data(validation_data, "validation_data", dim=data.shape[1])
        check_model_data(model, validation_data, "validation_data")
    check_dtypes(model, guide, data, "data")
    if validation_data is not None:
        check_dtypes(model, guide, validation_data, "validation_data")

    with _forked_rng(data):
        check_contract(model, guide, data[:2])  # before anything runs the pair on more data

    if seed is not None:
        pyro.set_rng_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)
    num_points = data.shape[0]
    batch_size = min(batch_size, num_points)
    num_batches = math.ceil(num_points / batch_size)
    monitor_index = torch.randperm(num_points, generator=generator)[:monitor_size]
    monitor = data[monitor_index.to(data.device)]
    if watchdog is True:
        watchdog = Watchdog()
    if watchdog and monitor_size:
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
    optimizer = optimizer or JointOptim(torch.optim.Adam, _adam_args(lr, data))
    svi = SVI(scaled(model), scaled(guide), optimizer, loss_fn)
    checked = is_validation_enabled()  # the user's pyro.enable_validation setting

    history = History()
    bar = tqdm(total=epochs * num_batches, disable=not progress, desc="fit", unit="step")
    try:
        for epoch in range(epochs):
            beta = kl_weight(epoch) if callable(kl_weight) else kl_weight
            check_nonnegative_float(beta, f"kl_weight({epoch})")
            for module in (model, guide):
                if isinstance(module, torch.nn.Module):
                    module.train()
            total = 0.0
            order = torch.randperm(num_points, generator=generator).to(data.device)
            for step, batch in enumerate(order.split(batch_size)):
                # A step's loss estimates the full-data loss; weighted by the batch's share of
                # the points, the epoch's steps sum to an estimate of the loss per point × N.
                with pyro.validation_enabled(checked and (step == 0 or validate_every_step)):
                    loss = svi.step(data[batch], num_points / batch.shape[0], beta)
                total += loss * batch.shape[0]
                bar.update()
            loss = total / num_points**2
            record = {"epoch": epoch + 1, "loss": loss, "kl_weight": beta}
            if monitor_size:
                record.update(_monitor(model, guide, monitor))
            if validation_data is not None:
                record.update(_monitor(model, guide, validation_data, prefix="val_"))
            if callback is not None:
                with _forked_rng(data):
                    callback(record)
            history.append(record)
            if watchdog and monitor_size:
                watchdog.check(history, monitor_index)
            logger.info("epoch %d: %s", epoch + 1, record)
            bar.set_postfix(
                {k: f"{record[k]:.4g}" for k in ("loss", "elbo", "val_elbo") if k in record}
            )
    finally:
        bar.close()
    return history
