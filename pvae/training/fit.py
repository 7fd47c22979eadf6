"""Training: stochastic variational inference over minibatches with Pyro's SVI."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import warnings
from collections.abc import Callable

import pyro
import pyro.optim
import torch
from pyro.optim import PyroOptim
from tqdm.auto import tqdm

from pvae.contract import (
    check_contract,
    check_data_support,
    check_registered_modules,
    forked_rng,
    with_obs_site,
)
from pvae.estimation.meanfield import MeanFieldWarning, mean_field_bias
from pvae.estimation.terms import elbo_terms
from pvae.training.nonfinite import NONFINITE
from pvae.training.objectives import ELBOS, IWAE_OBJECTIVES
from pvae.training.optim import default_optimizer
from pvae.training.state import FitState, History
from pvae.training.step import GuardedStep
from pvae.training.watchdog import Watchdog
from pvae.validation import (
    check_bool,
    check_choice,
    check_data,
    check_dtypes,
    check_model_data,
    check_nonnegative_float,
    check_pair,
    check_positive_float,
    check_positive_int,
    check_seed,
)

__all__ = ["check_fit_options", "fit"]

logger = logging.getLogger(__name__)


def _monitor(model, guide, x: torch.Tensor, prefix: str = "") -> dict[str, float]:
    # A forked RNG: monitoring (or not, or on other data) leaves the training draws unchanged.
    with forked_rng(x):
        terms = elbo_terms(model, guide, x)
    return {
        f"{prefix}{key}": value.mean().item() if isinstance(value, torch.Tensor) else value
        for key, value in terms.items()
    }


def _start_watchdog(
    watchdog: bool | Watchdog,
    model,
    guide,
    monitor: torch.Tensor,
    monitor_size: int,
    resume: FitState | None,
) -> Watchdog | None:
    """The watchdog of a run, started afresh or from ``resume``; ``None`` if none watches
    (``watchdog=False``, or no monitoring)."""
    if watchdog is True:
        watchdog = Watchdog()
    if not (watchdog and monitor_size > 0):
        return None
    if resume is not None and resume.watchdog is not None:
        watchdog.set_state(resume.watchdog)
    else:
        bound = getattr(model, "log_density_bound", None)  # e.g. VAE, MatteiFrellsen
        watchdog.reset(
            initial_variance=_monitor(model, guide, monitor)["min_variance"],
            bounded=callable(bound) and math.isfinite(bound()),
        )
    return watchdog


def _fit_state(
    history: History,
    order_seed: int,
    generator: torch.Generator,
    data: torch.Tensor,
    watchdog: Watchdog | None,
) -> FitState:
    """The :class:`FitState` of a run after ``len(history)`` epochs."""
    return FitState(
        epochs_done=len(history),
        history=[dict(r) for r in history],
        order_seed=order_seed,
        order_rng=generator.get_state(),
        torch_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if data.device.type == "cuda" else None,
        watchdog=None if watchdog is None else watchdog.get_state(),
    )


# tqdm's default bar with the epochs done to one decimal (the steps move it by fractions).
_BAR = "{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def _warn_mean_field(model, guide, x: torch.Tensor) -> None:
    biased = mean_field_bias(model, guide, x)
    if biased:
        sites = "; ".join(
            f"at {name!r} the model's prior depends on {others}, which the guide draws from "
            f"{name!r}"
            for name, others in biased.items()
        )
        warnings.warn(
            f"elbo='meanfield' (TraceMeanField_ELBO) takes the analytic KL per site, which "
            f"here does not have the ELBO's expectation: {sites}. The objective trained is "
            "then neither the ELBO nor a bound on log p(x); use elbo='trace' (Trace_ELBO) or "
            "'iwae' for this pair (pvae.estimation.mean_field_bias)",
            MeanFieldWarning,
            stacklevel=3,
        )


def check_fit_options(*, combinations: bool = True, **options) -> tuple[int, int, int]:
    """Check keyword arguments of :func:`fit` that need neither a pair nor data: an unknown
    name (``TypeError``) and every value :func:`fit` checks of them before it runs anything,
    for callers that run ``fit`` elsewhere later (:func:`pvae.tune_trainable`'s trials) and
    should refuse a bad option now. Returns ``epochs``, ``batch_size`` and ``num_particles``
    as ints (:func:`fit`'s defaults where not given).

    :param bool combinations: also check what holds between options (``elbo="iwae"`` needs
        ``num_particles >= 2`` and no KL weight), against :func:`fit`'s defaults for those not
        given (default ``True``); ``False`` where the rest will come later (a trial's config).
    """
    try:
        bound = inspect.signature(fit).bind_partial(**options)
    except TypeError as error:  # Python's message names the keyword, not the function
        raise TypeError(f"fit {error}") from None
    for name in ("model", "guide", "data"):
        if name in bound.arguments:
            raise TypeError(f"check_fit_options takes fit's keyword options, got {name}=")
    bound.apply_defaults()
    given = dict(bound.arguments)
    given.pop("obs_site", None)  # checked where the model is traced
    given.pop("validation_data", None)  # data: checked against the pair
    given.pop("resume", None)  # checked against the data
    return _check_options(**given, combinations=combinations)


def _check_options(
    *,
    epochs,
    batch_size,
    lr,
    elbo,
    num_particles,
    kl_weight,
    seed,
    monitor_size,
    max_plate_nesting,
    optimizer,
    watchdog,
    callback,
    validate_every_step,
    on_nonfinite,
    on_epoch_end,
    progress,
    combinations=True,
) -> tuple[int, int, int]:
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    check_choice(elbo, "elbo", ELBOS)
    num_particles = check_positive_int(num_particles, "num_particles")
    if combinations and elbo in IWAE_OBJECTIVES:
        if num_particles < 2:
            raise ValueError(
                f"elbo={elbo!r} needs num_particles = K >= 2 importance samples per point "
                f"(K = 1 is the ELBO), got {num_particles}"
            )
        if callable(kl_weight) or kl_weight != 1:
            raise ValueError(
                f"elbo={elbo!r} has no KL weight: kl_weight must be 1, got {kl_weight!r}"
            )
    check_positive_int(max_plate_nesting, "max_plate_nesting")
    check_bool(validate_every_step, "validate_every_step")
    check_bool(progress, "progress")
    check_choice(on_nonfinite, "on_nonfinite", NONFINITE)
    if seed is not None:
        check_seed(seed)
    if not isinstance(watchdog, bool | Watchdog):
        raise TypeError(
            f"watchdog must be True, False or a pvae.training.Watchdog, got {watchdog!r}"
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
    return epochs, batch_size, num_particles


def _check_fit_args(
    *, model, guide, data, validation_data, resume, **options
) -> tuple[int, int, int]:
    """Check :func:`fit`'s arguments (``options``: those :func:`_check_options` checks);
    ``epochs``, ``batch_size`` and ``num_particles`` as ints."""
    check_pair(model, guide, guide_required=True)
    check_data(data, "data")
    epochs, batch_size, num_particles = _check_options(**options)
    seed = options["seed"]
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
        check_data(
            validation_data, "validation_data", dim=data[0].numel(), event_shape=data.shape[1:]
        )
        check_model_data(model, validation_data, "validation_data")
    check_dtypes(model, guide, data, "data")
    if validation_data is not None:
        check_dtypes(model, guide, validation_data, "validation_data")
    return epochs, batch_size, num_particles


@with_obs_site
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
    obs_site: str | None = None,
) -> History:
    r"""Fit ``model`` and ``guide`` to ``data`` by maximising the ELBO (or the IWAE bound,
    ``elbo="iwae"``) with Pyro's SVI.

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

    **Non-finite steps.** Every step is checked before its update is applied (one sum per
    gradient tensor): a loss or a gradient that is not finite stops the step,
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
    :param str elbo: the objective: ``"meanfield"`` (``TraceMeanField_ELBO``: analytic KL
        per latent site where it exists, default), ``"trace"`` (``Trace_ELBO``: Monte Carlo
        KL), or the IWAE bound with K = ``num_particles`` ≥ 2
        samples per point (:class:`~pvae.training.IWAE`): ``"iwae"`` (reparameterized
        gradients) or ``"iwae-dreg"`` (doubly-reparameterized gradients for the guide).
        With an IWAE objective the epoch's ``loss`` is −L_K per point and ``kl_weight``
        must be 1; the monitoring still reports the ELBO. ``"meanfield"`` and ``"trace"``
        have the same expectation, the ELBO, unless the model's prior at a latent site
        depends on a latent the guide draws from that site (a top-down model
        :math:`z_2 \to z_1` with a bottom-up guide :math:`z_1 \to z_2`): there the analytic KL
        holds the dependent draw fixed and is biased (by 2.26 nats per point in
        ``tests/estimation/test_meanfield.py``'s linear pair), and :func:`fit` warns
        (:class:`~pvae.estimation.MeanFieldWarning`, naming the sites;
        :func:`~pvae.estimation.mean_field_bias`). Same-order pairs (z2 drawn from z1 in both)
        and mean-field guides are unbiased in any site order.
    :param int num_particles: samples of z per point and step, vectorized (default 1); K for
        the IWAE objectives.
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
    :param watchdog: warn (:class:`~pvae.training.IllPosedWarning`, once) when the monitoring
        shows the signature of an unbounded likelihood: ``True`` (default) for a
        :class:`~pvae.training.Watchdog` with its defaults, a configured ``Watchdog``, or
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
    :param bool progress: show a progress bar in epochs (``tqdm.auto``: a widget in Jupyter),
        moved by each step's fraction, with the last epoch's loss and ELBO in its postfix
        (default ``True``).
    :param obs_site: where the model observes several sites inside the data plate, the one whose
        likelihood the checks and diagnostics read (default ``None``: the only one;
        :func:`pvae.contract.observing`).
    :returns: the per-epoch :class:`History` (with ``resume``, from the run's first epoch).
    :raises NonFiniteError: after a non-finite step (``on_nonfinite="raise"``) or after
        :data:`MAX_HALVINGS` learning-rate halvings in a row (``"lower-lr"``).
    """
    epochs, batch_size, num_particles = _check_fit_args(
        model=model,
        guide=guide,
        data=data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        elbo=elbo,
        num_particles=num_particles,
        kl_weight=kl_weight,
        seed=seed,
        validation_data=validation_data,
        monitor_size=monitor_size,
        max_plate_nesting=max_plate_nesting,
        optimizer=optimizer,
        watchdog=watchdog,
        callback=callback,
        validate_every_step=validate_every_step,
        on_nonfinite=on_nonfinite,
        on_epoch_end=on_epoch_end,
        resume=resume,
        progress=progress,
    )
    with forked_rng(data):
        check_contract(model, guide, data[:2])  # before anything runs the pair on more data
        check_data_support(model, guide, data)  # every point, before any step
        check_registered_modules(model, guide, data[:2])  # no stale parameters in the store
        if elbo == "meanfield":
            _warn_mean_field(model, guide, data[:2])

    start = 0 if resume is None else resume.epochs_done
    if resume is not None:
        order_seed = resume.order_seed
    else:
        if seed is not None:
            pyro.set_rng_seed(seed)
        order_seed = int(torch.randint(2**62, ())) if seed is None else seed
    generator = torch.Generator()
    generator.manual_seed(order_seed)
    monitor_index = torch.randperm(data.shape[0], generator=generator)[:monitor_size]
    monitor = data[monitor_index.to(data.device)]
    watchdog = _start_watchdog(watchdog, model, guide, monitor, monitor_size, resume)
    step = GuardedStep(
        model,
        guide,
        data,
        batch_size=batch_size,
        elbo=elbo,
        num_particles=num_particles,
        max_plate_nesting=max_plate_nesting,
        optimizer=default_optimizer(lr, data) if optimizer is None else optimizer,
        validate_every_step=validate_every_step,
        on_nonfinite=on_nonfinite,
        epochs_done=start,
        logger=logger,
    )
    history = History(dict(record) for record in (resume.history if resume is not None else []))
    if resume is not None:
        generator.set_state(resume.order_rng)
        torch.set_rng_state(resume.torch_rng)
        if data.device.type == "cuda":
            torch.cuda.set_rng_state_all(resume.cuda_rng)
    bar = tqdm(
        total=epochs - start, disable=not progress, desc="fit", unit="epoch", bar_format=_BAR
    )

    # Each end-of-epoch hook takes the history, whose length is the epochs done.
    def report(history: History) -> None:
        record = history[-1]
        # stacklevel=2: the log record names fit, which calls the hooks, as its origin.
        logger.info("epoch %d: %s", len(history), record, stacklevel=2)
        bar.set_postfix(
            {k: f"{record[k]:.4g}" for k in ("loss", "elbo", "val_elbo") if k in record}
        )

    def checkpoint(history: History) -> None:
        if callback is not None:  # on_epoch_end never sees a NaN the callback wrote
            step.check_after_callback(history[-1]["epoch"] - 1)
        state = _fit_state(history, order_seed, generator, data, watchdog)
        with forked_rng(data):
            on_epoch_end(state)

    hooks = [report]
    if watchdog is not None:
        # A partial adds no Python frame: the watchdog's warnings still point at fit's caller.
        hooks.insert(0, functools.partial(watchdog.check, point_index=monitor_index))
    if on_epoch_end is not None:
        hooks.append(checkpoint)
    try:
        for epoch in range(start, epochs):
            beta = kl_weight(epoch) if callable(kl_weight) else kl_weight
            check_nonnegative_float(beta, f"kl_weight({epoch})")
            order = torch.randperm(data.shape[0], generator=generator).to(data.device)
            # Steps move the bar by fractions of an epoch; the epoch's end sets it exactly.
            loss, halvings = step.run_epoch(
                epoch, beta, order, lambda steps: bar.update(steps / step.num_batches)
            )
            bar.n = epoch + 1 - start
            record = {"epoch": epoch + 1, "loss": loss, "kl_weight": beta}
            if on_nonfinite == "lower-lr":
                record["lr_halvings"] = halvings
            if monitor_size:
                record.update(_monitor(model, guide, monitor))
            if validation_data is not None:
                record.update(_monitor(model, guide, validation_data, prefix="val_"))
            if callback is not None:
                with forked_rng(data):
                    callback(record)
            history.append(record)
            for hook in hooks:
                hook(history)
    finally:
        bar.close()
    return history
