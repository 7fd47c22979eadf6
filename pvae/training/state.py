"""What a training run returns and resumes from: :class:`History` and :class:`FitState`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from pvae.files import plain

__all__ = ["FitState", "History"]


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
    :ivar watchdog: the :class:`~pvae.training.Watchdog`'s state (its baseline variance and
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
            "history": plain([dict(r) for r in self.history], "the fit state's history"),
            "order_seed": int(self.order_seed),
            "order_rng": self.order_rng.clone(),
            "torch_rng": self.torch_rng.clone(),
            "cuda_rng": None if self.cuda_rng is None else [s.clone() for s in self.cuda_rng],
            "watchdog": (
                None if self.watchdog is None else plain(self.watchdog, "the fit state's watchdog")
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
