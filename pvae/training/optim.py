"""One torch optimizer for every parameter (:class:`JointOptim`) and fit's default Adam."""

from __future__ import annotations

import pyro
import pyro.optim
import torch
from pyro.optim import PyroOptim

from pvae.validation import check_positive_float

__all__ = ["JointOptim", "adam_args", "default_optimizer"]


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

    def forget(self) -> None:
        """Drop the torch optimizer and every parameter's state: the next step builds them
        again, from whatever :meth:`set_state` left waiting."""
        self.optimizer = None
        self._seen = set()

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


def adam_args(lr: float, data: torch.Tensor) -> dict:
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
    return JointOptim(torch.optim.Adam, adam_args(lr, data))
