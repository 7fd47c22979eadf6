"""The last good state of a training run, to go back to after a non-finite step."""

from __future__ import annotations

import contextlib
import copy
import inspect
import numbers
from collections.abc import Iterable

import torch
from pyro.optim import PyroOptim

from pvae.finite import all_finite
from pvae.training.nonfinite import LR_FACTOR, Failure, NonFiniteError
from pvae.training.optim import JointOptim

__all__ = ["LastGood", "give_up"]

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


class LastGood:
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
        if not all_finite([*self.params, *self.buffers]):
            return False
        self.params = {p: p.detach().clone() for p in self.params}
        self.epochs_done = epochs_done
        self._take_rest()
        return True

    def finite(self) -> bool:
        return all_finite([*self.params.values(), *self.buffer_values])

    def step_intact(self, failure: Failure) -> bool:
        """Whether the state before the failed step is good: its update was never applied
        (the check came before it, not at the end of the epoch), the parameter values are
        finite and so were the buffers before the step."""
        return (
            not failure.after_update and not failure.parameters and all_finite(self._step_buffers)
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
            self.optimizer.forget()
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


def give_up(failure: Failure, last_good: LastGood, halvings: int) -> NonFiniteError:
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
