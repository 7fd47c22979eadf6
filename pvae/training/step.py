"""A guarded SVI step: the update applied only once the loss and the gradients are finite."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import pyro
import torch
from pyro import poutine
from pyro.infer.util import torch_item, zero_grads
from pyro.optim import PyroOptim
from pyro.poutine.util import is_validation_enabled

from pvae.finite import all_finite, first_bad_site
from pvae.training.nonfinite import LR_FACTOR, MAX_HALVINGS, Failure, nonfinite_entries
from pvae.training.objectives import ELBOS, KLWeight
from pvae.training.snapshot import LastGood, give_up

__all__ = ["GRADIENT_CHECK_STEPS", "GuardedStep", "UnusedParameterWarning"]

GRADIENT_CHECK_STEPS = 5  # the first steps of a fit call over which every parameter must move


class UnusedParameterWarning(UserWarning):
    """Parameters in the trace of the pair received no gradient over the first steps of
    :func:`fit`: the loss does not depend on them, and training leaves them where they are."""


def _scaled(program: Callable) -> Callable:
    def run(x, scale, beta):
        with poutine.scale(scale=scale), KLWeight(beta):
            return program(x)

    return run


class GuardedStep:
    r""":meth:`pyro.infer.SVI.step` over the minibatches of an epoch, for :func:`fit`, with a
    check between the gradients and the update.

    A minibatch of :math:`B` of the :math:`N` points runs the model and the guide under
    ``poutine.scale(N / B)`` and :class:`KLWeight` (β). A step whose loss or gradients are not
    finite (one sum per gradient tensor) is not applied; nor is an epoch accepted
    whose updates left parameter values that are not finite. The failure is diagnosed
    (:class:`Failure`) and, by ``on_nonfinite``, the pair and the optimizer are put back in
    the last good state (:class:`LastGood`) and either :class:`NonFiniteError` is raised
    (``"raise"``) or the epoch is repeated at a learning rate times :data:`LR_FACTOR`
    (``"lower-lr"``, at most :data:`MAX_HALVINGS` times in a row).

    Pyro's validation (if enabled when the step is made) runs on the first step of every epoch,
    and on every step with ``validate_every_step``.

    :param model: the model, called as ``model(x_batch)``.
    :param guide: the guide, called as ``guide(x_batch)``.
    :param torch.Tensor data: the training data, shape ``(N, d)``.
    :param int batch_size: points per step; ``≥ N`` gives full-batch steps.
    :param str elbo: a key of :data:`ELBOS`.
    :param int num_particles: samples of z per point and step, vectorized.
    :param int max_plate_nesting: plates in the model.
    :param optimizer: the Pyro optimizer.
    :param bool validate_every_step: run Pyro's validation on every step.
    :param str on_nonfinite: ``"raise"`` or ``"lower-lr"``.
    :param int epochs_done: epochs already trained (the state the pair is in now).
    :param logger: where the repeats of an epoch are logged (:func:`fit`'s logger).
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        data: torch.Tensor,
        *,
        batch_size: int,
        elbo: str,
        num_particles: int,
        max_plate_nesting: int,
        optimizer: PyroOptim,
        validate_every_step: bool,
        on_nonfinite: str,
        epochs_done: int,
        logger: logging.Logger,
    ):
        self.model, self.guide, self.data = model, guide, data
        self.num_points = data.shape[0]
        self.batch_size = min(batch_size, self.num_points)
        self.num_batches = math.ceil(self.num_points / self.batch_size)
        self.loss_fn = ELBOS[elbo](
            num_particles=num_particles,
            vectorize_particles=num_particles > 1,
            max_plate_nesting=max_plate_nesting,
        )
        self.optimizer = optimizer
        self.validate_every_step = validate_every_step
        self.on_nonfinite = on_nonfinite
        self.logger = logger
        self.scaled_model, self.scaled_guide = _scaled(model), _scaled(guide)
        self.checked = is_validation_enabled()  # the user's pyro.enable_validation setting
        self.modules = [m for m in (model, guide) if isinstance(m, torch.nn.Module)]
        self.last_good = LastGood(self.modules, optimizer, epochs_done)
        self.unused: set[str] | None = None  # parameters with no gradient yet, by name
        self.steps_checked = 0

    def run_epoch(
        self, epoch: int, beta: float, order: torch.Tensor, progress: Callable[[int], object]
    ) -> tuple[float, int]:
        """Train epoch ``epoch`` (from 0) in the batch order ``order``, repeating it after a
        non-finite step with ``on_nonfinite="lower-lr"``.

        :param progress: called with the number of steps done (negative when an epoch is
            taken back).
        :returns: the loss per point, and the learning-rate halvings the epoch took (each
            logged as a warning).
        :raises NonFiniteError: as :meth:`recover`.
        """
        for module in self.modules:
            module.train()
        halvings = 0
        loss, failure = self.try_epoch(epoch, beta, order, progress)
        while failure is not None:
            halvings = self.recover(failure, halvings)
            self.logger.warning(
                "%s. Repeating epoch %d from the state %s with the learning rate "
                "multiplied by %g (halving %d of at most %d in a row).",
                failure.summary(),
                epoch + 1,
                self.last_good.describe(),
                LR_FACTOR**halvings,
                halvings,
                MAX_HALVINGS,
                stacklevel=2,  # the record's origin is the caller, fit, as for its other records
            )
            loss, failure = self.try_epoch(epoch, beta, order, progress)
        return loss, halvings

    def try_epoch(
        self, epoch: int, beta: float, order: torch.Tensor, progress: Callable[[int], object]
    ) -> tuple[float, Failure | None]:
        """One pass of the steps over ``order``; after a failure its steps are taken back
        from ``progress``.

        :returns: the loss per point, and the failure or ``None``.
        """
        total, params = 0.0, set()
        for step, batch in enumerate(order.split(self.batch_size)):
            x = self.data[batch]
            args = (x, self.num_points / batch.shape[0], beta)
            self.last_good.before_step()
            try:
                validate = self.checked and (step == 0 or self.validate_every_step)
                with pyro.validation_enabled(validate):
                    # SVI.step, with the check between the gradients and the update
                    with poutine.trace(param_only=True) as capture:
                        loss = self.loss_fn.loss_and_grads(
                            self.scaled_model, self.scaled_guide, *args
                        )
                    loss = torch_item(loss)
            except Exception as err:
                failure = self.diagnose(epoch, step, None, x, cause=err)
                if failure is None:
                    raise
                progress(-step)
                return total, failure
            params = {node["value"].unconstrained() for node in capture.trace.nodes.values()}
            self.note_gradients(capture.trace)
            self.last_good.note(params)
            if not (
                math.isfinite(loss) and all_finite([p.grad for p in params if p.grad is not None])
            ):
                progress(-step)
                return total, self.diagnose(epoch, step, loss, x, params)
            self.optimizer(params)
            zero_grads(params)
            # A step's loss estimates the full-data loss; weighted by the batch's share of
            # the points, the epoch's steps sum to an estimate of the loss per point × N.
            total += loss * batch.shape[0]
            progress(1)
        if not self.last_good.take(epochs_done=epoch + 1):  # the last update overflowed
            failure = self.diagnose(epoch, step, loss, x, params, after_update=True)
            progress(-(step + 1))
            return total, failure
        return total / self.num_points**2, None

    def check_after_callback(self, epoch: int) -> None:
        """Before :func:`fit`'s ``on_epoch_end`` for epoch ``epoch`` (from 0), after its
        ``callback``, which runs once the epoch's state was taken: parameter values or
        buffers the callback made non-finite end the run as a non-finite step does, whatever
        ``on_nonfinite`` says (a lower learning rate cannot undo a callback), with the state
        at the end of the epoch put back, so that ``on_epoch_end`` (a checkpoint) never sees
        them. (Without ``on_epoch_end`` the next step finds them, as any other non-finite
        value.)

        :raises NonFiniteError: naming the parameters, the callback as the cause.
        """
        if self.last_good.take(epochs_done=epoch + 1):
            return
        cause = ValueError(f"fit's callback left non-finite values after epoch {epoch + 1}")
        x = self.data[: self.batch_size]
        failure = self.diagnose(
            epoch, self.num_batches - 1, None, x, cause=cause, after_update=True
        )
        if failure is None:  # nothing non-finite among the tracked values: a buffer, say
            raise cause
        raise give_up(failure, self.last_good, 0) from cause

    def note_gradients(self, trace) -> None:
        """Over the first :data:`GRADIENT_CHECK_STEPS` steps (or the first epoch's, if
        fewer), keep the parameters of the
        step's ``trace`` that received no gradient (the loss's graph does not reach them; a
        gradient of exactly zero, as at a stationary point, is not counted) on every one of
        them; then warn once, naming them (:class:`UnusedParameterWarning`)."""
        if self.steps_checked >= GRADIENT_CHECK_STEPS:
            return
        # Not in the loss's graph (a zero gradient can be a stationary point).
        unreached = {
            n for n, node in trace.nodes.items() if node["value"].unconstrained().grad is None
        }
        self.unused = unreached if self.unused is None else self.unused & unreached
        self.steps_checked += 1
        if self.steps_checked in (GRADIENT_CHECK_STEPS, self.num_batches):
            steps, self.steps_checked = self.steps_checked, GRADIENT_CHECK_STEPS
            if self.unused:
                names = sorted(self.unused)
                warnings.warn(
                    f"{len(names)} parameters received no gradient in the first {steps} "
                    f"steps ({', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''}): the loss does not depend on them "
                    "and training leaves them where they are. Is each one used by the model "
                    "or the guide (or left in Pyro's param store by an earlier pair under the "
                    "same name)?",
                    UnusedParameterWarning,
                    stacklevel=5,  # the caller of fit
                )

    def diagnose(
        self,
        epoch: int,
        step: int,
        loss: float | None,
        x: torch.Tensor,
        params=(),
        cause: BaseException | None = None,
        after_update: bool = False,
    ) -> Failure | None:
        """The :class:`Failure` of step ``step`` of epoch ``epoch`` (both from 0) on the
        minibatch ``x``, or ``None`` for an error (``cause``) that is not about non-finite
        numbers."""
        with self.last_good.buffers_kept():  # the re-run must not move e.g. a running γ*
            site, program, detail, read = first_bad_site(self.model, self.guide, x)
        read = {*params, *read, *self.last_good.params}
        failure = Failure(
            epoch=epoch + 1,
            step=step + 1,
            global_step=epoch * self.num_batches + step + 1,
            loss=loss,
            parameters=nonfinite_entries(read),
            gradients=nonfinite_entries(read, gradients=True),
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

    def recover(self, failure: Failure, halvings: int) -> int:
        """After a failed epoch, ``halvings`` halvings in a row: go back to the state at the
        end of the last good epoch at a learning rate times :data:`LR_FACTOR`
        (``on_nonfinite="lower-lr"``), or give up.

        :returns: the halvings in a row, this one included.
        :raises NonFiniteError: with ``on_nonfinite="raise"``, after :data:`MAX_HALVINGS`
            halvings, or with no finite state to go back to; the pair and the optimizer are
            then in the last good state (:func:`give_up`).
        """
        if self.on_nonfinite == "raise" or halvings == MAX_HALVINGS or not self.last_good.finite():
            raise give_up(failure, self.last_good, halvings) from failure.cause
        halvings += 1
        self.last_good.rewind(failure.params, lr_factor=LR_FACTOR**halvings)
        return halvings
