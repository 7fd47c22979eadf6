"""The trust status against the truth: the calibration's figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pvae.plots.inputs import check_rows

__all__ = ["plot_trust_calibration"]

_COLOURS = {"reliable": "tab:green", "doubtful": "tab:orange", "unreliable": "tab:red"}


def plot_trust_calibration(rows: list[dict], *, precision: float = 1e-3) -> Figure:
    """Every calibration point's error in its own standard errors against its k̂, coloured by
    its trust status, with the lines 2 se (coverage) and 3 se (a miss); one panel for the
    choice cases and one for the held-out ones. The error is counted as the calibration counts
    it, beyond the exact value's own error and ``precision``: (|log p̂ − log p| − slack) / se,
    drawn at 10⁻³ where it is 0.

    :param rows: the points of :func:`pvae.experiments.trust_calibration.run_calibration`
        (keys ``split``, ``error``, ``exact_error``, ``stderr``, ``khat``, ``status``).
    :param float precision: errors below this many nats count as none (default 1e-3, the
        calibration's ``PRECISION``).
    """
    rows = check_rows(
        rows,
        "rows",
        ("split", "error", "exact_error", "stderr", "khat", "status"),
        "pvae.experiments.trust_calibration.run_calibration",
    )
    splits = list(dict.fromkeys(row["split"] for row in rows))
    figure = Figure(figsize=(6 * len(splits), 4.5), layout="constrained")
    axes = figure.subplots(1, len(splits), squeeze=False)[0]
    for axis, split in zip(axes, splits, strict=True):
        mine = [row for row in rows if row["split"] == split]
        for status, colour in _COLOURS.items():
            points = [row for row in mine if row["status"] == status]
            if not points:
                continue
            khat = np.array([row["khat"] for row in points], dtype=float)
            khat = np.where(np.isfinite(khat), khat, 1.6)  # not computable: drawn at the edge
            excess = np.array(
                [max(abs(row["error"]) - row["exact_error"] - precision, 0.0) for row in points]
            )
            stderr = np.array([row["stderr"] for row in points], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(excess == 0, 0.0, excess / stderr)
            ratio = np.nan_to_num(ratio, nan=1e3, posinf=1e3)
            axis.scatter(
                np.clip(khat, -1.5, 1.6), np.clip(ratio, 1e-3, 1e3), s=6, alpha=0.5,
                color=colour, label=f"{status} ({len(points)})", linewidths=0,
            )  # fmt: skip
        for level, style in ((2, "--"), (3, ":")):
            axis.axhline(level, color="gray", ls=style, lw=1)
        axis.set_yscale("log")
        axis.set(
            xlabel="PSIS k̂ (at 1.6: not computable, K < 30 or equal weights)",
            ylabel="error beyond 0.001 nats, in reported se",
            title=f"{split} cases",
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small", loc="lower right")
    figure.suptitle("The trust status against exact log p(x): ±2 se should cover the reliable")
    return figure
