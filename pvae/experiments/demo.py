"""``pvae demo``: is the Gaussian VAE well-posed? Five likelihoods, one encoder, one table."""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm import tqdm

from pvae import tables
from pvae.data.catalog import load_dataset
from pvae.data.split import Split
from pvae.estimation.estimators import log_marginal
from pvae.plots.demo import plot_construction, plot_demo
from pvae.registry import build_guide, build_model
from pvae.training.fit import fit
from pvae.training.optim import JointOptim
from pvae.training.watchdog import IllPosedWarning
from pvae.validation import check_positive_int

__all__ = [
    "VARIANTS",
    "DemoSettings",
    "construction_table",
    "format_construction",
    "format_table",
    "run_demo",
    "write_outputs",
]

logger = logging.getLogger(__name__)


#: (label, registry model name, data version, model options)
VARIANTS = (
    ("fixed σ²=1", "normal-fixed", "continuous", {}),
    ("shared γ", "normal-shared", "continuous", {}),
    ("per-pixel σ²(z)", "normal-network", "continuous", {}),
    ("per-pixel, floor ξ", "normal-floor", "continuous", {}),
    ("Bernoulli", "bernoulli", "binarized", {}),
)


@dataclass
class DemoSettings:
    """What every variant shares: the encoder, the SVI settings and the evaluation.

    :ivar epochs: training epochs per variant.
    :ivar latent_dim: latent width.
    :ivar hidden: hidden widths of the encoder and decoder MLPs.
    :ivar batch_size: minibatch size.
    :ivar lr: Adam's initial learning rate.
    :ivar final_lr: the learning rate at the end, as a fraction of ``lr``; it decays
        geometrically every step (:class:`~pvae.training.JointOptim`), the same over the run
        whatever the data size (0.16: on digits, a factor 0.998 a step). Adam's step noise keeps a
        decoder mean from matching a point exactly, which (the optimal variance being the
        squared error of that match) also keeps a learned variance from collapsing; a decaying
        learning rate, the usual practice, lets training show the collapse.
    :ivar variance_floor: ξ of the floored variant.
    :ivar num_points: training and held-out points whose log p̂ is tracked every epoch.
    :ivar num_samples: K importance samples per point and epoch.
    :ivar seed: seed of every run (same initial encoder weights for every variant).
    :ivar data: ``"digits"`` (sklearn's bundled 8×8 digits) or the path of a ``.npy``/``.npz``
        file of integer grey levels (:func:`pvae.data.load_array`).
    :ivar num_levels: grey levels of such a file (default 256).
    """

    epochs: int = 40
    latent_dim: int = 16
    hidden: tuple[int, ...] = (256,)
    batch_size: int = 64
    lr: float = 3e-3
    final_lr: float = 0.16
    variance_floor: float = 1e-3
    num_points: int = 100
    num_samples: int = 100
    seed: int = 0
    data: str = "digits"
    num_levels: int = 256


def _datasets(settings: DemoSettings) -> dict[str, dict[str, Split]]:
    name = settings.data
    if isinstance(name, str) and name != "digits":
        # The demo takes the digits or a file: any other string is a file's path.
        name = Path(name)

    def load(**options):
        return load_dataset(name, num_levels=settings.num_levels, seed=settings.seed, **options)

    binarized = load(binarize=True)
    return {
        "raw": {"continuous": load(), "binarized": binarized},
        "dequantized": {"continuous": load(dequantize=True), "binarized": binarized},
    }


def _train_variant(name, options, data: Split, settings: DemoSettings, bar) -> dict:
    pyro.clear_param_store()
    torch.manual_seed(settings.seed)
    model = build_model(name, data.data_dim, settings.latent_dim, settings.hidden, **options)
    guide = build_guide("diag-normal", model, settings.hidden)
    steps = settings.epochs * math.ceil(len(data.train) / settings.batch_size)
    lr_decay = settings.final_lr ** (1 / steps)
    train_points = data.train[: settings.num_points]
    test_points = data.test[: settings.num_points]

    def track(record):
        for split, points in (("train", train_points), ("test", test_points)):
            result = log_marginal(
                model, guide, points, num_samples=settings.num_samples, progress=False
            )
            summary = result.summary()
            record[f"{split}_log_px"] = summary["log_marginal"]
            record[f"{split}_stderr"] = summary["stderr"]
            record[f"{split}_khat_share"] = summary["khat_above_0.7"]
        bar.update()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IllPosedWarning)
        history = fit(
            model,
            guide,
            data.train,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            optimizer=JointOptim(torch.optim.Adam, {"lr": settings.lr}, lr_decay=lr_decay),
            seed=settings.seed,
            callback=track,
            progress=False,
        )
    alarms = [str(w.message) for w in caught if issubclass(w.category, IllPosedWarning)]
    return {
        "history": list(history),
        "bound": model.log_density_bound(),
        "watchdog": alarms,
    }


def run_demo(out_dir, *, settings: DemoSettings | None = None, progress: bool = True) -> list[dict]:
    """Train the five :data:`VARIANTS` with one encoder and the same SVI settings, on raw and
    on dequantized digits (the Bernoulli variant on binarized digits), tracking every epoch the
    importance-sampled log p(x) of fixed training and held-out points and the smallest decoder
    variance, and evaluates the Mattei–Frellsen construction (:func:`construction_table`).
    Writes ``demo.png``, ``construction.png``, ``demo.csv``, ``demo.json``, ``history.json``
    and ``construction.json`` to ``out_dir``; returns the table rows.

    On raw digits, pixels that are 0 in every image let a learned per-pixel variance collapse
    on the data alone; dequantization removes that, so a collapse there must come from the
    model fitting training points.
    """
    settings = settings or DemoSettings()
    check_positive_int(settings.epochs, "epochs")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datasets = _datasets(settings)
    runs: dict[tuple[str, str], dict] = {}
    # The binarized data do not depend on dequantization: Bernoulli is trained once.
    jobs = [
        (version, variant)
        for version in datasets
        for variant in VARIANTS
        if version == "raw" or variant[2] != "binarized"
    ]
    start = time.perf_counter()
    with tqdm(
        total=len(jobs) * settings.epochs, disable=not progress, desc="demo", unit="epoch"
    ) as bar:
        for version, (label, name, kind, options) in jobs:
            bar.set_postfix_str(f"{version}: {label}")
            if name == "normal-floor":
                options = {**options, "variance_floor": settings.variance_floor}
            runs[version, label] = _train_variant(
                name, options, datasets[version][kind], settings, bar
            )
    for label, _, kind, _ in VARIANTS:
        if kind == "binarized":
            for version in datasets:
                runs.setdefault((version, label), runs["raw", label])
    logger.info("demo trained %d runs in %.0f s", len(jobs), time.perf_counter() - start)
    rows = [_row(version, label, run) for (version, label), run in runs.items()]
    rows.sort(
        key=lambda row: (row["data"] != "raw", [v[0] for v in VARIANTS].index(row["variant"]))
    )
    construction = construction_table(
        datasets["dequantized"]["continuous"].train[: settings.num_points],
        variance_floor=settings.variance_floor,
    )
    write_outputs(out, rows, runs, settings, construction)
    return rows


def construction_table(
    points: torch.Tensor, *, variance_floor: float, sharpness=(0, 100, 200, 400, 800, 1600)
) -> list[dict]:
    """log p̂(X) of the data set ``points`` (importance-sampled per point with the prior as
    proposal, summed) under the Mattei–Frellsen sequence
    (:class:`~pvae.models.mattei_frellsen.MatteiFrellsen`, collapsing on the first point) for each
    sharpness k, with and without the floor ξ, the exact values, and the bound
    −(nd/2) log 2πξ of the floored sequence.
    """
    from pvae.models.mattei_frellsen import MatteiFrellsen

    rows = []
    for k in sharpness:
        row = {"k": k}
        for key, floor in (("free", 0.0), ("floored", variance_floor)):
            model = MatteiFrellsen(points, sharpness=float(k), variance_floor=floor)
            result = log_marginal(
                model, None, points, num_samples=2000, proposal="prior", progress=False
            )
            row[f"{key}_log_px"] = result.estimate.sum().item()
            row[f"{key}_exact"] = model.log_prob(points).sum().item()
        per_point = MatteiFrellsen(points, variance_floor=variance_floor).log_density_bound()
        row["bound"] = len(points) * per_point
        rows.append(row)
    return rows


_CONSTRUCTION_COLUMNS = [
    tables.Column("k", 5, key="k"),
    tables.Column("log p̂, no floor", 18, key="free_log_px", spec=".2f"),
    tables.Column("exact", 10, key="free_exact", spec=".2f"),
    tables.Column("log p̂, floor ξ", 17, key="floored_log_px", spec=".2f"),
    tables.Column("exact", 10, key="floored_exact", spec=".2f"),
    tables.Column("bound", 8, key="bound", spec=".1f"),
]


def format_construction(rows: list[dict]) -> str:
    """The construction's table as text."""
    return (
        "Mattei–Frellsen construction: log p̂(X) of the tracked training points, nats "
        "(theory: slope d/2 per unit of k = −log σ²; with the floor, at most the bound):\n"
        + tables.format_table(rows, _CONSTRUCTION_COLUMNS, rule=False)
    )


def _trend(values, last: int = 5) -> float:
    """Least-squares slope of the last ``last`` values, per step."""
    tail = np.asarray(values[-last:], dtype=float)
    if len(tail) < 2:
        return math.nan
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])


def _row(version: str, label: str, run: dict) -> dict:
    history = run["history"]
    final = history[-1]
    bound = run["bound"]
    min_variance = final["min_variance"]
    trend = _trend([record["train_log_px"] for record in history])
    within = final["train_log_px"] <= bound and final["test_log_px"] <= bound
    if label.startswith("per-pixel σ²"):
        # log10 σ² over the last 10 epochs: falling by over a tenth of a decade, or flat
        falling = _trend([math.log10(r["min_variance"]) for r in history], last=10) < -0.01
        verdict = f"ill-posed: σ² {'falling' if falling else 'flat'}, unbounded in principle"
    elif math.isfinite(bound):
        verdict = "bounded, respected" if within else "BOUND EXCEEDED"
    else:
        verdict = "unbounded once it reproduces every point"
    return {
        "data": version,
        "variant": label,
        "train_log_px": final["train_log_px"],
        "train_stderr": final["train_stderr"],
        "test_log_px": final["test_log_px"],
        "test_stderr": final["test_stderr"],
        "trend_per_epoch": trend,
        "min_variance": min_variance,
        "khat_share": final["train_khat_share"],
        "bound": bound,
        "watchdog": bool(run["watchdog"]),
        "verdict": verdict,
    }


def _train_cell(row: dict) -> str:
    # 9 characters of log p̂, "±", then the standard error left-aligned in 3: the header's 13,
    # with the ± signs one under the other.
    return f"{row['train_log_px']:>9.1f}±{row['train_stderr']:<3.1f}"


def _finite_or(key: str, spec: str, otherwise: str):
    """A cell function: ``row[key]`` formatted with ``spec``, or ``otherwise`` if it is NaN or
    infinite (a likelihood without a variance, or without a bound)."""

    def cell(row: dict) -> str:
        value = row[key]
        return format(value, spec) if math.isfinite(value) else otherwise

    return cell


_COLUMNS = [
    tables.Column("data", 12, "<", key="data"),
    tables.Column("variant", 20, "<", key="variant"),
    tables.Column("train log p̂", 13, cell=_train_cell),
    tables.Column("held-out", 10, key="test_log_px", spec=".1f"),
    tables.Column("trend/ep", 9, key="trend_per_epoch", spec="+.2f"),
    tables.Column("min σ²", 10, cell=_finite_or("min_variance", ".1e", "—")),
    tables.Column("k̂>0.7", 7, key="khat_share", spec=".0%"),
    tables.Column("bound", 8, cell=_finite_or("bound", ".0f", "none")),
    tables.Column("verdict", key="verdict", separator="  "),
    tables.Column("", cell=lambda row: "  [watchdog]" if row["watchdog"] else ""),
]


def format_table(rows: list[dict]) -> str:
    """The demo's table as text."""
    # The rule runs 24 characters past the header, under the verdicts.
    return tables.format_table(rows, _COLUMNS, rule_extra=24)


def write_outputs(out: Path, rows, runs, settings: DemoSettings, construction) -> None:
    tables.write_table(out / "demo.csv", rows)
    (out / "demo.json").write_text(
        json.dumps({"settings": vars(settings), "rows": rows}, indent=2, default=list) + "\n"
    )
    histories = {f"{version}/{label}": run for (version, label), run in runs.items()}
    (out / "history.json").write_text(json.dumps(histories, indent=1) + "\n")
    (out / "construction.json").write_text(json.dumps(construction, indent=2) + "\n")
    plot_demo(runs).savefig(out / "demo.png", dpi=110)
    plot_construction(construction).savefig(out / "construction.png", dpi=110)
