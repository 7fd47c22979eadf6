"""Learning curves of a training run."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history"]


def plot_history(history, *, title: str | None = None) -> Figure:
    """Learning curves from :func:`pvae.fit`'s history, per epoch: the ELBO on the monitored
    training points and, when the history has it (``validation_data``), on the held-out data,
    beside −loss, the training objective with the KL weight β; and the smallest decoder
    variance on each (log scale), which falls towards 0 where the likelihood is unbounded.

    :param history: a :class:`pvae.training.History`, or any list of its records (dicts with
        ``epoch`` and ``loss``, and optionally ``elbo``, ``val_elbo``, ``min_variance`` and
        ``val_min_variance``), e.g. read back from a checkpoint.
    :param str title: the figure's suptitle (default: none).
    """
    if isinstance(history, Mapping) or not hasattr(history, "__len__"):
        raise TypeError(f"history must be a list of per-epoch dicts, got {type(history).__name__}")
    if not history:
        raise ValueError("history is empty: nothing to plot")
    for key in ("epoch", "loss"):
        if not isinstance(history[0], Mapping) or key not in history[0]:
            raise ValueError(
                f"history must be a list of per-epoch dicts with 'epoch' and 'loss' "
                f"(pvae.fit's History), got a first record {history[0]!r}"
            )
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    elbo_axes, variance_axes = figure.subplots(1, 2)
    for axis in (elbo_axes, variance_axes):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = [record["epoch"] for record in history]

    def column(key: str) -> np.ndarray:
        return np.array([record.get(key, math.nan) for record in history], dtype=float)

    for key, label in (("elbo", "training (monitored points)"), ("val_elbo", "held-out")):
        if key in history[0]:
            elbo_axes.plot(epochs, column(key), marker="o", ms=3, label=label)
    elbo_axes.plot(epochs, -column("loss"), ls="--", color="gray", label="−loss (KL weight β)")
    elbo_axes.set(xlabel="epoch", ylabel="ELBO (nats per point)", title="ELBO")
    elbo_axes.legend()
    shown = False
    for key, label in (("min_variance", "training"), ("val_min_variance", "held-out")):
        variances = column(key)
        if np.isfinite(variances).any():
            variance_axes.semilogy(epochs, variances, marker="o", ms=3, label=label)
            shown = True
    if shown:
        variance_axes.legend()
    else:
        variance_axes.set(xticks=[], yticks=[])
        variance_axes.text(
            0.5,
            0.5,
            "no decoder variance\n(not a Normal likelihood)",
            ha="center",
            va="center",
            color="gray",
            transform=variance_axes.transAxes,
        )
    variance_axes.set(xlabel="epoch", ylabel="σ²", title="smallest decoder variance")
    for axis in (elbo_axes, variance_axes):
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    return figure
