"""Mattei & Frellsen's missing-data experiment: Metropolis-within-Gibbs against pseudo-Gibbs,
importance resampling and the mean, on grey-level and binarized images."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pvae import tables
from pvae.files import locking_folder, save_figure, write_text
from pvae.imputation.masks import MASK_PATTERNS
from pvae.validation import (
    check_bool,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_sizes,
)

__all__ = [
    "METHOD_LABELS",
    "MissingDataSettings",
    "compare",
    "format_comparisons",
    "format_table",
    "run_missing_data",
]

#: The imputations compared, and how the table names them.
METHOD_LABELS = {
    "mean": "mean of the training data",
    "pseudo-gibbs": "pseudo-Gibbs",
    "mwg": "Metropolis-within-Gibbs",
    "importance": "importance resampling",
}

#: The figure's column titles.
SHORT_LABELS = {
    "mean": "training mean",
    "pseudo-gibbs": "pseudo-Gibbs",
    "mwg": "MWG",
    "importance": "importance resampling",
}

#: The likelihoods the experiment trains: grey levels under one learned variance γ, and the
#: binarized images under a Bernoulli.
LIKELIHOODS = ("normal-shared", "bernoulli")


@dataclass(frozen=True)
class MissingDataSettings:
    """What :func:`run_missing_data` trains, masks and imputes.

    :ivar str data: the data set (:func:`pvae.data.load_dataset`); images flattened.
    :ivar data_root: the IDX files' folder, for ``"fashion-mnist"`` and ``"mnist"``.
    :ivar int max_train: at most this many training points (a seeded subset; ``None``: all).
    :ivar int num_points: held-out points imputed (``None``: all).
    :ivar likelihoods: among :data:`LIKELIHOODS`.
    :ivar patterns: among :data:`pvae.imputation.MASK_PATTERNS`; ``fraction`` of each point's
        entries is missing for ``"random"``.
    :ivar methods: among :data:`METHOD_LABELS`.
    :ivar int num_steps: steps of every chain (MWG, pseudo-Gibbs); 1000 by default, five times
        :func:`pvae.impute`'s: on the digits' grey levels MWG accepts about 13% of its
        proposals, and its chains reached R̂ ≤ 1.01 on 0.3% of the points after 200 steps, 35%
        after 1000 and 60% after 2000 (measured; their RMSE moved by less than its se).
    :ivar int num_samples: imputations per point (chains, or resamples).
    :ivar int num_particles: importance resampling's proposals per point.
    :ivar int seed: the seed of the split, the training, the masks and the imputations.
    """

    data: str = "digits"
    data_root: str | None = None
    num_levels: int | None = None
    max_train: int | None = None
    num_points: int | None = None
    latent_dim: int = 8
    hidden_sizes: tuple[int, ...] = (256, 256)
    epochs: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    likelihoods: tuple[str, ...] = LIKELIHOODS
    patterns: tuple[str, ...] = MASK_PATTERNS
    fraction: float = 0.5
    methods: tuple[str, ...] = tuple(METHOD_LABELS)
    num_steps: int = 1000
    num_samples: int = 20
    num_particles: int = 1000
    seed: int = 0

    def check(self) -> MissingDataSettings:
        """The settings, each checked (naming the setting)."""
        for name in ("latent_dim", "epochs", "batch_size", "num_steps", "num_samples"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.num_particles, "num_particles")
        for name in ("max_train", "num_points"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        check_positive_float(self.lr, "lr")
        check_sizes(self.hidden_sizes, "hidden_sizes")
        check_seed(self.seed)
        for name, allowed in (
            ("likelihoods", LIKELIHOODS),
            ("patterns", MASK_PATTERNS),
            ("methods", tuple(METHOD_LABELS)),
        ):
            chosen = getattr(self, name)
            if not isinstance(chosen, tuple) or not chosen or not set(chosen) <= set(allowed):
                raise ValueError(
                    f"{name} must be a non-empty tuple of names among {allowed}, got {chosen!r}"
                )
        if isinstance(self.fraction, bool) or not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction!r}")
        return self


def _train(name: str, train: torch.Tensor, settings: MissingDataSettings, progress: bool):
    from pvae.registry import build_guide, build_model
    from pvae.training.fit import fit

    torch.manual_seed(settings.seed)
    model = build_model(name, train.shape[1], settings.latent_dim, settings.hidden_sizes)
    guide = build_guide("diag-normal", model, settings.hidden_sizes)
    model, guide = model.to(train.dtype), guide.to(train.dtype)
    fit(
        model,
        guide,
        train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
        monitor_size=0,
        watchdog=False,
        progress=progress,
    )
    return model, guide


def _trust(result) -> str:
    """The evidence beside an imputation's error: acceptance, the chains' R̂, the weights' k̂."""
    if result is None:
        return "none: no sampling"
    statuses = result.status
    if result.method == "importance":
        return f"k̂ ≤ 0.7 on {statuses.count('reliable') / len(statuses):.0%}"
    converged = f"R̂ ≤ 1.01 on {statuses.count('converged') / len(statuses):.0%}"
    if result.acceptance is None:
        return converged
    return f"accept {float(result.acceptance.mean()):.2f}; {converged}"


def _impute_all(model, guide, test, masks, fill, binary, settings, progress):
    """Every method on every mask: the table's rows, and the imputed images for the figure."""
    from pvae.imputation.impute import impute
    from pvae.imputation.metrics import imputation_error, imputation_f1

    rows, images = [], {}
    for pattern, mask in masks.items():
        for method in settings.methods:
            start = time.perf_counter()
            if method == "mean":
                result = None
                single = torch.where(mask, test, fill)
            else:
                result = impute(
                    model,
                    guide,
                    test,
                    mask,
                    method=method,
                    num_steps=settings.num_steps,
                    num_samples=settings.num_samples,
                    num_particles=settings.num_particles,
                    seed=settings.seed,
                    progress=progress,
                )
                single = result.mode if binary else result.mean
            seconds = time.perf_counter() - start
            score, stderr = (imputation_f1 if binary else imputation_error)(single, test, mask)
            rows.append(
                {
                    "pattern": pattern,
                    "method": method,
                    "measure": "F1" if binary else "RMSE",
                    "value": score,
                    "stderr": stderr,
                    "trust": _trust(result),
                    "seconds": seconds,
                }
            )
            images[(pattern, method)] = single
    return rows, images


def compare(images: dict, truth: torch.Tensor, masks: dict, binary: bool) -> list[dict]:
    """MWG against every other method on the same points, mask by mask: the paired
    difference of their errors (:func:`pvae.imputation.imputation_difference`) and a verdict
    read from it: "MWG better" or "MWG worse" where the difference is beyond 2 paired se,
    else "inconclusive"."""
    from pvae.imputation.metrics import imputation_difference

    measure = "f1" if binary else "rmse"
    rows = []
    for pattern, mask in masks.items():
        if (pattern, "mwg") not in images:
            continue
        for (other_pattern, method), single in images.items():
            if other_pattern != pattern or method == "mwg":
                continue
            difference, stderr = imputation_difference(
                images[(pattern, "mwg")], single, truth, mask, measure
            )
            gain = difference if binary else -difference  # > 0: MWG's imputations are closer
            if gain > 2 * stderr:
                verdict = "MWG better"
            elif gain < -2 * stderr:
                verdict = "MWG worse"
            else:
                verdict = "inconclusive: within 2 paired se"
            rows.append(
                {
                    "pattern": pattern,
                    "versus": method,
                    "measure": measure.upper(),
                    "difference": difference,
                    "stderr": stderr,
                    "verdict": verdict,
                }
            )
    return rows


@locking_folder
def run_missing_data(
    out_dir, *, settings: MissingDataSettings = MissingDataSettings(), progress: bool = True
) -> list[dict]:
    """``pvae experiment missing-data``: Mattei & Frellsen's imputation experiment [1].

    For each likelihood of ``settings`` (grey levels under one learned variance, and the
    images binarized under a Bernoulli), a VAE is trained on the training split; then each
    held-out point loses the entries of each mask pattern (half of them at random, the top
    half, the bottom half) and every method fills them in: the training data's mean per entry
    (its majority value, binarized), pseudo-Gibbs, Metropolis-within-Gibbs and importance
    resampling (:func:`pvae.impute`, their single imputation the conditional mean, or each
    entry's mode on binary data). The error is each point's RMSE over its missing entries
    (mean ± se across points) or, binarized, the F1 of the ones among the missing entries
    (± the jackknife se over points).

    MWG is then compared with each other method on the same points (:func:`compare`: paired
    differences, a verdict only beyond 2 paired se).

    Writes ``missing_data.csv`` (the rows), ``missing_data_comparisons.csv``,
    ``missing_data.json`` (the settings, the data's sizes, the rows and the comparisons) and
    ``missing_data.png`` (imputed images,
    :func:`pvae.plots.plot_imputations`) to ``out_dir``.

    :returns: one dict per (likelihood, pattern, method): ``likelihood``, ``pattern``,
        ``method``, ``measure`` (``"RMSE"`` or ``"F1"``), ``value``, ``stderr``, ``trust``,
        ``seconds``.

    [1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS, Sec. 4.
    """
    from pvae.data.catalog import check_data_choice, load_dataset
    from pvae.data.split import subset
    from pvae.imputation.masks import make_mask
    from pvae.plots.imputation import plot_imputations

    if not isinstance(settings, MissingDataSettings):
        raise TypeError(f"settings must be a MissingDataSettings, got {type(settings).__name__}")
    settings.check()
    check_bool(progress, "progress")
    check_data_choice(settings.data, settings.data_root, settings.num_levels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, comparisons, panels, sizes = [], [], {}, {}
    for name in settings.likelihoods:
        binary = name == "bernoulli"
        split = load_dataset(
            settings.data,
            binarize=binary,
            seed=settings.seed,
            root=settings.data_root,
            num_levels=settings.num_levels or 256,
        )
        image_shape = tuple(split.train.shape[-2:]) if split.train.dim() > 2 else None
        if settings.max_train is not None:
            split = subset(split, settings.max_train, settings.seed)
        train, test = split.train.flatten(1), split.test.flatten(1)
        if image_shape is None:
            side = round(train.shape[1] ** 0.5)
            image_shape = (side, side) if side * side == train.shape[1] else (1, train.shape[1])
        test = test[: settings.num_points]
        sizes = {"num_train": train.shape[0], "num_test": test.shape[0], "image_shape": image_shape}
        masks = {
            pattern: make_mask(
                test.shape,
                pattern,
                fraction=settings.fraction,
                image_shape=image_shape,
                seed=settings.seed,
            )
            for pattern in settings.patterns
        }
        start = time.perf_counter()
        model, guide = _train(name, train, settings, progress)
        trained = time.perf_counter() - start
        fill = train.mean(0)
        if binary:
            fill = (fill >= 0.5).to(train.dtype)
        found, images = _impute_all(model, guide, test, masks, fill, binary, settings, progress)
        for row in found:
            rows.append({"likelihood": name, **row, "train_seconds": trained})
        for row in compare(images, test, masks, binary):
            comparisons.append({"likelihood": name, **row})
        panels[name] = {"truth": test, "masks": masks, "images": images}
    tables.write_table(out / "missing_data.csv", rows)
    if comparisons:
        tables.write_table(out / "missing_data_comparisons.csv", comparisons)
    details = {
        "settings": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(settings).items()
        },
        **{k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
        "rows": rows,
        "comparisons": comparisons,
    }
    write_text(out / "missing_data.json", json.dumps(details, indent=1) + "\n")
    figure = plot_imputations(panels, image_shape=sizes["image_shape"], labels=SHORT_LABELS)
    figure.suptitle(
        f"{settings.data}, held-out points: single imputations (the conditional mean; "
        "binarized, each pixel's mode)",
        fontsize=8,
    )
    save_figure(figure, out / "missing_data.png", dpi=110)
    return rows


_COLUMNS = [
    tables.Column("likelihood", 13, "<", key="likelihood"),
    tables.Column("missing", 7, "<", key="pattern", separator=" "),
    tables.Column("method", 25, "<", cell=lambda row: METHOD_LABELS[row["method"]], separator=" "),
    tables.Column("error", 5, "<", key="measure", separator=" "),
    tables.Column("value", 7, key="value", spec=".4f", separator=" "),
    tables.Column("± se", 7, key="stderr", spec=".4f", separator=" "),
    tables.Column("time s", 7, key="seconds", spec=".1f", separator=" "),
    tables.Column("trust", None, "<", key="trust", separator="  "),
]


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`run_missing_data` as text."""
    return tables.format_table(rows, _COLUMNS)


_COMPARISON_COLUMNS = [
    tables.Column("likelihood", 13, "<", key="likelihood"),
    tables.Column("missing", 7, "<", key="pattern", separator=" "),
    tables.Column(
        "MWG versus", 25, "<", cell=lambda row: METHOD_LABELS[row["versus"]], separator=" "
    ),
    tables.Column("MWG − other", 12, key="difference", spec="+.4f", separator=" "),
    tables.Column("± paired se", 11, key="stderr", spec=".4f", separator=" "),
    tables.Column("verdict", None, "<", key="verdict", separator="  "),
]


def format_comparisons(rows: list[dict]) -> str:
    """The paired comparisons of :func:`run_missing_data` (its JSON's ``comparisons``)."""
    return tables.format_table(rows, _COMPARISON_COLUMNS)
