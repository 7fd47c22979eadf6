"""Non-finite training steps: the check, the diagnosis and :class:`NonFiniteError`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyro
import pyro.optim
import torch

from pvae.finite import all_finite, describe_nonfinite

__all__ = [
    "LR_FACTOR",
    "MAX_HALVINGS",
    "NONFINITE",
    "Failure",
    "NonFiniteError",
    "nonfinite_entries",
]

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
class Failure:
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


def nonfinite_entries(params: Iterable[torch.Tensor], gradients: bool = False) -> dict[str, str]:
    """Param-store name → where the value (or the gradient) is not finite, in store order."""
    params = set(params)
    found = {}
    for name, p in pyro.get_param_store().named_parameters():
        tensor = p.grad if gradients else p
        if p in params and tensor is not None and not all_finite([tensor]):
            found[name] = describe_nonfinite(tensor)
            params.discard(p)
    for p in params:  # parameters outside the store, e.g. cleared since
        tensor = p.grad if gradients else p
        if tensor is not None and not all_finite([tensor]):
            found[f"<parameter of shape {tuple(p.shape)} outside the param store>"] = (
                describe_nonfinite(tensor)
            )
    return found
