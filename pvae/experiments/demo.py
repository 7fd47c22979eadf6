"""``pvae demo``: is the Gaussian VAE well-posed? Five likelihoods, one encoder, verdicts
read from the numbers."""

from __future__ import annotations

import dataclasses
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
from tqdm.auto import tqdm

from pvae import tables
from pvae.data.catalog import NAMES, load_dataset
from pvae.diagnostics.decoder import decode_at_posterior_mean
from pvae.diagnostics.verdict import (
    MIN_TREND_POINTS,
    Rung,
    collapsed_points,
    ladder_rung,
    point_variance,
    read_verdict,
)
from pvae.estimation.ais import ais
from pvae.estimation.compare import paired_difference
from pvae.estimation.estimators import log_marginal
from pvae.files import locking_folder, save_figure, write_text
from pvae.plots.demo import plot_construction, plot_demo
from pvae.registry import build_guide, build_model
from pvae.training.fit import fit
from pvae.training.optim import JointOptim
from pvae.training.watchdog import IllPosedWarning
from pvae.validation import check_positive_float, check_positive_int

__all__ = [
    "LARGE_SET_VARIANTS",
    "MIN_KHAT_SAMPLES",
    "QUICK",
    "VARIANTS",
    "DemoSettings",
    "construction_table",
    "format_construction",
    "format_final",
    "format_table",
    "run_demo",
    "write_outputs",
]

logger = logging.getLogger(__name__)


#: (label, registry model name, data version): continuous (dequantized) or binarized images.
VARIANTS = (
    ("fixed σ²=1", "normal-fixed", "continuous"),
    ("shared γ", "normal-shared", "continuous"),
    ("shared γ*", "normal-optimal", "continuous"),
    ("per-pixel σ²(z)", "normal-network", "continuous"),
    ("per-pixel, floor ξ", "normal-floor", "continuous"),
    ("Bernoulli", "bernoulli", "binarized"),
)

#: The variants trained on the larger training set too: the two unbounded rungs (a shared γ
#: at its optimum γ*, which a learned γ approaches only at Adam's pace, and a per-pixel σ²(z)).
LARGE_SET_VARIANTS = ("shared γ*", "per-pixel σ²(z)")

#: Pareto k̂ needs a tail of the K weights to fit; with fewer samples it is not reported.
MIN_KHAT_SAMPLES = 30


@dataclass(frozen=True)
class DemoSettings:
    """What every variant shares: the data, the encoder, the SVI settings and the tracking.

    The five :data:`VARIANTS` are trained on a small training set (``num_train`` points, few
    enough for the decoder to reproduce), and :data:`LARGE_SET_VARIANTS` also on a larger one
    (``num_train_large``) for the same number of optimizer steps.

    :ivar num_train: points of the small training set (the first of the training split).
    :ivar num_train_large: points of the larger training set (at most the training split).
    :ivar epochs: epochs on the small set; the larger set gets as many steps.
    :ivar latent_dim: latent width.
    :ivar hidden: hidden widths of the encoder and decoder MLPs.
    :ivar batch_size: minibatch size.
    :ivar lr: Adam's initial learning rate.
    :ivar final_lr: the learning rate at the end, as a fraction of ``lr``; it decays
        geometrically every step (:class:`~pvae.training.JointOptim`). Adam's step noise
        keeps a decoder mean from matching a point exactly, which (the optimal variance being
        the squared error of that match) also keeps a learned variance from collapsing; a
        decaying learning rate, the usual practice, lets training show the collapse.
    :ivar variance_floor: ξ of the floored variant.
    :ivar num_points: training and held-out points whose log p̂ is tracked.
    :ivar num_samples: K importance samples per point and tracked epoch.
    :ivar num_tracks: tracked epochs per run, evenly spaced, the last one included.
    :ivar ais_steps: T of the AIS run (:func:`~pvae.estimation.ais`) on the final model's
        tracked training and held-out points, for each split where the calibrated trust
        status does not call every IS estimate reliable; 0 for none.
    :ivar ais_chains: C, the AIS chains per point.
    :ivar window: the last tracked epochs a trend is read from (default 10 of 40: the last
        quarter of training).
    :ivar seed: seed of every run (same initial encoder weights for every variant).
    :ivar data: ``"digits"`` (sklearn's bundled 8×8 digits), ``"fashion-mnist"`` or
        ``"mnist"`` (the IDX files under ``data_root``), or the path of a ``.npy``/``.npz``
        file of integer grey levels (:func:`pvae.data.load_array`).
    :ivar data_root: the folder of the IDX files.
    :ivar num_levels: grey levels of a file (default 256).
    :ivar variants: the labels of :data:`VARIANTS` to train on the small set (default: all).
    :ivar large_variants: those to train on the larger set too (default
        :data:`LARGE_SET_VARIANTS`; ``()`` for none).
    """

    num_train: int = 100
    num_train_large: int = 2000
    epochs: int = 1000
    latent_dim: int = 16
    hidden: tuple[int, ...] = (256,)
    batch_size: int = 50
    lr: float = 3e-3
    final_lr: float = 0.16
    variance_floor: float = 1e-3
    num_points: int = 100
    num_samples: int = 100
    num_tracks: int = 40
    window: int = 10
    ais_steps: int = 100
    ais_chains: int = 4
    seed: int = 0
    data: str = "digits"
    data_root: str | None = None
    num_levels: int = 256
    variants: tuple[str, ...] = tuple(label for label, _, _ in VARIANTS)
    large_variants: tuple[str, ...] = LARGE_SET_VARIANTS

    def check(self) -> None:
        """Refuse settings the demo cannot run, naming the field and its value."""
        for name in (
            "num_train", "num_train_large", "epochs", "latent_dim", "batch_size",
            "num_points", "num_samples", "num_tracks", "window", "ais_chains",
        ):  # fmt: skip
            check_positive_int(getattr(self, name), name)
        steps = self.ais_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"ais_steps must be 0 (no AIS) or a positive integer, got {steps!r}")
        for name in ("lr", "final_lr", "variance_floor"):
            check_positive_float(getattr(self, name), name)
        labels = [label for label, _, _ in VARIANTS]
        for name in ("variants", "large_variants"):
            chosen = getattr(self, name)
            if not isinstance(chosen, tuple) or any(label not in labels for label in chosen):
                raise ValueError(f"{name} must be a tuple of labels among {labels}, got {chosen!r}")
        if not self.variants:
            raise ValueError("variants must name at least one variant, got ()")
        if self.num_points > self.num_train:
            raise ValueError(
                f"num_points ({self.num_points}) must be at most num_train ({self.num_train}): "
                "the tracked training points are training points"
            )
        if self.num_train_large <= self.num_train:
            raise ValueError(
                f"num_train_large must exceed num_train ({self.num_train}), got "
                f"{self.num_train_large}"
            )
        if not MIN_TREND_POINTS <= self.window <= self.num_tracks:
            raise ValueError(
                f"window must be in [{MIN_TREND_POINTS}, num_tracks={self.num_tracks}], got "
                f"{self.window}"
            )


#: ``pvae demo --quick``: a seconds-long smoke run of every output; its 20 epochs are far too
#: few for the runaway, so its verdicts say nothing about it.
QUICK = DemoSettings(
    num_train=40,
    num_train_large=120,
    epochs=20,
    num_points=20,
    num_samples=20,
    num_tracks=10,
    window=5,
    ais_steps=10,
    ais_chains=2,
)


def _datasets(settings: DemoSettings) -> dict:
    name = settings.data
    if isinstance(name, str) and name not in NAMES:
        name = Path(name)  # the demo takes a named set or a file: any other string is a path

    def load(**options):
        return load_dataset(
            name,
            num_levels=settings.num_levels,
            seed=settings.seed,
            root=settings.data_root,
            **options,
        )

    continuous, binarized = load(dequantize=True), load(binarize=True)
    if len(continuous.train) <= settings.num_train:
        raise ValueError(
            f"num_train ({settings.num_train}) must be smaller than the training split of "
            f"{settings.data!r} ({len(continuous.train)} points)"
        )
    if len(continuous.test) < settings.num_points:
        raise ValueError(
            f"num_points ({settings.num_points}) exceeds the held-out split of "
            f"{settings.data!r} ({len(continuous.test)} points)"
        )
    return {"continuous": continuous, "binarized": binarized}


def _tracked_epochs(epochs: int, num_tracks: int) -> list[int]:
    return sorted({max(1, round(e)) for e in np.linspace(epochs / num_tracks, epochs, num_tracks)})


def _train_variant(
    name, train, test, settings: DemoSettings, epochs: int, noise_variance, bar
) -> dict:
    pyro.clear_param_store()
    torch.manual_seed(settings.seed)
    options = {"variance_floor": settings.variance_floor} if name == "normal-floor" else {}
    model = build_model(name, train.shape[1], settings.latent_dim, settings.hidden, **options)
    guide = build_guide("diag-normal", model, settings.hidden)
    steps = epochs * math.ceil(len(train) / settings.batch_size)
    lr_decay = settings.final_lr ** (1 / steps)
    tracked = _tracked_epochs(epochs, settings.num_tracks)
    points = {"train": train[: settings.num_points], "test": test[: settings.num_points]}
    kept: dict = {}
    sampled: dict = {}  # the last tracked epoch's IS results, per split

    def track(record):
        bar.update()
        if record["epoch"] not in tracked:
            return
        entry = {"epoch": record["epoch"]}
        for split, x in points.items():
            result = log_marginal(model, guide, x, num_samples=settings.num_samples, progress=False)
            summary = result.summary()
            entry[f"{split}_log_px"] = summary["log_marginal"]
            entry[f"{split}_stderr"] = summary["stderr"]
            entry[f"{split}_khat_share"] = (
                summary["khat_above_0.7"] if settings.num_samples >= MIN_KHAT_SAMPLES else math.nan
            )
            statuses = result.status  # pvae.estimation.trust: calibrated against exact answers
            entry[f"{split}_reliable"] = statuses.count("reliable") / len(statuses)
            sampled[split] = result
            decoded = decode_at_posterior_mean(model, guide, x)
            variance = decoded["variance"]
            kept[split] = decoded
            if bool(torch.isnan(variance).any()):  # a likelihood without a variance
                entry[f"{split}_min_variance"] = math.nan
                entry[f"{split}_memorised"] = None
                continue
            entry[f"{split}_min_variance"] = point_variance(variance).min().item()
            entry[f"{split}_memorised"] = (
                None
                if noise_variance is None
                else collapsed_points(variance, decoded["error"], noise_variance)
            )
        entry["min_variance"] = entry["train_min_variance"]
        history.append(entry)

    history: list[dict] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IllPosedWarning)
        fit(
            model,
            guide,
            train,
            epochs=epochs,
            batch_size=settings.batch_size,
            optimizer=JointOptim(torch.optim.Adam, {"lr": settings.lr}, lr_decay=lr_decay),
            seed=settings.seed,
            callback=track,
            progress=False,
        )
    alarms = [str(w.message) for w in caught if issubclass(w.category, IllPosedWarning)]
    annealed = _anneal_where_flagged(model, guide, points, sampled, settings, bar)
    variance = kept["train"]["variance"]
    rung = ladder_rung(model, None if bool(torch.isnan(variance).any()) else variance)
    decoder = getattr(model, "decoder", None)
    return {
        "history": history,
        "num_train": len(train),
        "epochs": epochs,
        "bound": rung.bound,
        "rung": dataclasses.asdict(rung),
        "variance_floor": float(getattr(decoder, "variance_floor", 0.0)),
        "noise_variance": noise_variance,
        "watchdog": alarms,
        "ais": annealed,
    }


def _anneal_where_flagged(model, guide, points: dict, sampled: dict, settings, bar) -> dict:
    """AIS on the final model at the points of every split whose IS estimates (``sampled``)
    the trust status does not all call reliable, in one run: per split, the AIS mean, its
    Monte Carlo standard error, AIS − IS on the same points (paired) and the time, or
    ``{"ran": False}``."""
    flagged = [
        split
        for split, result in sampled.items()
        if settings.ais_steps and any(status != "reliable" for status in result.status)
    ]
    found = {split: {"ran": False} for split in points}
    if not flagged:
        return found
    bar.set_postfix_str(f"AIS on {sum(len(points[split]) for split in flagged)} points")
    start = time.perf_counter()
    annealed = ais(
        model,
        guide,
        torch.cat([points[split] for split in flagged]),
        num_steps=settings.ais_steps,
        num_chains=settings.ais_chains,
        seed=settings.seed,
        progress=False,
    )
    seconds = time.perf_counter() - start
    offset = 0
    for split in flagged:
        rows = slice(offset, offset + len(points[split]))
        offset = rows.stop
        part = dataclasses.replace(
            annealed,
            estimate=annealed.estimate[rows],
            stderr=annealed.stderr[rows],
            acceptance=annealed.acceptance[rows],
            step_size=annealed.step_size[rows],
            log_weights=annealed.log_weights[rows],
        )
        summary, gap = part.summary(), paired_difference(part, sampled[split])
        found[split] = {
            "ran": True,
            "log_px": summary["log_marginal"],
            "stderr_mc": summary["stderr_mc"],
            "stderr_points": summary["stderr_points"],
            "minus_is": gap["difference"],
            "minus_is_stderr": gap["stderr_points"],
            "acceptance": summary["acceptance"],
            "seconds": seconds,  # of the one run over every flagged split
        }
    return found


@locking_folder
def run_demo(out_dir, *, settings: DemoSettings | None = None, progress: bool = True) -> list[dict]:
    """Train the five :data:`VARIANTS` with one encoder and the same SVI settings on a small
    set of dequantized training images (the Bernoulli variant on the same images binarized),
    and :data:`LARGE_SET_VARIANTS` on a larger set for as many steps, tracking at
    ``settings.num_tracks`` epochs the importance-sampled log p(x) of fixed training and
    held-out points, the decoder's variance at their posterior means and the training points
    it memorised; reads each run's verdict from those numbers
    (:func:`~pvae.diagnostics.verdict.read_verdict`) and evaluates the Mattei–Frellsen
    construction (:func:`construction_table`). Writes ``demo.png``, ``construction.png``,
    ``demo.csv``, ``demo.json``, ``history.json`` and ``construction.json`` to ``out_dir``;
    returns the table rows.

    The images are dequantized because on raw images, pixels that are 0 in every image let a
    learned per-pixel variance collapse on the data alone, whatever the model does with z;
    after dequantization a collapse must come from the model reproducing training points, and
    the noise added (:attr:`~pvae.data.Split.noise_variance`) is the level a variance must
    fall below to show it.
    """
    settings = settings or DemoSettings()
    if not isinstance(settings, DemoSettings):
        raise TypeError(f"settings must be a DemoSettings, got {type(settings).__name__}")
    settings.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    datasets = _datasets(settings)
    num_large = min(settings.num_train_large, len(datasets["continuous"].train))
    steps = settings.epochs * math.ceil(settings.num_train / settings.batch_size)
    large_epochs = max(1, round(steps / math.ceil(num_large / settings.batch_size)))
    jobs = [
        (settings.num_train, settings.epochs, variant)
        for variant in VARIANTS
        if variant[0] in settings.variants
    ] + [
        (num_large, large_epochs, variant)
        for variant in VARIANTS
        if variant[0] in settings.large_variants
    ]
    runs: dict[tuple[str, str], dict] = {}
    start = time.perf_counter()
    total = sum(epochs for _, epochs, _ in jobs)
    with tqdm(total=total, disable=not progress, desc="demo", unit="epoch") as bar:
        for size, epochs, (label, name, kind) in jobs:
            bar.set_postfix_str(f"n={size}: {label}")
            data = datasets[kind]
            runs[f"n={size}", label] = _train_variant(
                name, data.train[:size], data.test, settings, epochs, data.noise_variance, bar
            )
    logger.info("demo trained %d runs in %.0f s", len(jobs), time.perf_counter() - start)
    rows = [_row(size, label, run, settings) for (size, label), run in runs.items()]
    construction = construction_table(
        datasets["continuous"].train[: settings.num_points],
        variance_floor=settings.variance_floor,
    )
    write_outputs(out, rows, runs, settings, construction)
    return rows


def construction_table(
    points: torch.Tensor, *, variance_floor: float, sharpness=(0, 100, 200, 400, 800, 1600)
) -> list[dict]:
    """log p̂(X) of the data set ``points`` (importance-sampled per point with the prior as
    proposal, summed) under the Mattei–Frellsen sequence
    (:class:`~pvae.models.mattei_frellsen.MatteiFrellsen`, collapsing on the first point; a
    step function in z, the limit of the per-pixel ReLU decoders such as
    :func:`~pvae.models.one_point_network.one_point_network`) for each sharpness k, with and
    without the floor ξ, the exact values, and the bound −(nd/2) log 2πξ of the floored
    sequence.
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
        "The Mattei–Frellsen construction (a step function in z, the limit of per-pixel ReLU "
        "decoders): log p̂(X) of the tracked training points, nats, by importance sampling "
        "from the prior, and exact (theory: slope d/2 per unit of k = −log σ²; with the floor, "
        "at most the bound):\n" + tables.format_table(rows, _CONSTRUCTION_COLUMNS, rule=False)
    )


def _row(size: str, label: str, run: dict, settings: DemoSettings) -> dict:
    history = run["history"]
    final = history[-1]
    epochs = [record["epoch"] for record in history]

    def series(key):
        return [record[key] for record in history]

    variances = series("train_min_variance")
    memorised = final["train_memorised"]
    verdict = read_verdict(
        epochs,
        series("train_log_px"),
        train_stderr=series("train_stderr"),
        held_out=series("test_log_px"),
        held_out_stderr=series("test_stderr"),
        min_variance=variances if all(math.isfinite(v) for v in variances) else None,
        variance_floor=run["variance_floor"],
        noise_variance=run["noise_variance"],
        collapsed=memorised,
        num_tracked=settings.num_points,
        rung=Rung(**run["rung"]),
        window=settings.window,
        estimator=f"IS, K = {settings.num_samples}",
    )
    held_memorised = final["test_memorised"]
    width = verdict.train.last_epoch - verdict.train.first_epoch
    return {
        "data": size,
        "variant": label,
        "epochs": run["epochs"],
        "train_log_px": final["train_log_px"],
        "train_stderr": final["train_stderr"],
        "test_log_px": final["test_log_px"],
        "test_stderr": final["test_stderr"],
        "train_change": verdict.train.slope * width,
        "train_change_halfwidth": verdict.train.halfwidth * width,
        "min_variance": final["train_min_variance"],
        "memorised": math.nan if memorised is None else len(memorised),
        "memorised_held_out": math.nan if held_memorised is None else len(held_memorised),
        "khat_share": final["train_khat_share"],
        "reliable": final["train_reliable"],
        "reliable_held_out": final["test_reliable"],
        "bound": run["bound"],
        "rung": run["rung"]["name"],
        "watchdog": bool(run["watchdog"]),
        "status": verdict.status,
        "verdict": verdict.summary,
        "reasons": " | ".join(verdict.reasons),
    } | _ais_keys(run.get("ais", {}))


def _ais_keys(annealed: dict) -> dict:
    # The final AIS numbers per split as flat row keys (NaN where AIS did not run).
    keys = {}
    for split in ("train", "test"):
        found = annealed.get(split, {"ran": False})
        for name in ("log_px", "stderr_mc", "minus_is", "minus_is_stderr", "acceptance", "seconds"):
            keys[f"{split}_ais_{name}"] = found[name] if found["ran"] else math.nan
    return keys


def _train_cell(row: dict) -> str:
    # 9 characters of log p̂, "±", then the standard error left-aligned in 3: the header's 13,
    # with the ± signs one under the other.
    return f"{row['train_log_px']:>9.1f}±{row['train_stderr']:<3.1f}"


def _change_cell(row: dict) -> str:
    if not math.isfinite(row["train_change"]):
        return "n/a"
    return f"{row['train_change']:+.1f}±{row['train_change_halfwidth']:.1f}"


def _memorised_cell(row: dict) -> str:
    if not math.isfinite(row["memorised"]):
        return "—"
    return f"{row['memorised']:.0f} / {row['memorised_held_out']:.0f}"


def _finite_or(key: str, spec: str, otherwise: str):
    """A cell function: ``row[key]`` formatted with ``spec``, or ``otherwise`` if it is NaN or
    infinite (a likelihood without a variance, or without a bound)."""

    def cell(row: dict) -> str:
        value = row[key]
        return format(value, spec) if math.isfinite(value) else otherwise

    return cell


_COLUMNS = [
    tables.Column("train set", 9, "<", key="data"),
    tables.Column("variant", 19, "<", key="variant", separator="  "),
    tables.Column("train log p̂", 13, cell=_train_cell),
    tables.Column("held-out", 10, key="test_log_px", spec=".1f"),
    tables.Column("Δ train, last ¼", 16, cell=_change_cell),
    tables.Column("min σ²(x)", 10, cell=_finite_or("min_variance", ".1e", "—")),
    tables.Column("memorised", 10, cell=_memorised_cell),
    tables.Column("k̂>0.7", 11, cell=_finite_or("khat_share", ".0%", "n/a (K<30)")),
    tables.Column("reliable", 9, key="reliable", spec=".0%"),
    tables.Column("bound", 7, cell=_finite_or("bound", ".0f", "none")),
    tables.Column("verdict", key="verdict", separator="  "),
    tables.Column("", cell=lambda row: "  [watchdog]" if row["watchdog"] else ""),
]


def format_table(rows: list[dict]) -> str:
    """The demo's table as text."""
    # The rule runs under the verdicts too.
    return tables.format_table(rows, _COLUMNS, rule_extra=40)


def _plus_minus(key: str, error: str, spec: str, coarse_above: float = math.inf):
    """A cell "value±error" with ``spec`` (e.g. ``"+.2f"``), without decimals from
    ``coarse_above`` on."""

    def cell(row: dict) -> str:
        value = row[key]
        if not math.isfinite(value):
            return "—"
        fitted = spec if abs(value) < coarse_above else spec.rsplit(".", 1)[0] + ".0f"
        return f"{format(value, fitted)}±{format(row[error], fitted.lstrip('+'))}"

    return cell


def _ais_cell(line: dict) -> str:
    if math.isfinite(line["ais_log_px"]):
        return f"{line['ais_log_px']:.1f}±{line['ais_stderr_mc']:.1f}"
    return "not needed" if line["reliable"] == 1 else "not run"


def format_final(rows: list[dict], settings: DemoSettings) -> str:
    """The final models' log p̂ on the tracked training and held-out points, one line per
    split: importance sampling with the share of its estimates the calibrated trust status
    calls reliable, and AIS where that share is below 100% (its Monte Carlo standard error,
    AIS − IS on the same points with the paired standard error, acceptance, and the time of
    the one AIS run over both splits, on the first)."""
    lines = []
    for row in rows:
        for split, name, reliable in (
            ("train", "train", "reliable"),
            ("test", "held-out", "reliable_held_out"),
        ):
            lines.append(
                {
                    "data": row["data"],
                    "variant": row["variant"],
                    "points": name,
                    "is": row[f"{split}_log_px"],
                    "is_stderr": row[f"{split}_stderr"],
                    "reliable": row[reliable],
                }
                | {
                    key.replace(f"{split}_ais", "ais"): value
                    for key, value in row.items()
                    if key.startswith(f"{split}_ais_")
                }
            )
        if math.isfinite(lines[-2]["ais_seconds"]):  # one AIS run for both splits: time it once
            lines[-1]["ais_seconds"] = math.nan
    columns = [
        tables.Column("train set", 9, "<", key="data"),
        tables.Column("variant", 19, "<", key="variant", separator="  "),
        tables.Column("points", 8, "<", key="points", separator="  "),
        tables.Column(
            f"IS, K={settings.num_samples}", 14, cell=_plus_minus("is", "is_stderr", ".1f")
        ),
        tables.Column("reliable", 9, key="reliable", spec=".0%"),
        tables.Column(
            f"AIS, T={settings.ais_steps} C={settings.ais_chains}",
            17,
            cell=_ais_cell,
        ),
        tables.Column(
            "AIS − IS",
            18,
            cell=_plus_minus("ais_minus_is", "ais_minus_is_stderr", "+.2f", coarse_above=100),
        ),
        tables.Column("accept.", 8, cell=_finite_or("ais_acceptance", ".2f", "—")),
        tables.Column("AIS s", 6, cell=_finite_or("ais_seconds", ".0f", "")),
    ]
    return tables.format_table(lines, columns)


def write_outputs(out: Path, rows, runs, settings: DemoSettings, construction) -> None:
    tables.write_table(out / "demo.csv", rows)
    write_text(
        out / "demo.json",
        json.dumps({"settings": dataclasses.asdict(settings), "rows": rows}, indent=2) + "\n",
    )
    histories = {f"{size}/{label}": run for (size, label), run in runs.items()}
    write_text(out / "history.json", json.dumps(histories, indent=1) + "\n")
    write_text(out / "construction.json", json.dumps(construction, indent=2) + "\n")
    save_figure(plot_demo(runs), out / "demo.png", dpi=110)
    save_figure(plot_construction(construction), out / "construction.png", dpi=110)
