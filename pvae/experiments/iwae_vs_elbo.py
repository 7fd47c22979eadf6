"""Training by the IWAE bound against training by the ELBO: held-out log p̂ at the same budget."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pvae import tables
from pvae.data.catalog import check_data_choice, load_dataset
from pvae.data.split import Split, check_split, subset
from pvae.diagnostics.latent import diagnose
from pvae.estimation.ais import ais
from pvae.estimation.compare import paired_difference
from pvae.estimation.estimators import log_marginal
from pvae.files import locking_folder, save_figure, write_text
from pvae.plots.objectives import plot_iwae_vs_elbo
from pvae.registry import build_guide, build_model
from pvae.training.fit import fit
from pvae.validation import (
    check_bool,
    check_nonnegative_int,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_sizes,
)

__all__ = [
    "COMPARISONS",
    "DEFAULT",
    "MIN_RELIABLE",
    "VARIANTS",
    "IWAEvsELBOSettings",
    "Z",
    "comparison_verdict",
    "format_comparisons",
    "format_table",
    "run_iwae_vs_elbo",
]

logger = logging.getLogger(__name__)


#: variant → (``fit``'s ``elbo``, whether it draws K samples per point (else 1), description).
VARIANTS: dict[str, tuple[str, bool, str]] = {
    "elbo": ("meanfield", False, "the ELBO, one sample per point (fit's default)"),
    "elbo-k": ("meanfield", True, "the ELBO averaged over K samples per point: IWAE's draws"),
    "iwae": ("iwae", True, "the IWAE bound IWAE_K (Burda et al. 2016)"),
    "iwae-dreg": ("iwae-dreg", True, "IWAE_K, doubly-reparameterized guide gradients"),
}

#: (first, second): the paired differences of held-out log p̂ the experiment reports. The
#: ELBO with K samples draws as many samples per step as IWAE_K: the same-compute baseline.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("iwae", "elbo-k"),
    ("iwae-dreg", "elbo-k"),
    ("iwae-dreg", "iwae"),
    ("elbo-k", "elbo"),
)

#: A difference counts as measured where it exceeds this many paired standard errors.
Z = 2.0

#: Without an AIS run, both held-out estimates of a comparison must have at least this share of
#: points whose IS estimate the calibrated trust status calls reliable (pvae.estimation.trust);
#: below it the verdict is "inconclusive".
MIN_RELIABLE = 0.95


@dataclass(frozen=True)
class IWAEvsELBOSettings:
    """The budget of :func:`run_iwae_vs_elbo`: every variant in :data:`VARIANTS` trained
    with these settings, once per seed.

    :ivar num_particles: K, the samples per point of ``elbo-k``, ``iwae`` and ``iwae-dreg``.
    :ivar hidden_sizes: hidden widths of the encoder and of the decoder MLPs (ReLU).
    :ivar latent_dim: latent width q.
    :ivar epochs: training epochs of every run.
    :ivar batch_size: minibatch size.
    :ivar lr: Adam's learning rate (constant).
    :ivar seeds: one run of every variant per seed; a seed fixes the initial weights and the
        minibatch order, the same for every variant.
    :ivar num_samples: K of the held-out evaluation (:func:`pvae.log_marginal`); the same for
        every model.
    :ivar ais_steps: T of the second estimate of every model's held-out log p(x), annealed
        importance sampling (:func:`pvae.ais`, from the encoder to the posterior), or 0 for
        none. A comparison's verdict needs the AIS difference to confirm the IS one.
    :ivar ais_chains: AIS chains per point.
    :ivar data: ``"digits"`` (sklearn's bundled 8×8 digits), ``"fashion-mnist"`` or
        ``"mnist"`` (read from ``data_root``), the path of a ``.npy``/``.npz`` file of grey
        levels, or, when :func:`run_iwae_vs_elbo` is given the data, its name. Images are
        binarized at one half (the likelihood is a Bernoulli).
    :ivar data_root: folder or base URL of the IDX files of ``"fashion-mnist"`` or
        ``"mnist"``.
    :ivar num_levels: grey levels of a file (``None``: 256).
    :ivar max_points: use at most this many training and as many held-out points (a seeded
        random subset), or ``None`` for all.
    :ivar diagnostic_points: the active units are counted on the first this many training
        points.
    """

    num_particles: int = 16
    hidden_sizes: tuple[int, ...] = (200, 200)
    latent_dim: int = 16
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    num_samples: int = 5000
    ais_steps: int = 100
    ais_chains: int = 4
    data: str = "digits"
    data_root: str | None = None
    num_levels: int | None = None
    max_points: int | None = None
    diagnostic_points: int = 1000

    def __post_init__(self):
        check_positive_int(self.num_particles, "num_particles")
        if self.num_particles < 2:
            raise ValueError(
                f"num_particles must be at least 2 (with K = 1 IWAE_K is the ELBO), got "
                f"{self.num_particles!r}"
            )
        object.__setattr__(self, "hidden_sizes", check_sizes(self.hidden_sizes, "hidden_sizes"))
        for name in (
            "latent_dim",
            "epochs",
            "batch_size",
            "num_samples",
            "ais_chains",
            "diagnostic_points",
        ):
            check_positive_int(getattr(self, name), name)
        check_nonnegative_int(self.ais_steps, "ais_steps", " (0: no AIS)")
        check_positive_float(self.lr, "lr")
        if isinstance(self.seeds, (str, bytes)) or not hasattr(self.seeds, "__iter__"):
            raise ValueError(f"seeds must be a sequence of seeds, got {self.seeds!r}")
        seeds = tuple(check_seed(seed, "seeds[]") for seed in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must name at least one seed, none twice, got {self.seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be a non-empty name, got {self.data!r}")
        if self.data_root is not None and not isinstance(self.data_root, (str, os.PathLike)):
            raise ValueError(
                f"data_root must be a folder or base URL (a str) or None, got {self.data_root!r}"
            )
        if self.max_points is not None:
            check_positive_int(self.max_points, "max_points")


#: About 10 minutes on two idle cores (623 s measured, of which 340 s of training): sklearn's
#: binarized digits (1,438 training and 359 held-out points), MLPs of 200-200 ReLU units,
#: latent 16, K = 16, 100 epochs (2,300 Adam steps at lr 1e-3), three seeds; the held-out
#: log p̂ by IS at K = 5,000 and by AIS with 4 chains of 100 steps.
DEFAULT = IWAEvsELBOSettings()


def load_data(settings: IWAEvsELBOSettings) -> Split:
    """The binarized data ``settings`` name, through the data catalog
    (:func:`pvae.data.load_dataset`), before :attr:`~IWAEvsELBOSettings.max_points`."""
    check_data_choice(
        settings.data, settings.data_root, settings.num_levels, names={"root": "data_root"}
    )
    return load_dataset(
        settings.data,
        binarize=True,
        seed=settings.seeds[0],
        root=settings.data_root,
        num_levels=settings.num_levels or 256,
    )


def _train(variant: str, seed: int, data: Split, settings: IWAEvsELBOSettings, bar) -> dict:
    objective, many, _ = VARIANTS[variant]
    train = data.train
    torch.manual_seed(seed)
    model = build_model("bernoulli", data.data_dim, settings.latent_dim, settings.hidden_sizes)
    guide = build_guide("diag-normal", model, settings.hidden_sizes)
    model.to(train.device, train.dtype)
    guide.to(train.device, train.dtype)
    start = time.perf_counter()
    history = fit(
        model,
        guide,
        train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        elbo=objective,
        num_particles=settings.num_particles if many else 1,
        seed=seed,
        validation_data=data.test,
        callback=lambda record: bar.update(),
        progress=False,
    )
    seconds = time.perf_counter() - start
    options = {"num_samples": settings.num_samples, "seed": seed, "progress": False}
    test = log_marginal(model, guide, data.test, **options)
    on_train = log_marginal(model, guide, train[: len(data.test)], **options)
    second = None
    if settings.ais_steps:
        second = ais(
            model,
            guide,
            data.test,
            num_steps=settings.ais_steps,
            num_chains=settings.ais_chains,
            seed=seed,
            progress=False,
        )
    latent = diagnose(model, guide, train[: settings.diagnostic_points], chunk_size=256)
    logger.info(
        "%s, seed %d: held-out log p̂ %.3f in %.0f s",
        variant,
        seed,
        test.estimate.mean().item(),
        seconds,
    )
    return {
        "history": list(history),
        "seconds": seconds,
        "test": test,
        # the share of held-out estimates the calibrated trust status calls reliable
        "reliable": test.status.count("reliable") / len(test),
        "ais": second,
        "train": on_train,
        "active_units": latent.num_active,
        "kl": float(latent.kl_per_dim.sum()),
    }


def _row(variant: str, seed: int, run: dict, settings: IWAEvsELBOSettings) -> dict:
    test, train = run["test"], run["train"]
    summary = test.summary()
    gap = None if run["ais"] is None else paired_difference(run["ais"], test)
    return {
        "variant": variant,
        "seed": seed,
        "particles": settings.num_particles if VARIANTS[variant][1] else 1,
        "test_log_px": summary["log_marginal"],
        "test_stderr_points": summary["stderr_points"],
        "test_stderr_mc": summary["stderr_mc"],
        "test_elbo": test.elbo.mean().item(),
        "test_reliable": run["reliable"],
        "test_ais_log_px": None if gap is None else run["ais"].estimate.mean().item(),
        "ais_minus_is": None if gap is None else gap["difference"],
        "ais_minus_is_stderr": None if gap is None else gap["stderr_points"],
        "train_log_px": train.estimate.mean().item(),
        "kl": run["kl"],
        "active_units": run["active_units"],
        "final_loss": run["history"][-1]["loss"],
        "seconds": run["seconds"],
    }


def comparison_verdict(first: str, second: str, entries: list[dict]) -> str:
    """What the paired differences of held-out log p̂ of ``first`` − ``second`` over the
    seeds show, read from the numbers alone.

    A seed's difference is *measured* where it exceeds :data:`Z` of its paired across-point
    standard errors, by IS and, where AIS ran, by AIS too with the same sign (two estimators
    with different errors; IS's error could otherwise be the difference). Without AIS, fewer
    than :data:`MIN_RELIABLE` of either model's IS estimates reliable makes the verdict
    "inconclusive". "higher" (or "lower") needs every seed measured the same way; otherwise the
    verdict is "inconclusive" and says why: AIS does not confirm IS, a difference within
    :data:`Z` se, or seeds that disagree.

    :param first: the first variant's name (for the text).
    :param second: the second's.
    :param entries: per seed, a dict with ``difference`` and ``stderr_points``
        (:func:`pvae.estimation.paired_difference` of the IS estimates), ``first_reliable``
        and ``second_reliable`` (shares in [0, 1]), and, where AIS ran, ``ais_difference`` and
        ``ais_stderr_points`` (the same of the AIS estimates).
    """

    def sign(difference, stderr):
        return 1 if difference > Z * stderr else -1 if difference < -Z * stderr else 0

    with_ais = all(e.get("ais_difference") is not None for e in entries)
    thin = [e for e in entries if min(e["first_reliable"], e["second_reliable"]) < MIN_RELIABLE]
    if thin and not with_ais:
        worst = min(min(e["first_reliable"], e["second_reliable"]) for e in thin)
        return (
            f"inconclusive: in {len(thin)} of {len(entries)} seeds fewer than "
            f"{MIN_RELIABLE:.0%} of a model's held-out IS estimates are reliable (lowest "
            f"{worst:.0%}) and no AIS ran to check them; the difference may be the estimator's"
        )
    signs = [sign(e["difference"], e["stderr_points"]) for e in entries]
    seeds = "every seed" if len(entries) > 1 else "the one seed"
    by = "IS and AIS" if with_ais else "IS"
    if with_ais:
        checks = [sign(e["ais_difference"], e["ais_stderr_points"]) for e in entries]
        unconfirmed = sum(s != 0 and c != s for s, c in zip(signs, checks, strict=True))
        if unconfirmed:
            return (
                f"inconclusive: AIS does not confirm IS's difference beyond {Z:g} paired se in "
                f"{unconfirmed} of {len(entries)} seeds"
            )
    if all(s == 1 for s in signs):
        return f"{first} higher than {second} in {seeds} (by {by}, more than {Z:g} paired se)"
    if all(s == -1 for s in signs):
        return f"{first} lower than {second} in {seeds} (by {by}, more than {Z:g} paired se)"
    within = signs.count(0)
    if within:
        return (
            f"inconclusive: within {Z:g} paired se in {within} of {len(entries)} seeds "
            "(more points or seeds would tell)"
        )
    return f"inconclusive: higher in {signs.count(1)} seeds, lower in {signs.count(-1)}"


def _comparisons(runs: dict, settings: IWAEvsELBOSettings) -> list[dict]:
    out = []
    for first, second in COMPARISONS:
        entries = []
        for seed in settings.seeds:
            a, b = runs[first, seed]["test"], runs[second, seed]["test"]
            entry = {"seed": seed, **paired_difference(a, b)}
            entry["first_reliable"] = runs[first, seed]["reliable"]
            entry["second_reliable"] = runs[second, seed]["reliable"]
            if settings.ais_steps:
                check = paired_difference(runs[first, seed]["ais"], runs[second, seed]["ais"])
                entry["ais_difference"] = check["difference"]
                entry["ais_stderr_points"] = check["stderr_points"]
            entries.append(entry)
        differences = torch.tensor([e["difference"] for e in entries], dtype=torch.float64)
        spread = differences.std().item() if len(entries) > 1 else math.nan
        out.append(
            {
                "first": first,
                "second": second,
                "mean_difference": differences.mean().item(),
                "stderr_seeds": spread / math.sqrt(len(entries)),
                "per_seed": entries,
                "verdict": comparison_verdict(first, second, entries),
            }
        )
    return out


@locking_folder
def run_iwae_vs_elbo(
    out_dir,
    *,
    settings: IWAEvsELBOSettings | None = None,
    data: Split | None = None,
    progress: bool = True,
) -> dict:
    r"""Does training by the IWAE bound give a higher held-out log-likelihood than training
    by the ELBO, at the same budget? Burda et al. [1] report a higher test log-likelihood for
    IWAE than for the VAE of the same architecture on MNIST and Omniglot, growing with K, and
    more active units.

    Every variant in :data:`VARIANTS` trains a Bernoulli VAE (``"bernoulli"``, a bounded
    likelihood: log p(x) ≤ 0, so every model's log p(x) is finite and the comparison is
    well-posed) with a diagonal-Normal encoder on binarized images, with the same
    architecture, epochs, minibatches, learning rate and initial weights (per seed). They
    differ only in the objective :func:`pvae.fit` maximises: the ELBO with one sample, the
    ELBO averaged over K samples (as many draws per step as IWAE, the same-compute baseline),
    the IWAE bound :math:`\mathcal L_K` (:class:`pvae.training.IWAE`) and the same with
    doubly-reparameterized gradients [2].

    Each trained model is then scored by the same two estimators on every held-out point:
    importance sampling with its own encoder as proposal (:func:`pvae.log_marginal` at
    ``settings.num_samples``) and annealed importance sampling from the encoder to the
    posterior (:func:`pvae.ais`, ``settings.ais_steps`` steps); both are lower bounds in
    expectation, with different errors. Each comparison in :data:`COMPARISONS` is a paired
    difference over the same held-out points (:func:`pvae.estimation.paired_difference`),
    with its across-point standard error, by each estimator; its verdict (computed from the
    numbers: :func:`comparison_verdict`) says "higher" or "lower" only where every seed's
    difference exceeds :data:`Z` paired standard errors by IS and by AIS, and "inconclusive"
    with the reason otherwise.

    Writes ``iwae_vs_elbo.csv`` (the rows), ``iwae_vs_elbo.json`` (settings, data sizes,
    rows, comparisons with their per-seed differences, and each run's training history) and
    ``iwae_vs_elbo.png`` (:func:`pvae.plots.plot_iwae_vs_elbo`) to ``out_dir``.

    :param out_dir: results folder (created).
    :param settings: the budget (default :data:`DEFAULT`).
    :param data: a binary :class:`~pvae.data.Split` to use instead of loading
        ``settings.data`` (whose name then labels it); its dtype and device set the networks'.
    :param bool progress: show a tqdm bar over the epochs of all runs (default ``True``).
    :returns: ``{"rows": [...], "comparisons": [...]}``. One row per (variant, seed), variants
        in :data:`VARIANTS` order, with ``variant``, ``seed``, ``particles`` (samples per point
        in training), ``test_log_px`` (mean held-out log p̂, nats per point) with
        ``test_stderr_points`` (across points) and ``test_stderr_mc`` (Monte Carlo),
        ``test_elbo`` (the held-out ELBO of the same draws), ``test_reliable`` (the share of
        held-out estimates the trust status calls reliable), ``test_ais_log_px`` (the AIS
        estimate), ``ais_minus_is`` with ``ais_minus_is_stderr`` (their paired difference and
        its across-point se; the three are ``None`` without AIS), ``train_log_px`` (on as many
        training points), ``kl`` (nats per point), ``active_units``, ``final_loss`` and
        ``seconds``. One comparison per entry of :data:`COMPARISONS`, with
        ``mean_difference`` over the seeds, ``stderr_seeds`` (their spread over √seeds),
        ``per_seed`` (the paired differences by IS and, as ``ais_difference`` and
        ``ais_stderr_points``, by AIS) and ``verdict``.

    References

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders.
        ICLR.
    [2] Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly Reparameterized
        Gradient Estimators for Monte Carlo Objectives. ICLR.
    """
    settings = settings or DEFAULT
    if not isinstance(settings, IWAEvsELBOSettings):
        raise TypeError(f"settings must be an IWAEvsELBOSettings, got {type(settings).__name__}")
    data = check_split(load_data(settings) if data is None else data)
    check_bool(progress, "progress")
    data = subset(data, settings.max_points, settings.seeds[0])
    if data.test.shape[0] < 2:
        raise ValueError(
            f"the held-out data need at least 2 points (the paired difference has an "
            f"across-point error), got {data.test.shape[0]} (max_points={settings.max_points!r})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(variant, seed) for variant in VARIANTS for seed in settings.seeds]
    runs: dict[tuple[str, int], dict] = {}
    with tqdm(
        total=len(jobs) * settings.epochs, disable=not progress, desc="iwae-vs-elbo", unit="epoch"
    ) as bar:
        for variant, seed in jobs:
            bar.set_postfix_str(f"{variant}, seed {seed}")
            runs[variant, seed] = _train(variant, seed, data, settings, bar)
    rows = [_row(variant, seed, run, settings) for (variant, seed), run in runs.items()]
    comparisons = _comparisons(runs, settings)
    _write_outputs(out, rows, comparisons, runs, settings, data)
    return {"rows": rows, "comparisons": comparisons}


def _write_outputs(out: Path, rows, comparisons, runs, settings, data: Split) -> None:
    tables.write_table(out / "iwae_vs_elbo.csv", rows)
    details = {
        "settings": dataclasses.asdict(settings),
        "num_train": len(data.train),
        "num_test": len(data.test),
        "data_dim": data.data_dim,
        "rows": rows,
        "comparisons": comparisons,
        "histories": {f"{variant}/{seed}": run["history"] for (variant, seed), run in runs.items()},
    }
    write_text(out / "iwae_vs_elbo.json", json.dumps(details, indent=1) + "\n")
    title = (
        f"{settings.data} (binarized): {len(data.train)} training, {len(data.test)} held-out "
        f"points; MLP {'-'.join(map(str, settings.hidden_sizes))}, latent "
        f"{settings.latent_dim}, K = {settings.num_particles}, {settings.epochs} epochs"
    )
    histories = {key: run["history"] for key, run in runs.items()}
    figure = plot_iwae_vs_elbo(rows, comparisons, histories, title=title)
    save_figure(figure, out / "iwae_vs_elbo.png", dpi=110)


def _with_se(value_key: str, se_key: str, spec: str = ".2f"):
    return lambda row: f"{row[value_key]:{spec}} ± {row[se_key]:.2f}"


_COLUMNS = [
    tables.Column("variant", 10, "<", key="variant"),
    tables.Column("seed", 5, key="seed"),
    tables.Column("K", 4, key="particles"),
    tables.Column("held-out log p̂ ± se", 21, cell=_with_se("test_log_px", "test_stderr_points")),
    tables.Column("MC se", 7, key="test_stderr_mc", spec=".3f"),
    tables.Column("reliable", 9, key="test_reliable", spec=".0%"),
    tables.Column("AIS", 9, key="test_ais_log_px", spec=".2f"),
    tables.Column("AIS−IS", 8, key="ais_minus_is", spec="+.3f"),
    tables.Column("ELBO", 9, key="test_elbo", spec=".2f"),
    tables.Column("train log p̂", 13, key="train_log_px", spec=".2f"),
    tables.Column("KL", 7, key="kl", spec=".2f"),
    tables.Column("active", 7, key="active_units", spec="d"),
    tables.Column("fit s", 6, key="seconds", spec=".0f"),
]


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`run_iwae_vs_elbo` as text."""
    return tables.format_table(rows, _COLUMNS)


def format_comparisons(comparisons: list[dict]) -> str:
    """The comparisons of :func:`run_iwae_vs_elbo` as text: per seed the paired difference
    of held-out log p̂ by IS ± its across-point se (and the Monte Carlo se) and by AIS, then
    the verdict."""
    lines = []
    for comparison in comparisons:
        name = f"{comparison['first']} − {comparison['second']}"
        seeds = "; ".join(
            f"seed {e['seed']}: {e['difference']:+.2f} ± {e['stderr_points']:.2f} "
            f"(MC {e['stderr_mc']:.3f})"
            + (
                ""
                if e.get("ais_difference") is None
                else f", AIS {e['ais_difference']:+.2f} ± {e['ais_stderr_points']:.2f}"
            )
            for e in comparison["per_seed"]
        )
        spread = comparison["stderr_seeds"]
        mean = f"mean {comparison['mean_difference']:+.2f}" + (
            "" if math.isnan(spread) else f" ± {spread:.2f} over seeds"
        )
        lines.append(f"{name}: {mean}. {seeds}.\n    {comparison['verdict']}.")
    return "\n".join(lines)
