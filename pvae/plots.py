"""Figures: each function returns a matplotlib Figure (no global state, no plt.show)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "plot_collapse_depth",
    "plot_construction",
    "plot_demo",
    "plot_gamma_sweep",
    "plot_history",
    "plot_proposition1",
    "plot_scale_histograms",
]


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


def plot_demo(runs: Mapping[tuple[str, str], dict]) -> Figure:
    """The demo's figure (:func:`pvae.demo.run_demo`): log p̂ of the tracked training points
    and of the held-out points per epoch, one line per variant, and the smallest decoder
    variance (only variants where it is finite, i.e. Normal likelihoods); one row of three
    panels per data version.

    :param runs: ``(version, variant label)`` → a run with a ``"history"``, a list of per-epoch
        records with the keys ``epoch``, ``train_log_px``, ``test_log_px`` and
        ``min_variance``. Versions and variants are drawn in the order they first appear.
    """
    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    versions = list(dict.fromkeys(version for version, _ in runs))
    figure = Figure(figsize=(14, 4.2 * len(versions)), layout="constrained")
    axes = figure.subplots(len(versions), 3, squeeze=False)
    for row, version in enumerate(versions):
        for label in dict.fromkeys(label for mine, label in runs if mine == version):
            history = runs[version, label]["history"]
            epochs = [record["epoch"] for record in history]
            style = {"marker": ".", "label": label}
            axes[row, 0].plot(epochs, [r["train_log_px"] for r in history], **style)
            axes[row, 1].plot(epochs, [r["test_log_px"] for r in history], **style)
            variances = [r["min_variance"] for r in history]
            if all(math.isfinite(v) for v in variances):
                axes[row, 2].semilogy(epochs, variances, **style)
        axes[row, 0].set(title=f"{version} data: training points", ylabel="log p̂(x) (nats)")
        axes[row, 1].set(title=f"{version} data: held-out points", ylabel="log p̂(x) (nats)")
        axes[row, 2].set(title="smallest decoder variance", ylabel="σ²")
        for axis in axes[row]:
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
        axes[row, 1].sharey(axes[row, 0])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle("Is the Gaussian VAE well-posed? Importance-sampled log p(x) during training")
    return figure


def plot_construction(rows: list[dict]) -> Figure:
    """log p̂(X) against the sharpness k of the Mattei–Frellsen sequence, without and with the
    variance floor ξ, and the floored sequence's bound.

    :param rows: the rows of :func:`pvae.demo.construction_table`: keys ``k``,
        ``free_log_px``, ``floored_log_px`` and ``bound``.
    """
    if not rows:
        raise ValueError("rows is empty: nothing to plot")
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    k = [row["k"] for row in rows]
    axis.plot(k, [row["free_log_px"] for row in rows], "o-", label="per-pixel σ², no floor")
    axis.plot(k, [row["floored_log_px"] for row in rows], "s-", label="floor ξ")
    axis.axhline(rows[0]["bound"], color="gray", ls="--", label="bound −(nd/2) log 2πξ")
    axis.set(
        xlabel="sharpness k = −log σ² on the collapsed point",
        ylabel="log p̂(X) of the tracked training points (nats)",
        title="Mattei–Frellsen: the likelihood has no maximum",
    )
    axis.legend()
    axis.grid(alpha=0.3)
    return figure


def plot_collapse_depth(
    rows: list[dict],
    scales: Mapping[tuple[str, int], np.ndarray],
    *,
    baseline: float | None = None,
    title: str | None = None,
) -> Figure:
    """Dai et al.'s Fig. 1 and 2 [1] for the rows of
    :func:`pvae.collapse_depth.run_collapse_depth`.

    Top: training (solid) and held-out (dotted) reconstruction error against depth for every
    variant, log scale; the learned γ; the VAEs' active units. Bottom: one histogram per depth
    of the VAEs' encoder scales σ_z over every point and latent dimension (counts, log scale):
    a dimension at the prior has σ_z ≈ 1.

    :param rows: the rows :func:`~pvae.collapse_depth.run_collapse_depth` returns (or reads
        back from its JSON); variants are drawn in the order they first appear.
    :param scales: ``(variant, depth)`` → array of σ_z (any shape), for the VAE variants.
    :param float baseline: the error of reconstructing every point by the training mean, drawn
        as a line in the first panel (a decoder that ignores z does no better), or ``None``.
    :param str title: the figure's suptitle (default: none).

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    if not rows:
        raise ValueError("rows is empty: nothing to plot")
    depths = sorted({row["depth"] for row in rows})
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    colors = {"ae": "C0", "vae": "C3", "vae-warmup": "C2"}
    figure = Figure(figsize=(max(12, 2.2 * len(depths)), 8), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.15, 1))
    error_axis, gamma_axis, active_axis = top.subplots(1, 3)
    for variant in variants:
        mine = sorted((row for row in rows if row["variant"] == variant), key=lambda r: r["depth"])
        x = [row["depth"] for row in mine]
        style = {"color": colors.get(variant), "marker": "o"}
        error_axis.plot(x, [row["train_recon_error"] for row in mine], label=variant, **style)
        error_axis.plot(x, [row["test_recon_error"] for row in mine], ls=":", alpha=0.6, **style)
        gamma_axis.plot(x, [row["gamma"] for row in mine], label=variant, **style)
        if variant != "ae":
            active_axis.plot(x, [row["active_units"] for row in mine], label=variant, **style)
    if baseline is not None:
        error_axis.axhline(baseline, color="gray", ls="--", lw=1, label="data mean")
    error_axis.set(
        yscale="log",
        xlabel="hidden layers (encoder and decoder each)",
        ylabel="‖x − μ_x(E_q[z|x])‖² per point",
        title="reconstruction error: training (—), held-out (···)",
    )
    gamma_axis.set(yscale="log", xlabel="hidden layers", ylabel="γ", title="learned shared γ")
    active_axis.set(
        xlabel="hidden layers",
        ylabel="active units",
        title="VAE active units (Burda et al.)",
        ylim=(0, None),
    )
    for axis in (error_axis, gamma_axis, active_axis):
        axis.set_xticks(depths)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()

    histogram_axes = bottom.subplots(1, len(depths), sharex=True, sharey=True, squeeze=False)[0]
    values = [np.asarray(value).ravel() for value in scales.values()]
    upper = max([1.2, *(float(value.max()) for value in values if value.size)])
    bins = np.linspace(0, upper, 49)
    for axis, depth in zip(histogram_axes, depths, strict=True):
        for variant in variants:
            if (variant, depth) in scales:
                axis.hist(
                    np.asarray(scales[variant, depth]).ravel(),
                    bins=bins,
                    histtype="step",
                    lw=1.5,
                    color=colors.get(variant),
                    label=variant,
                )
        axis.axvline(1.0, color="gray", ls="--", lw=0.8)
        axis.set(yscale="log", title=f"{depth} hidden layer{'s' * (depth > 1)}", xlabel="σ_z")
    histogram_axes[0].set_ylabel("count (points × dims)")
    if histogram_axes[0].get_legend_handles_labels()[0]:
        histogram_axes[0].legend(fontsize="small")
    bottom.suptitle("VAE encoder scales σ_z of every training point and latent dimension")
    if title:
        figure.suptitle(title)
    return figure
