"""Figures: each function returns a matplotlib Figure (no global state, no plt.show)."""

from __future__ import annotations

from matplotlib.figure import Figure

__all__ = ["plot_history"]


def plot_history(history, *, title: str | None = None) -> Figure:
    """Learning curves from :func:`pvae.fit`'s history: the ELBO (train monitor and held-out)
    and the smallest decoder variance (log scale), per epoch."""
    if not history:
        raise ValueError("history is empty: nothing to plot")
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    elbo_axes, variance_axes = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in history]
    for key, label in (("elbo", "train (monitor)"), ("val_elbo", "held-out")):
        if key in history[0]:
            elbo_axes.plot(epochs, [record[key] for record in history], marker="o", label=label)
    elbo_axes.plot(epochs, [-record["loss"] for record in history], ls="--", label="−loss (β)")
    elbo_axes.set(xlabel="epoch", ylabel="ELBO (nats / point)", title="ELBO")
    elbo_axes.legend()
    if "min_variance" in history[0]:
        variances = [record["min_variance"] for record in history]
        variance_axes.semilogy(epochs, variances, marker="o")
    variance_axes.set(xlabel="epoch", ylabel="smallest decoder variance", title="decoder variance")
    if title:
        figure.suptitle(title)
    return figure
