"""Training objectives compared: held-out log p̂ of IWAE- and ELBO-trained models."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from pvae.plots.inputs import check_rows

__all__ = ["plot_iwae_vs_elbo"]


def plot_iwae_vs_elbo(
    rows: list[dict],
    comparisons: list[dict],
    histories: Mapping | None = None,
    *,
    z: float = 2.0,
    title: str | None = None,
) -> Figure:
    """The figure of :func:`pvae.experiments.iwae_vs_elbo.run_iwae_vs_elbo`.

    Left: every run's held-out log p̂ by IS (filled, ± ``z`` across-point se), by AIS (×,
    where the rows have ``test_ais_log_px``) and the held-out ELBO (hollow), one marker per
    seed. Middle: the paired differences of held-out log p̂ of each comparison, one marker
    per seed, ± ``z`` paired se, by IS (filled) and by AIS (hollow, where the entries have
    ``ais_difference``); a difference whose bars miss 0 is measured. Right (given
    ``histories``): the held-out ELBO after every epoch of the first seed's runs.

    :param rows: the rows :func:`~pvae.experiments.iwae_vs_elbo.run_iwae_vs_elbo` returns.
    :param comparisons: its comparisons.
    :param histories: ``(variant, seed)`` → the run's :class:`~pvae.training.History` (or its
        list of records), whose records have ``epoch`` and ``val_elbo``; or ``None``.
    :param float z: the error bars' half-width in standard errors (default 2).
    :param str title: the figure's suptitle (default: none).
    """
    rows = check_rows(
        rows,
        "rows",
        ("variant", "seed", "test_log_px", "test_stderr_points", "test_elbo"),
        "run_iwae_vs_elbo",
    )
    comparisons = check_rows(
        comparisons, "comparisons", ("first", "second", "per_seed"), "run_iwae_vs_elbo"
    )
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    seeds = list(dict.fromkeys(row["seed"] for row in rows))
    offsets = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    colors = {variant: f"C{i}" for i, variant in enumerate(variants)}
    panels = 3 if histories else 2
    figure = Figure(figsize=(4.6 * panels, 4.2), layout="constrained")
    axes = figure.subplots(1, panels)
    left, middle = axes[0], axes[1]
    for row in rows:
        x = variants.index(row["variant"]) + offsets[seeds.index(row["seed"])]
        color = colors[row["variant"]]
        left.errorbar(
            x, row["test_log_px"], yerr=z * row["test_stderr_points"], fmt="o", color=color
        )
        left.plot(x, row["test_elbo"], "o", mfc="none", color=color)
        if row.get("test_ais_log_px") is not None:
            left.plot(x + 0.06, row["test_ais_log_px"], "x", color="k", ms=5)
    left.set_xticks(range(len(variants)), variants)
    left.set(
        ylabel="nats per held-out point",
        title=f"held-out log p̂: IS (●, ± {z:g} se), AIS (×), ELBO (○)",
    )
    for i, comparison in enumerate(comparisons):
        color = colors.get(comparison["first"], "k")
        for j, entry in enumerate(comparison["per_seed"]):
            x = i + offsets[j % len(offsets)]
            middle.errorbar(
                x - 0.03, entry["difference"], yerr=z * entry["stderr_points"], fmt="o", color=color
            )
            if entry.get("ais_difference") is not None:
                middle.errorbar(
                    x + 0.03,
                    entry["ais_difference"],
                    yerr=z * entry["ais_stderr_points"],
                    fmt="o",
                    mfc="none",
                    color=color,
                )
    middle.axhline(0, color="gray", lw=1)
    middle.set_xticks(
        range(len(comparisons)),
        [f"{c['first']}\n− {c['second']}" for c in comparisons],
    )
    middle.set(
        ylabel="Δ held-out log p̂ (nats per point)",
        title=f"paired differences per seed, IS (●) and AIS (○), ± {z:g} se",
    )
    if histories:
        right = axes[2]
        first_seed = seeds[0]
        for variant in variants:
            history = histories.get((variant, first_seed))
            if not history:
                continue
            records = [r for r in history if "val_elbo" in r]
            right.plot(
                [r["epoch"] for r in records],
                [r["val_elbo"] for r in records],
                color=colors[variant],
                label=variant,
            )
        right.set(
            xlabel="epoch",
            ylabel="held-out ELBO (nats per point)",
            title=f"held-out ELBO during training (seed {first_seed})",
        )
        right.legend(fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    return figure
