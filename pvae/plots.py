"""Figures: each function returns a matplotlib Figure (no global state, no plt.show)."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["plot_gamma_sweep", "plot_history", "plot_proposition1", "plot_scale_histograms"]


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


def plot_gamma_sweep(
    sweeps: dict[str, list[dict]], *, eigenvalues=None, latent_dim: int | None = None
) -> Figure:
    """Active units against the fixed decoder variance γ (Dai et al.'s Proposition 2): one line
    per sweep of :func:`pvae.collapse.gamma_sweep` (e.g. ``{"linear VAE": rows, "MLP VAE":
    rows}``) and, given the data-covariance ``eigenvalues`` and ``latent_dim``, the closed-form
    pPCA count min(#{λ > γ}, q) as an exact step function, with the eigenvalues as ticks along
    the top (a dimension switches off where γ passes one)."""
    if not sweeps or not all(sweeps.values()):
        raise ValueError("sweeps must map labels to non-empty lists of rows")
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axes = figure.subplots()
    gammas = [row["gamma"] for rows in sweeps.values() for row in rows]
    low, high = min(gammas) / 1.5, max(gammas) * 1.5
    top = max(row["active"] for rows in sweeps.values() for row in rows)
    if eigenvalues is not None and latent_dim is not None:
        values = np.sort(torch.as_tensor(eigenvalues).detach().cpu().numpy())
        grid = np.geomspace(low, high, 2000)
        counts = np.minimum((values[None, :] > grid[:, None]).sum(1), latent_dim)
        axes.plot(
            grid,
            counts,
            color="black",
            lw=2,
            alpha=0.4,
            label="closed form (pPCA): min(#{λ > γ}, q)",
        )
        top = max(top, latent_dim)
        inside = values[(values >= low) & (values <= high)]
        axes.plot(
            inside,
            np.full_like(inside, top + 1.0),
            "|",
            color="grey",
            markersize=12,
            label="eigenvalues of the data covariance",
        )
    for (label, rows), marker in zip(sweeps.items(), "osd^v", strict=False):
        axes.plot(
            [r["gamma"] for r in rows],
            [r["active"] for r in rows],
            marker=marker,
            ls="--",
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set(
        xlabel="fixed decoder variance γ",
        ylabel="active units (activity > 0.01)",
        title="Latent dimensions switch off as γ passes the eigenvalues",
    )
    axes.legend(fontsize=8)
    return figure


def plot_scale_histograms(scales: dict[str, torch.Tensor], *, bins: int = 40) -> Figure:
    """Histograms of the encoder's σ_z over every point and latent dimension, one panel per
    entry of ``scales`` (e.g. per depth; Dai et al.'s Fig. 2). σ_z near 1 is a dimension at
    the prior (collapsed); near 0 a dimension the decoder uses."""
    if not scales:
        raise ValueError("scales is empty: nothing to plot")
    figure = Figure(figsize=(2.6 * len(scales), 2.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(scales), sharey=True))
    for axis, (label, values) in zip(axes, scales.items(), strict=True):
        values = torch.as_tensor(values).detach().cpu().reshape(-1).numpy()
        axis.hist(values, bins=bins, range=(0, max(1.05, float(values.max()))), density=True)
        axis.axvline(1.0, color="black", lw=0.8, ls=":")
        axis.set(title=label, xlabel="encoder σ_z")
    axes[0].set_ylabel("density")
    return figure


def plot_proposition1(slices: dict[str, tuple], family: tuple, *, collapsed: float) -> Figure:
    """Proposition 1 in two panels: the exact energy −ELBO(X) along a line through the collapsed
    point, ``slices[label] = (steps, energies)`` (e.g. α = 0.5 and α = 0 along the affine
    model's descent direction), and the energy of the reconstructing family against δ,
    ``family = (deltas, energies)``, with the collapsed energy ``collapsed`` marked."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    slice_axes, family_axes = figure.subplots(1, 2)
    for label, (steps, energies) in slices.items():
        slice_axes.plot(steps, energies, label=label)
    slice_axes.axhline(collapsed, color="black", lw=0.8, ls=":", label="collapsed point (7)")
    slice_axes.set(
        xlabel="step t along a direction v",
        ylabel="energy −ELBO(X) (nats)",
        title="Around the collapsed point",
    )
    slice_axes.legend(fontsize=8)
    deltas, energies = family
    family_axes.semilogx(deltas, energies, marker="o", label="reconstructing family")
    family_axes.axhline(collapsed, color="black", lw=0.8, ls=":", label="collapsed point (7)")
    family_axes.invert_xaxis()
    family_axes.set(
        xlabel="δ (encoder and decoder scale)",
        ylabel="energy −ELBO(X) (nats)",
        title="Energy → −∞ as δ → 0 (α > 0 too)",
    )
    family_axes.legend(fontsize=8)
    if not all(math.isfinite(e) for e in energies):
        raise ValueError("family energies must be finite")
    return figure
