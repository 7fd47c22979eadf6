"""Posterior collapse: encoder scales, the γ sweep, Proposition 1 and the depth experiment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np
import torch
from matplotlib.figure import Figure

from pvae.plots.inputs import check_array, check_curve, check_rows, to_numpy
from pvae.validation import check_positive_int

__all__ = ["plot_collapse_depth", "plot_gamma_sweep", "plot_proposition1", "plot_scale_histograms"]


def plot_scale_histograms(scales: Mapping[str, torch.Tensor], *, bins: int = 40) -> Figure:
    """Histograms of the encoder's σ_z over every point and latent dimension, one panel per
    entry of ``scales`` (e.g. per depth; Dai et al.'s Fig. 2). σ_z near 1 is a dimension at
    the prior (collapsed); near 0 a dimension the decoder uses.

    :param scales: label → σ_z, any shape (e.g. ``(n, latent_dim)`` from
        :func:`pvae.diagnostics.diagnose`), all entries finite and ≥ 0.
    :param int bins: bins per histogram over [0, max(1.05, largest σ_z)] (default 40).
    """
    if not isinstance(scales, Mapping):
        raise TypeError(f"scales must be a dict label → σ_z, got {type(scales).__name__}")
    if not scales:
        raise ValueError("scales is empty: nothing to plot")
    check_positive_int(bins, "bins")
    arrays = {}
    for label, values in scales.items():
        values = to_numpy(values, f"scales[{label!r}]").reshape(-1)
        arrays[label] = check_array(values, f"scales[{label!r}]", "(any shape)")
        if arrays[label].min() < 0:
            raise ValueError(f"scales[{label!r}] must be ≥ 0, got {arrays[label].min()}")
    figure = Figure(figsize=(2.6 * len(scales), 2.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(scales), sharey=True))
    for axis, (label, values) in zip(axes, arrays.items(), strict=True):
        axis.hist(values, bins=bins, range=(0, max(1.05, float(values.max()))), density=True)
        axis.axvline(1.0, color="black", lw=0.8, ls=":")
        axis.set(title=label, xlabel="encoder σ_z")
    axes[0].set_ylabel("density")
    return figure


def plot_gamma_sweep(
    sweeps: dict[str, list[dict]], *, eigenvalues=None, latent_dim: int | None = None
) -> Figure:
    """Active units against the fixed decoder variance γ (Dai et al.'s Proposition 2): one line
    per sweep of :func:`pvae.experiments.gamma_sweep` (e.g. ``{"linear VAE": rows, "MLP VAE":
    rows}``) and, given the data-covariance ``eigenvalues`` and ``latent_dim``, the closed-form
    pPCA count min(#{λ > γ}, q) as an exact step function, with the eigenvalues as ticks along
    the top (a dimension switches off where γ passes one)."""
    if not isinstance(sweeps, Mapping) or not sweeps or not all(sweeps.values()):
        raise ValueError("sweeps must map labels to non-empty lists of rows")
    for label, rows in sweeps.items():
        check_rows(
            rows,
            f"sweeps[{label!r}]",
            ("gamma", "active"),
            "pvae.experiments.gamma_sweep",
        )
        for i, row in enumerate(rows):
            if not (isinstance(row["gamma"], Real) and row["gamma"] > 0):
                raise ValueError(
                    f"sweeps[{label!r}][{i}]['gamma'] must be a number > 0 (a log axis), got "
                    f"{row['gamma']!r}"
                )
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


def plot_proposition1(slices: dict[str, tuple], family: tuple, *, collapsed: float) -> Figure:
    """Proposition 1 in two panels: the exact energy −ELBO(X) along a line through the collapsed
    point, ``slices[label] = (steps, energies)`` (e.g. α = 0.5 and α = 0 along the affine
    model's descent direction), and the energy of the reconstructing family against δ,
    ``family = (deltas, energies)``, with the collapsed energy ``collapsed`` marked."""
    if not isinstance(slices, Mapping) or not slices:
        raise ValueError(
            f"slices must be a non-empty dict label → (steps, energies), got {slices!r}"
        )
    for label, pair in slices.items():
        check_curve(pair, f"slices[{label!r}]")
    check_curve(family, "family")
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


def _draw_over_seeds(axis, rows: list[dict], key: str, color, **style) -> None:
    """``rows[key]`` against depth: the mean over the rows of each depth (seeds), joined, and
    where a depth has several, each row's value as a faint dot."""
    depths = sorted({row["depth"] for row in rows})
    groups = [[row[key] for row in rows if row["depth"] == depth] for depth in depths]
    axis.plot(depths, [np.mean(group) for group in groups], color=color, marker="o", **style)
    if any(len(group) > 1 for group in groups):
        axis.plot(
            [row["depth"] for row in rows],
            [row[key] for row in rows],
            ls="none",
            marker=".",
            color=color,
            alpha=0.4,
        )


def plot_collapse_depth(
    rows: list[dict],
    scales: Mapping[tuple[str, int], np.ndarray],
    *,
    baseline: float | None = None,
    title: str | None = None,
) -> Figure:
    """Dai et al.'s Fig. 1 and 2 [1] for the rows of
    :func:`pvae.experiments.run_collapse_depth`.

    Top: training (solid) and held-out (dotted) reconstruction error against depth for every
    variant, log scale; the learned γ; the VAEs' active units. Where rows repeat a (variant,
    depth) over seeds, the lines join the means and each seed's value is a faint dot. Bottom:
    one histogram per depth of the VAEs' encoder scales σ_z over every point and latent
    dimension (counts, log scale): a dimension at the prior has σ_z ≈ 1.

    :param rows: the rows :func:`~pvae.experiments.run_collapse_depth` returns (or reads
        back from its JSON); variants are drawn in the order they first appear.
    :param scales: ``(variant, depth)`` → array of σ_z (any shape), for the VAE variants.
    :param float baseline: the error of reconstructing every point by the training mean, drawn
        as a line in the first panel (a decoder that ignores z does no better), or ``None``.
    :param str title: the figure's suptitle (default: none).

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """
    rows = check_rows(
        rows,
        "rows",
        ("variant", "depth", "train_recon_error", "test_recon_error", "gamma", "active_units"),
        "pvae.experiments.run_collapse_depth",
    )
    if not isinstance(scales, Mapping):
        raise TypeError(
            f"scales must be a dict (variant, depth) → σ_z, got {type(scales).__name__}"
        )
    depths = sorted({row["depth"] for row in rows})
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    colors = {"ae": "C0", "vae": "C3", "vae-warmup": "C2"}
    figure = Figure(figsize=(max(12, 2.2 * len(depths)), 8), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.15, 1))
    error_axis, gamma_axis, active_axis = top.subplots(1, 3)
    for variant in variants:
        mine = [row for row in rows if row["variant"] == variant]
        color = colors.get(variant)
        _draw_over_seeds(error_axis, mine, "train_recon_error", color, label=variant)
        _draw_over_seeds(error_axis, mine, "test_recon_error", color, ls=":", alpha=0.6)
        _draw_over_seeds(gamma_axis, mine, "gamma", color, label=variant)
        if variant != "ae":
            _draw_over_seeds(active_axis, mine, "active_units", color, label=variant)
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
