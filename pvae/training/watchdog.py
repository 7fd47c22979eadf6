"""A well-posedness watchdog for training: warns when the likelihood looks unbounded."""

from __future__ import annotations

import itertools
import math
import warnings

from pvae.validation import check_positive_float, check_positive_int

__all__ = ["FIX", "IllPosedWarning", "Watchdog"]

FIX = (
    "Fix: bound the variance below (variance_floor=ξ > 0: model 'normal-floor', or "
    "'normal-shared' with variance_floor, since one shared γ is unbounded too once the decoder "
    "reproduces every training point), fix it ('normal-fixed'), or, for binary data, use a "
    "Bernoulli likelihood."
)


class IllPosedWarning(UserWarning):
    """Training shows the signature of an unbounded likelihood."""


class Watchdog:
    r"""Watches :func:`pvae.fit`'s per-epoch records for an unbounded likelihood [1]:

    - **variance collapse**: the smallest decoder variance on the monitored training points
      fell during training to below ``variance_threshold`` (a variance that was that small
      from the start is not a collapse, and a likelihood with a finite bound, such as a fixed
      or floored variance, is not watched for it). A Normal decoder with a learned
      per-pixel variance can raise the likelihood without limit by shrinking the variance where
      its mean fits a point exactly (or where a pixel is constant in the data);
    - **divergence**: over the last ``patience`` epochs the training ELBO rose every epoch while
      the held-out ELBO fell every epoch (needs validation data). Under a likelihood with a
      finite bound (fixed or floored variance, Bernoulli) that is ordinary overfitting, not
      ill-posedness, and is not watched for.

    Each warns once per :func:`pvae.fit` call, naming the epoch, the pixel, the data point,
    the variance and the fix (:data:`FIX`), as an :class:`IllPosedWarning`.

    :param float variance_threshold: the variance below which to warn (default 1e-4: for data
        in [0, 1], below the noise of 8-bit quantization, 1/(12·256²) ≈ 1.3e-6, only memorised
        points or constant pixels get there; the default leaves room for coarser data such as
        17-level digits, whose dequantization noise is 1/(12·17²) ≈ 2.9e-4).
    :param int patience: epochs of opposite trends before the divergence warning (default 3).

    [1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS.
    """

    def __init__(self, variance_threshold: float = 1e-4, patience: int = 3):
        self.variance_threshold = check_positive_float(variance_threshold, "variance_threshold")
        self.patience = check_positive_int(patience, "patience")
        self.warned: set[str] = set()
        self.reset()

    def reset(self, initial_variance: float = math.nan, bounded: bool = False) -> None:
        """Start watching a new run (:func:`pvae.fit` calls this before its first step).

        :param float initial_variance: the smallest decoder variance before training; the
            variance rule fires only for a variance that fell below it.
        :param bool bounded: the likelihood has a finite upper bound (a fixed or floored
            variance, Bernoulli): both rules are then off.
        """
        self.warned.clear()
        self.initial_variance = initial_variance
        self.bounded = bounded

    def get_state(self) -> dict:
        """What the watchdog has seen of a run, as plain values: its baseline variance, whether
        the likelihood is bounded, and the warnings already given (for
        :class:`pvae.training.FitState`, so that a resumed run warns as the whole run would)."""
        return {
            "initial_variance": float(self.initial_variance),
            "bounded": bool(self.bounded),
            "warned": sorted(self.warned),
        }

    def set_state(self, state: dict) -> None:
        """Continue watching a run from :meth:`get_state` (instead of :meth:`reset`).

        :raises ValueError: for a state without those keys or with values of the wrong kind,
            naming the key.
        """
        if not isinstance(state, dict):
            raise ValueError(f"a watchdog state must be a dict, got {type(state).__name__}")
        kinds = {"initial_variance": (int, float), "bounded": (bool,), "warned": (list,)}
        for key, kind in kinds.items():
            if key not in state:
                raise ValueError(f"the watchdog state has no key {key!r}")
            if not isinstance(state[key], kind) or (
                key == "initial_variance" and isinstance(state[key], bool)
            ):
                raise ValueError(
                    f"the watchdog state's {key!r} must be a {kind[-1].__name__}, got "
                    f"{state[key]!r}"
                )
        if not all(isinstance(name, str) for name in state["warned"]):
            raise ValueError(
                f"the watchdog state's 'warned' must list names, got {state['warned']!r}"
            )
        self.initial_variance = float(state["initial_variance"])
        self.bounded = state["bounded"]
        self.warned = set(state["warned"])

    def check(self, history, point_index=None) -> None:
        """Inspect the newest record of ``history``; ``point_index`` maps a monitored row to
        its index in the training data."""
        record = history[-1]
        variance = record.get("min_variance", float("nan"))
        # A variance that *fell* below the threshold: a fixed small variance is bounded.
        fell = not variance >= self.initial_variance  # nan baseline: no evidence against
        if (
            "variance" not in self.warned
            and not self.bounded
            and variance < self.variance_threshold
            and fell
        ):
            self.warned.add("variance")
            row = record["min_variance_point"]
            point = int(point_index[row]) if point_index is not None else row
            warnings.warn(
                f"pvae watchdog, epoch {record['epoch']}: the decoder variance of pixel "
                f"{record['min_variance_pixel']} for training point {point} fell to "
                f"{variance:.3g} (< variance_threshold={self.variance_threshold:g}). A Normal "
                "likelihood with a learned variance is unbounded: it can grow without limit by "
                f"shrinking the variance where the mean fits the data exactly. {FIX}",
                IllPosedWarning,
                stacklevel=3,
            )
        window = history[-(self.patience + 1) :]
        if (
            "divergence" not in self.warned
            and not self.bounded
            and len(window) == self.patience + 1
            and "val_elbo" in record
            and all(b["elbo"] > a["elbo"] for a, b in itertools.pairwise(window))
            and all(b["val_elbo"] < a["val_elbo"] for a, b in itertools.pairwise(window))
        ):
            self.warned.add("divergence")
            warnings.warn(
                f"pvae watchdog, epoch {record['epoch']}: for {self.patience} epochs the "
                f"training ELBO rose ({window[0]['elbo']:.4g} → {record['elbo']:.4g}) while the "
                f"held-out ELBO fell ({window[0]['val_elbo']:.4g} → {record['val_elbo']:.4g})"
                + (
                    f"; the smallest decoder variance is {variance:.3g} (pixel "
                    f"{record.get('min_variance_pixel')})"
                    if math.isfinite(variance)
                    else ""
                )
                + ". This is overfitting, and under a likelihood with no upper bound the "
                f"signature of one that grows without limit on the training points. {FIX}",
                IllPosedWarning,
                stacklevel=3,
            )
