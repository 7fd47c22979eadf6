r"""Is a training run diverging? A verdict read from what was measured, with its errors.

The theory (which rung of the ladder a model sits on) says whether log p(X) *can* grow
without bound; only the measurements say whether a run *is* growing. :func:`read_verdict`
combines the two and says "inconclusive", with the reason, where the numbers do not decide:

- :func:`trend`: the least-squares slope of the last tracked epochs with its standard error,
  called rising or falling only when it exceeds its error (a Student-t interval), flat only
  when the whole interval lies within a stated tolerance, and inconclusive otherwise;
- :func:`ladder_rung`: the rung, from the model's stated bound, whether its variance is learned
  and whether the measured variance depends on z (never from the model's name);
- :func:`collapsed_points`: the points whose decoder variance fell below the data's noise level.

References

[1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
    Variable Models. NeurIPS.
[2] Dai, B. & Wipf, D. (2019). Diagnosing and Enhancing VAE Models. ICLR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from pvae.display import Displayed
from pvae.validation import check_positive_float, check_positive_int

__all__ = [
    "DIRECTIONS",
    "MIN_TREND_POINTS",
    "RUNGS",
    "RUNG_SUMMARIES",
    "Rung",
    "Trend",
    "Verdict",
    "collapsed_points",
    "ladder_rung",
    "point_variance",
    "read_verdict",
    "trend",
]

#: What :func:`trend` can conclude.
DIRECTIONS = ("rising", "falling", "flat", "inconclusive")

#: Tracked values a trend needs: a slope and a residual scatter with at least 3 degrees of
#: freedom (fewer make the Student-t interval uselessly wide).
MIN_TREND_POINTS = 5

#: The rungs of the ladder, in :func:`ladder_rung`'s words (:data:`RUNG_SUMMARIES`: short).
RUNGS = {
    "bounded": "bounded by a theorem",
    "one point": "unbounded once the decoder reproduces one training point",
    "every point": "unbounded once the decoder reproduces every training point",
    "unknown": "no bound stated and no Normal variance to read",
}

RUNG_SUMMARIES = {
    "bounded": "bounded",
    "one point": "unbounded once it reproduces one point",
    "every point": "unbounded once it reproduces every point",
    "unknown": "no bound known",
}


@dataclass(frozen=True)
class Trend:
    """A least-squares trend of the last tracked values.

    :ivar direction: one of :data:`DIRECTIONS`.
    :ivar slope: change per epoch (``nan`` with too few values).
    :ivar stderr: standard error of ``slope``: the larger of the residual (OLS) one and the
        Monte Carlo one propagated from each value's standard error.
    :ivar halfwidth: half the width of the slope's interval at level 1 − α (Student-t).
    :ivar first_epoch: the first epoch of the window.
    :ivar last_epoch: its last epoch.
    :ivar num_values: tracked values in the window.
    :ivar reason: why ``direction``, with the numbers.
    """

    direction: str
    slope: float
    stderr: float
    halfwidth: float
    first_epoch: float
    last_epoch: float
    num_values: int
    reason: str

    @property
    def change(self) -> str:
        """The change over the window with the half-width of its interval, as text."""
        width = self.last_epoch - self.first_epoch
        return f"{self.slope * width:+.3g} ± {self.halfwidth * width:.2g}"

    def __str__(self) -> str:
        if not math.isfinite(self.slope):
            return f"{self.direction} ({self.reason})"
        return (
            f"{self.direction}, {self.change} over epochs {self.first_epoch:g}–"
            f"{self.last_epoch:g} ({self.reason})"
        )


def trend(
    epochs: Sequence[float],
    values: Sequence[float],
    stderrs: Sequence[float] | None = None,
    *,
    window: int = 10,
    tolerance: float = 0.5,
    alpha: float = 0.01,
) -> Trend:
    r"""The trend of the last ``window`` tracked ``values``, with its error.

    The slope :math:`b` is the least-squares fit over the window; its standard error is the
    larger of the OLS one, :math:`s / \sqrt{S_{tt}}` with :math:`s^2` the residual variance
    (m − 2 degrees of freedom), and the Monte Carlo one, :math:`\sqrt{\sum_i (t_i - \bar t)^2
    \sigma_i^2} / S_{tt}` from each value's standard error :math:`\sigma_i`. With
    :math:`c = t_{1-\alpha/2,\, m-2}\,\mathrm{se}`:

    - ``"flat"`` if the whole interval :math:`b \pm c`, times the window's span of epochs,
      lies within ``± tolerance`` (no change larger than the tolerance is compatible), even if
      it excludes 0 (a change too small to matter);
    - else ``"rising"`` / ``"falling"`` if :math:`|b| > c` (the change exceeds its error);
    - ``"inconclusive"`` otherwise, or with fewer than :data:`MIN_TREND_POINTS` values, or
      with a value that is not finite.

    :param epochs: the epoch of each value, increasing.
    :param values: the tracked values (e.g. log p̂ per point, nats).
    :param stderrs: their Monte Carlo standard errors, or ``None``.
    :param int window: the last values used (default 10; at least :data:`MIN_TREND_POINTS`).
    :param float tolerance: the largest change over the window still called flat, in the
        values' unit (default 0.5).
    :param float alpha: two-sided level of the interval (default 0.01).
    """
    check_positive_int(window, "window")
    if window < MIN_TREND_POINTS:
        raise ValueError(f"window must be at least {MIN_TREND_POINTS}, got {window!r}")
    check_positive_float(tolerance, "tolerance")
    if not 0 < check_positive_float(alpha, "alpha") < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    t = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(
            f"epochs and values must be sequences of one length, got shapes {t.shape} and {y.shape}"
        )
    sigma = np.zeros_like(y) if stderrs is None else np.asarray(stderrs, dtype=float)
    if sigma.shape != y.shape:
        raise ValueError(f"stderrs must have the shape of values {y.shape}, got {sigma.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"epochs must be increasing, got {t.tolist()}")
    t, y, sigma = t[-window:], y[-window:], sigma[-window:]
    m = len(y)
    span = (float(t[0]), float(t[-1])) if m else (math.nan, math.nan)
    if m < MIN_TREND_POINTS:
        return Trend(
            "inconclusive", math.nan, math.nan, math.nan, *span, m,
            f"only {m} tracked value{'s' * (m != 1)}; a trend needs {MIN_TREND_POINTS}",
        )  # fmt: skip
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(sigma))):
        return Trend(
            "inconclusive", math.nan, math.nan, math.nan, *span, m,
            "a tracked value or its standard error is not finite",
        )  # fmt: skip
    centred = t - t.mean()
    s_tt = float(centred @ centred)
    slope = float(centred @ (y - y.mean()) / s_tt)
    residuals = y - y.mean() - slope * centred
    ols = math.sqrt(float(residuals @ residuals) / (m - 2) / s_tt)
    monte_carlo = math.sqrt(float((centred**2) @ (sigma**2))) / s_tt
    stderr = max(ols, monte_carlo)
    critical = float(stats.t.ppf(1 - alpha / 2, m - 2)) * stderr
    width = span[1] - span[0]
    level = f"{1 - alpha:.0%} interval"
    if (abs(slope) + critical) * width <= tolerance:
        direction = "flat"
        reason = f"{level} within the tolerance ±{tolerance:g}"
    elif abs(slope) > critical:
        direction = "rising" if slope > 0 else "falling"
        reason = f"{level} excludes 0"
    else:
        direction = "inconclusive"
        reason = f"{level} includes 0 but is too wide to call it flat: tolerance ±{tolerance:g}"
    return Trend(direction, slope, stderr, critical, *span, m, reason)


@dataclass(frozen=True)
class Rung:
    """Where a model sits on the ladder of well-posedness.

    :ivar name: a key of :data:`RUNGS`.
    :ivar bound: the bound on log p(x) of one point (``inf`` if none).
    :ivar reason: what it was read from.
    """

    name: str
    bound: float
    reason: str

    def __str__(self) -> str:
        return f"{RUNGS[self.name]}: {self.reason}"


def ladder_rung(model, variance: torch.Tensor | None = None) -> Rung:
    """The rung of ``model``, read from what it states and what was measured.

    - a finite ``model.log_density_bound()``: ``"bounded"`` (a fixed variance or a floor ξ:
      −(d/2) log 2πξ per point; a Bernoulli likelihood: 0);
    - else a learned Normal variance (``model.variance_learned``) whose measured values
      ``variance`` (shape ``(n, d)``, e.g. the decoder's variance at n points' posterior means)
      differ between points: it depends on z, ``"one point"`` (Mattei & Frellsen [1]); the
      same at every point: ``"every point"`` (one γ, or one per pixel, for every z; Dai &
      Wipf [2]);
    - else ``"unknown"``.

    :param model: a model, ideally stating ``log_density_bound()`` and ``variance_learned``.
    :param variance: measured decoder variances, shape ``(n, d)`` with n ≥ 2, or ``None``.
    """
    bound_of = getattr(model, "log_density_bound", None)
    bound = float(bound_of()) if bound_of is not None else math.nan
    if math.isfinite(bound):
        return Rung("bounded", bound, f"log p(x) ≤ {bound:.1f} nats per point")
    learned = getattr(model, "variance_learned", None)
    if variance is None or learned is not True:
        why = "the model states no bound" if math.isnan(bound) else "no bound"
        return Rung("unknown", bound, f"{why}, and no learned Normal variance was measured")
    variance = torch.as_tensor(variance)
    if variance.dim() != 2 or len(variance) < 2:
        raise ValueError(
            f"variance must have shape (n, d) with n ≥ 2 points, got {tuple(variance.shape)}"
        )
    if not torch.isfinite(variance).all():
        raise ValueError("variance holds values that are not finite")
    spread = (variance.amax(0) / variance.amin(0)).max().item()
    if spread > 1 + 1e-4:
        return Rung(
            "one point",
            bound,
            f"learned variance that depends on z (it differs {spread:.3g}-fold between points "
            "at one pixel); no floor",
        )
    return Rung("every point", bound, "learned variance, the same for every z; no floor")


def point_variance(variance: torch.Tensor) -> torch.Tensor:
    """The geometric mean over pixels of ``variance`` (shape ``(n, d)``: points × pixels), one
    per point, shape ``(n,)``: what sets a point's log-density, −(d/2) log 2π(this) minus its
    weighted errors. (A single pixel's variance can dip below the noise at one of many points
    without any memorising; a point's whole set of pixels cannot.)"""
    variance = torch.as_tensor(variance)
    if variance.dim() != 2:
        raise ValueError(f"variance must have shape (n, d), got {tuple(variance.shape)}")
    if not (variance > 0).all():
        raise ValueError("variance must be positive and finite everywhere")
    return variance.log().mean(1).exp()


def collapsed_points(
    variance: torch.Tensor, squared_error: torch.Tensor, noise_variance: float
) -> list[int]:
    """The points the decoder has memorised: those whose :func:`point_variance` and mean
    squared error per pixel (``squared_error``, shape ``(n,)``, summed over the d pixels, at
    the point's posterior mean) are both below ``noise_variance``. Its mean reproduces such a
    point more finely than the point's own noise, and its variance says so. (On held-out
    points a collapsing variance can be as small, but the mean misses them.)"""
    check_positive_float(noise_variance, "noise_variance")
    per_point = point_variance(variance)
    squared_error = torch.as_tensor(squared_error)
    if squared_error.shape != per_point.shape:
        raise ValueError(
            f"squared_error must have shape {tuple(per_point.shape)} (one per point), got "
            f"{tuple(squared_error.shape)}"
        )
    per_pixel = squared_error / torch.as_tensor(variance).shape[-1]
    memorised = (per_point < noise_variance) & (per_pixel < noise_variance)
    return torch.nonzero(memorised).flatten().tolist()


@dataclass(frozen=True, repr=False)
class Verdict(Displayed):
    """What a run shows, and why.

    :ivar status: ``"diverging"`` (training log p̂ rising while the smallest variance falls
        below the data's noise level), ``"bound exceeded"`` (an estimate above a proven bound:
        a bug), ``"rising"``, ``"falling"``, ``"flat"`` or ``"inconclusive"`` (the training
        trend's :attr:`Trend.direction`).
    :ivar summary: one line for a table.
    :ivar reasons: every finding, with its numbers.
    :ivar train: the training trend.
    :ivar held_out: the held-out trend (``None`` if not tracked).
    :ivar variance: the trend of log10 of the smallest variance (``None`` without one).
    :ivar rung: the theory.
    """

    status: str
    summary: str
    reasons: tuple[str, ...]
    train: Trend
    held_out: Trend | None
    variance: Trend | None
    rung: Rung

    def _display(self):
        rows = [("summary", self.summary), ("rung", str(self.rung))]
        rows += [(f"finding {i}", reason) for i, reason in enumerate(self.reasons, 1)]
        return f"Verdict: {self.status}", rows

    def __str__(self) -> str:
        return "\n".join((f"{self.status}: {self.summary}", *(f"- {r}" for r in self.reasons)))


def read_verdict(
    epochs: Sequence[float],
    train: Sequence[float],
    *,
    rung: Rung,
    train_stderr: Sequence[float] | None = None,
    held_out: Sequence[float] | None = None,
    held_out_stderr: Sequence[float] | None = None,
    min_variance: Sequence[float] | None = None,
    variance_floor: float = 0.0,
    noise_variance: float | None = None,
    collapsed: Sequence[int] | None = None,
    num_tracked: int | None = None,
    window: int = 10,
    tolerance: float = 0.5,
    alpha: float = 0.01,
    estimator: str | None = None,
) -> Verdict:
    """The verdict on one run from its tracked numbers (nothing else: no name, no label).

    ``"diverging"`` needs all of: no finite bound (``rung.bound``), the training log p̂ rising
    beyond its error (:func:`trend`), the smallest variance falling (its log10 trend, tolerance
    0.1 decade) and ending below ``noise_variance``, not at a floor. ``"bound exceeded"``
    needs the last training estimate above ``rung.bound`` by more than 4 standard errors (an
    estimate is a lower bound in expectation, so this cannot happen to a correct model).
    Otherwise the status is the training trend's direction, and the reasons say what else was
    seen: the held-out trend, the variance against its floor and the noise level, the points
    it memorised and, for a bounded model, the gap to its bound.

    :param epochs: the tracked epochs, increasing.
    :param train: log p̂ per point of the tracked training points, nats, at those epochs.
    :param Rung rung: the theory (:func:`ladder_rung`).
    :param train_stderr: their Monte Carlo standard errors.
    :param held_out: log p̂ per point of held-out points, and ``held_out_stderr``.
    :param min_variance: the smallest decoder variance at each tracked epoch.
    :param float variance_floor: ξ of a floored variance (default 0: none).
    :param noise_variance: the data's own noise variance per pixel (e.g. the dequantization
        noise's), below which a variance means a memorised point; ``None`` if unknown.
    :param collapsed: indices of the training points collapsed on (:func:`collapsed_points`)
        at the end, and ``num_tracked``, how many were examined.
    :param int window: the last tracked values a trend uses (default 10).
    :param float tolerance: the change over the window of log p̂ still called flat (default
        0.5 nats per point).
    :param float alpha: two-sided level of the trends' intervals (default 0.01).
    :param estimator: the estimator the log p̂ values came from (e.g. ``"IS, K = 100"``),
        named in the reasons; ``None`` names none.
    """
    train_trend = trend(
        epochs, train, train_stderr, window=window, tolerance=tolerance, alpha=alpha
    )
    by = f"{estimator}; " if estimator else ""
    reasons = [f"training log p̂ ({by}nats per point): {train_trend}"]
    held_trend = None
    if held_out is not None:
        held_trend = trend(
            epochs, held_out, held_out_stderr, window=window, tolerance=tolerance, alpha=alpha
        )
        reasons.append(f"held-out log p̂{f' ({estimator})' if estimator else ''}: {held_trend}")
    variance_trend = None
    falling_below_noise = False
    if min_variance is not None and all(v > 0 for v in min_variance):
        logs = [math.log10(v) for v in min_variance]
        variance_trend = trend(epochs, logs, window=window, tolerance=0.1, alpha=alpha)
        last = min_variance[-1]
        at_floor = variance_floor > 0 and last <= variance_floor * 1.01
        where = f"at its floor ξ = {variance_floor:g}" if at_floor else ""
        if noise_variance is not None:
            side = "below" if last < noise_variance else "above"
            where = ", ".join(
                filter(None, (where, f"{side} the data's noise {noise_variance:.2g}"))
            )
        reasons.append(
            f"smallest variance {last:.2g} ({where or 'no reference level given'}); its log10 "
            f"{variance_trend}"
        )
        falling_below_noise = (
            variance_trend.direction == "falling"
            and not at_floor
            and noise_variance is not None
            and last < noise_variance
        )
    if collapsed is not None:
        examples = ", ".join(f"#{i}" for i in list(collapsed)[:5])
        of = f" of {num_tracked}" if num_tracked is not None else ""
        reasons.append(
            f"memorised (mean and variance below the noise) {len(collapsed)}{of} tracked "
            "training points" + (f" (e.g. {examples})" if collapsed else "")
        )
    reasons.append(f"theory: {rung}")
    last_train = float(train[-1]) if len(train) else math.nan
    last_se = float(train_stderr[-1]) if train_stderr is not None and len(train) else 0.0
    bounded = math.isfinite(rung.bound)
    if bounded and last_train > rung.bound + 4 * last_se:
        status = "bound exceeded"
        summary = f"log p̂ {last_train:.1f} > bound {rung.bound:.1f}: an error in the model"
    elif train_trend.direction == "rising" and falling_below_noise and not bounded:
        status = "diverging"
        summary = f"diverging; {RUNG_SUMMARIES[rung.name]}"
    else:
        status = train_trend.direction
        if status == "inconclusive":
            if math.isnan(train_trend.slope):
                why = train_trend.reason
            else:
                why = f"change {train_trend.change} nats, within its error"
            summary = f"inconclusive: {why}"
        elif bounded and math.isfinite(last_train):
            summary = f"{status}, {rung.bound - last_train:.1f} under its bound"
        else:
            summary = f"{status}; {RUNG_SUMMARIES[rung.name]}"
    return Verdict(status, summary, tuple(reasons), train_trend, held_trend, variance_trend, rung)
