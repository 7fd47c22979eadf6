"""The demo's figures: log p̂ per epoch per variant, and the Mattei–Frellsen construction."""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pvae.plots.inputs import check_rows

__all__ = ["plot_construction", "plot_demo"]


def plot_demo(runs: Mapping[tuple[str, str], dict]) -> Figure:
    """The demo's figure (:func:`pvae.experiments.run_demo`): log p̂ of the tracked training points
    and of the held-out points per epoch, one line per variant, and the smallest decoder
    variance (only variants where it is finite, i.e. Normal likelihoods) with the data's noise
    level and the variance floor where the runs state them; one row of three panels per
    training set, one colour per variant throughout. Where a held-out log p̂ falls below −100
    nats its axis is linear within ±100 and logarithmic beyond, so that a collapse by
    thousands of nats and a healthy run both show.

    Where the run holds an AIS estimate of the final model (``run["ais"][split]`` with
    ``"ran"`` true and its ``"log_px"``), it is drawn as an open circle at the last epoch, in
    the variant's colour: how far the importance-sampled line's end sits below it is how far
    IS erred low, at least.

    :param runs: ``(training set, variant label)`` → a run with a ``"history"``, a list of
        per-epoch records with the keys ``epoch``, ``train_log_px``, ``test_log_px`` and
        ``min_variance``, and optionally ``"noise_variance"``, ``"variance_floor"`` and
        ``"ais"``. Training sets and variants are drawn in the order they first appear.
    """
    if not isinstance(runs, Mapping):
        raise TypeError(
            f"runs must be a dict (version, label) → run (pvae.experiments.run_demo), got "
            f"{type(runs).__name__}"
        )
    if not runs:
        raise ValueError("runs is empty: nothing to plot")
    for key, run in runs.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"runs must be keyed by (version, variant label), got key {key!r}")
        if not isinstance(run, Mapping) or "history" not in run:
            raise ValueError(f"runs[{key!r}] must be a dict with a 'history', got {run!r}")
        check_rows(
            run["history"],
            f"runs[{key!r}]['history']",
            ("epoch", "train_log_px", "test_log_px", "min_variance"),
            "pvae.experiments.run_demo",
        )
    versions = list(dict.fromkeys(version for version, _ in runs))
    annealed = False
    figure = Figure(figsize=(14, 4.2 * len(versions)), layout="constrained")
    axes = figure.subplots(len(versions), 3, squeeze=False)
    # One colour per variant in every row, so the one legend reads for all of them.
    colours = {label: f"C{i}" for i, label in enumerate(dict.fromkeys(lab for _, lab in runs))}
    for row, version in enumerate(versions):
        levels = {}
        lowest = math.inf
        for label in dict.fromkeys(label for mine, label in runs if mine == version):
            run = runs[version, label]
            history = run["history"]
            epochs = [record["epoch"] for record in history]
            style = {"marker": ".", "label": label, "color": colours[label]}
            lowest = min(lowest, *(r["test_log_px"] for r in history))
            axes[row, 0].plot(epochs, [r["train_log_px"] for r in history], **style)
            axes[row, 1].plot(epochs, [r["test_log_px"] for r in history], **style)
            for column, split in enumerate(("train", "test")):
                final = run.get("ais", {}).get(split, {})
                if final.get("ran"):
                    annealed = True
                    axes[row, column].plot(
                        epochs[-1], final["log_px"], "o", mfc="none", ms=9, color=colours[label]
                    )
            variances = [r["min_variance"] for r in history]
            if all(math.isfinite(v) for v in variances):
                axes[row, 2].semilogy(epochs, variances, **style)
                if run.get("noise_variance"):
                    levels["the data's noise"] = run["noise_variance"]
                if run.get("variance_floor"):
                    levels["floor ξ"] = run["variance_floor"]
        for (text, level), style in zip(levels.items(), ("--", ":"), strict=False):
            axes[row, 2].axhline(level, color="gray", ls=style, lw=1)
            axes[row, 2].annotate(
                text, (0, level), xycoords=("axes fraction", "data"), xytext=(3, 3),
                textcoords="offset points", color="gray", fontsize=8,
            )  # fmt: skip
        axes[row, 0].set(title=f"{version}: tracked training points", ylabel="log p̂(x) (nats)")
        axes[row, 1].set(title=f"{version}: held-out points", ylabel="log p̂(x) (nats)")
        if lowest < -100:
            axes[row, 1].set_yscale("symlog", linthresh=100)
        axes[row, 2].set(title="smallest σ²(x) of them (geometric mean)", ylabel="σ²")
        for axis in axes[row]:
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
    handles = [Line2D([], [], color=c, marker=".", label=label) for label, c in colours.items()]
    if annealed:
        handles.append(
            Line2D(
                [], [], ls="", marker="o", mfc="none", ms=9, color="gray", label="AIS at the end"
            )
        )
    labels = [handle.get_label() for handle in handles]
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    figure.suptitle(
        "Is the Gaussian VAE well-posed? Importance-sampled log p(x) during training"
        + (" (open circles: AIS on the final model)" if annealed else "")
    )
    return figure


def plot_construction(rows: list[dict]) -> Figure:
    """log p̂(X) against the sharpness k of the Mattei–Frellsen sequence, without and with the
    variance floor ξ, and the floored sequence's bound.

    :param rows: the rows of :func:`pvae.experiments.demo.construction_table`: keys ``k``,
        ``free_log_px``, ``floored_log_px`` and ``bound``.
    """
    rows = check_rows(
        rows,
        "rows",
        ("k", "free_log_px", "floored_log_px", "bound"),
        "pvae.experiments.demo.construction_table",
    )
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
