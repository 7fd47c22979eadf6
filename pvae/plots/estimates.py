"""Importance-sampling estimates per point: log p̂ with its error, and k̂."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch
from matplotlib.figure import Figure

from pvae.estimation.ais import AISEstimate
from pvae.estimation.kcurve import KCurve
from pvae.estimation.result import ImportanceEstimate
from pvae.plots.inputs import check_array

__all__ = ["KHAT_GOOD", "KHAT_UNRELIABLE", "plot_k_curve", "plot_khat", "plot_log_marginal"]

#: PSIS k̂ below this: the importance-sampling estimate is reliable (Vehtari et al. 2024).
KHAT_GOOD = 0.5


#: PSIS k̂ above this: the estimate is unreliable, whatever the number of samples.
KHAT_UNRELIABLE = 0.7


def _log_marginal_row(label, result) -> dict:
    if isinstance(result, ImportanceEstimate | AISEstimate):
        summary, proposal = result.summary(), result.proposal
    elif isinstance(result, Mapping):
        summary, proposal = result, result.get("proposal", "guide")
    else:
        raise TypeError(
            f"results[{label!r}] must be an ImportanceEstimate or its summary dict, "
            f"got {type(result).__name__}"
        )
    missing = [key for key in ("log_marginal", "stderr") if key not in summary]
    if missing:
        raise ValueError(
            f"results[{label!r}] has no {' or '.join(map(repr, missing))}: a summary dict needs "
            f"'log_marginal', 'stderr' and optionally 'elbo', got keys {sorted(summary)}"
        )
    row = {"label": str(label), "proposal": proposal}
    for key in ("log_marginal", "stderr", "elbo"):
        value = summary.get(key)
        if key == "elbo" and value is None:
            row[key] = math.nan
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"results[{label!r}][{key!r}] must be a number, got {value!r}")
        value = float(value)
        if key == "stderr":  # nan for K = 1: no error bar
            if value < 0 or value == math.inf:
                raise ValueError(
                    f"results[{label!r}]['stderr'] must be finite and >= 0 (or nan), got {value!r}"
                )
        elif not math.isfinite(value):
            raise ValueError(f"results[{label!r}][{key!r}] must be finite, got {value!r}")
        row[key] = value
    return row


def plot_log_marginal(
    results: Mapping[str, ImportanceEstimate | Mapping], *, title: str | None = None
) -> Figure:
    """Importance-sampled log p̂(x), averaged over the data points, with error bars of ±2
    standard errors (none where the standard error is ``nan``, K = 1), and the mean ELBO
    beside it: one column per entry of ``results`` (models, splits, numbers of samples K). The
    ELBO is a lower bound, so its marker lies below the estimate; the dotted line between
    them, labelled with its length, is the gap log p̂(x) − ELBO, an estimate of a lower bound
    on the mean KL(q(z|x) ‖ p(z|x)) (log p̂ is itself below log p(x) in expectation).

    :param results: label → an :class:`~pvae.estimation.ImportanceEstimate` (from
        :func:`pvae.log_marginal`) or its :meth:`~pvae.estimation.ImportanceEstimate.summary`
        dict (keys ``log_marginal``, ``stderr`` and, optionally, ``elbo`` and ``proposal``).
        With the prior as proposal the mean log-weight is E_p(z)[log p(x|z)], not the ELBO
        (the gap is then KL(p(z) ‖ p(z|x))), and is drawn with a marker of its own.
    :param str title: the axes' title (default: a description).
    """
    if not isinstance(results, Mapping):
        raise TypeError(
            "results must be a dict label → ImportanceEstimate or summary dict, "
            f"got {type(results).__name__}"
        )
    if not results:
        raise ValueError("results is empty: nothing to plot")
    rows = [_log_marginal_row(label, result) for label, result in results.items()]
    x = np.arange(len(rows))
    means = np.array([row["log_marginal"] for row in rows])
    errors = 2 * np.nan_to_num(np.array([row["stderr"] for row in rows]), nan=0.0)
    elbos = np.array([row["elbo"] for row in rows])
    figure = Figure(figsize=(max(4.5, 1.2 * len(rows) + 2.5), 4.2), layout="constrained")
    axis = figure.subplots()
    axis.errorbar(x, means, yerr=errors, fmt="o", color="C0", capsize=5, label="log p̂(x) ± 2 s.e.")
    prior = np.array([row["proposal"] == "prior" for row in rows])
    for mine, marker, color, label in (
        (~prior & np.isfinite(elbos), "v", "C1", "ELBO"),
        (prior & np.isfinite(elbos), "x", "C2", "mean log-weight (prior proposal)"),
    ):
        if mine.any():
            axis.plot(x[mine], elbos[mine], ls="", marker=marker, ms=8, color=color, label=label)
    for position, mean, elbo in zip(x, means, elbos, strict=True):
        if math.isfinite(elbo):
            axis.plot([position, position], [elbo, mean], ls=":", color="gray", lw=1)
            axis.annotate(
                f"gap {mean - elbo:.3g}",
                xy=(position, (mean + elbo) / 2),
                xytext=(9, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                color="gray",
            )
    labels = [row["label"] for row in rows]
    rotate = len(rows) > 4 or max(len(label) for label in labels) > 14
    axis.set_xticks(x, labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    axis.set_xlim(-0.6, len(rows) - 0.4)
    axis.set(
        ylabel="mean over data points (nats)",
        title=title or "Importance-sampled log p̂(x) and the ELBO",
    )
    axis.grid(axis="y", alpha=0.3)
    handles, names = axis.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: not names[i].startswith("log p̂"))
    axis.legend([handles[i] for i in order], [names[i] for i in order], fontsize="small")
    return figure


def _khat_series(khat, labels) -> list[tuple[str | None, np.ndarray]]:
    if isinstance(khat, Mapping):
        if labels is not None:
            raise ValueError(
                f"labels must be None when khat is a dict (its keys label the series), "
                f"got {labels!r}"
            )
        if not khat:
            raise ValueError("khat is empty: nothing to plot")
        return [
            (str(label), check_array(values, f"khat[{label!r}]", "(n,)", finite=False))
            for label, values in khat.items()
        ]
    array = check_array(khat, "khat", "(n,) or (series, n)", (1, 2), finite=False)
    rows = array[None] if array.ndim == 1 else array
    if labels is None:
        names = [None] if array.ndim == 1 else [f"series {i}" for i in range(len(rows))]
    else:
        names = [labels] if isinstance(labels, str) else [str(label) for label in labels]
        if len(names) != len(rows):
            raise ValueError(
                f"labels must name each of the {len(rows)} series of khat "
                f"(shape {array.shape}), got {labels!r}"
            )
    return list(zip(names, rows, strict=True))


def plot_khat(khat, *, labels=None, title: str | None = None) -> Figure:
    """The PSIS Pareto shape k̂ of every data point against its index (Vehtari et al. [1]), with
    the thresholds 0.5 (below: good) and 0.7 (above: the importance-sampling estimate of that
    point is unreliable). Each series' legend entry gives its share of points above 0.7 — as
    :meth:`~pvae.estimation.ImportanceEstimate.summary`'s ``khat_above_0.7``, an ``inf`` k̂ counts
    as above — and how many k̂ were not finite and are not drawn: ``inf`` where K was too small
    for the Pareto fit, ``nan`` where every weight was equal.

    :param khat: k̂ of each point, shape ``(n,)`` (e.g. :attr:`ImportanceEstimate.khat
        <pvae.estimation.ImportanceEstimate>`); several series as an array ``(series, n)``, or a
        dict label → ``(n,)`` (e.g. training and held-out points, or models; lengths may differ).
    :param labels: the series' names when ``khat`` is not a dict: a string for one series, a
        sequence of strings for ``(series, n)``.
    :param str title: the axes' title (default: a description).

    [1] Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto Smoothed
        Importance Sampling. JMLR 25.
    """
    series = _khat_series(khat, labels)
    figure = Figure(figsize=(8, 4.6 + 0.2 * len(series)), layout="constrained")
    axis = figure.subplots()
    largest = max(len(values) for _, values in series)
    size = float(np.clip(3000 / largest, 4, 30))
    for number, (label, values) in enumerate(series):
        finite = np.isfinite(values)
        index = np.arange(len(values))
        share = float(np.mean(values > KHAT_UNRELIABLE))
        entry = f"{label}: " if label is not None else ""
        entry += f"{share:.0%} of {len(values)} above {KHAT_UNRELIABLE}"
        num_inf, num_nan = int(np.isinf(values).sum()), int(np.isnan(values).sum())
        if num_inf:
            entry += f"; {num_inf} inf (K too small) not shown"
        if num_nan:
            entry += f"; {num_nan} nan (equal weights) not shown"
        axis.scatter(
            index[finite],
            values[finite],
            s=size,
            alpha=0.7,
            linewidths=0,
            color=f"C{number % 10}",
            label=entry,
        )
    axis.axhline(KHAT_GOOD, color="tab:green", ls="--", lw=1, label=f"good < {KHAT_GOOD}")
    axis.axhline(
        KHAT_UNRELIABLE, color="tab:red", ls="--", lw=1, label=f"unreliable > {KHAT_UNRELIABLE}"
    )
    axis.set(
        xlabel="data point",
        ylabel="Pareto k̂",
        title=title or "PSIS diagnostic k̂ of each point's importance weights",
    )
    axis.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    return figure


def plot_k_curve(
    curves: Mapping[str, KCurve],
    *,
    references: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Figure:
    """log p̂(x) averaged over the points against the number of importance samples K (log
    scale), on nested draws of one run (:func:`~pvae.estimation.k_curve`), with a band of ±2
    Monte Carlo standard errors: one line per entry (splits, models). A line still climbing at
    the largest K shows an estimate still biased low there, however small its error band.

    :param curves: label → :class:`~pvae.estimation.KCurve`.
    :param references: label → a mean log p̂ over the same points from another estimator
        (e.g. ``pvae.ais(...).summary()["log_marginal"]``), drawn as a dashed line.
    :param str title: the axes' title (default: a description).
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves must be a non-empty dict label → KCurve, got {curves!r}")
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    axis = figure.subplots()
    for number, (label, curve) in enumerate(curves.items()):
        if not isinstance(curve, KCurve):
            raise TypeError(
                f"curves[{label!r}] must be a KCurve (pvae.estimation.k_curve), got "
                f"{type(curve).__name__}"
            )
        k = curve.num_samples.numpy()
        mean = curve.mean.detach().cpu().numpy()
        band = 2 * np.nan_to_num(curve.stderr_mc.detach().cpu().numpy(), nan=0.0)
        color = f"C{number % 10}"
        axis.plot(k, mean, marker="o", color=color, label=str(label))
        axis.fill_between(k, mean - band, mean + band, color=color, alpha=0.2, lw=0)
    if references is not None and not isinstance(references, Mapping):
        raise TypeError(f"references must be a dict label → float, got {type(references).__name__}")
    for number, (label, value) in enumerate((references or {}).items()):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"references[{label!r}] must be a finite number, got {value!r}")
        axis.axhline(
            value, color="gray", ls=("--", ":", "-.")[number % 3], lw=1.2, label=str(label)
        )
    axis.set_xscale("log", base=2)
    if references:  # axhline does not widen the limits: keep every reference in view
        low, high = axis.get_ylim()
        pad = 0.05 * (high - low)
        values = list(references.values())
        axis.set_ylim(min(low, min(values) - pad), max(high, max(values) + pad))
    axis.set(
        xlabel="importance samples K (nested draws)",
        ylabel="mean log p̂(x) over the points (nats)",
        title=title or "log p̂(x) against K: still climbing means still biased low",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure
