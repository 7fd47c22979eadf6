"""Dai et al.'s depth experiment: AE and VAE reconstruction error against decoder depth."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pvae import tables
from pvae.data.catalog import check_data_choice, load_dataset
from pvae.data.split import Split, check_split, subset
from pvae.diagnostics.decoder import decoder_variance, mean_error, reconstruction_error
from pvae.diagnostics.latent import diagnose
from pvae.files import locking_folder, save_figure, write_arrays, write_text
from pvae.plots.collapse import plot_collapse_depth
from pvae.registry import build_guide, build_model
from pvae.tasks import Task, check_ray_options, fingerprint, run_tasks
from pvae.training.fit import fit
from pvae.training.schedules import kl_warmup
from pvae.training.watchdog import IllPosedWarning
from pvae.validation import (
    check_bool,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_sizes,
)
from pvae.version import __version__

__all__ = [
    "DEFAULT",
    "FULL",
    "SCALE_NEAR_ONE",
    "VARIANTS",
    "CollapseDepthSettings",
    "format_table",
    "load_data",
    "run_collapse_depth",
    "run_seeds",
    "train_one",
]

logger = logging.getLogger(__name__)


#: variant → (guide, description). Every variant has the decoder ``"normal-shared"``.
VARIANTS: dict[str, tuple[str, str]] = {
    "ae": ("delta", "deterministic encoder, KL weight 0: the autoencoder objective"),
    "vae": ("diag-normal", "diagonal-Normal encoder, KL weight 1: the ELBO"),
    "vae-warmup": ("diag-normal", "as vae, KL weight rising linearly from 0 (KL warm-up)"),
}


#: An encoder scale σ_z within this distance of 1 counts as "near 1" (the prior's scale).
SCALE_NEAR_ONE = 0.1


@dataclass(frozen=True)
class CollapseDepthSettings:
    """The budget of :func:`run_collapse_depth`: one run per variant and depth, each with an
    encoder and a decoder MLP of ``depth`` hidden layers of ``width`` ReLU units.

    :ivar depths: hidden layers of the encoder and of the decoder, one run per entry.
    :ivar variants: the objectives to train, a subset of :data:`VARIANTS` (default: all
        three), in :data:`VARIANTS` order.
    :ivar width: units per hidden layer.
    :ivar latent_dim: latent width q.
    :ivar epochs: training epochs of every run.
    :ivar batch_size: minibatch size.
    :ivar lr: Adam's learning rate (constant). Adam changes a parameter by about ``lr`` a step,
        so a short budget needs a larger rate than a long one.
    :ivar warmup_epochs: epochs over which ``vae-warmup``'s KL weight rises from 0 to 1
        (:func:`pvae.kl_warmup`); fewer than ``epochs``, so that the last epochs train the ELBO.
    :ivar init_gamma: the decoder's shared variance γ at the start, or ``None`` (default) for
        the data's mean per-pixel variance, the γ of a decoder that outputs the data mean.
        Adam moves log γ by about ``lr`` a step at most, so from γ = 1 (NormalDecoder's default,
        14 times the digits' per-pixel variance) a short budget would end with γ far above the
        reconstruction error, and a VAE collapsed because γ is large (Dai et al.'s category
        (ii)), not because it is deep.
    :ivar seed: seed of the data's split and subset, and of every run unless ``seeds`` is
        given: each depth's runs start from the same decoder weights and see the same
        minibatches.
    :ivar seeds: run the grid once per seed in this tuple (``None``, default: once, with
        ``seed``); the rows carry their seed and the figure shows every seed's point and
        the mean.
    :ivar data: ``"digits"`` (sklearn's bundled 8×8 digits), ``"fashion-mnist"`` or
        ``"mnist"`` (read from ``data_root``), the path of a ``.npy``/``.npz`` file of grey
        levels (:func:`pvae.data.load_array`) or, when :func:`run_collapse_depth` is given the
        data, its name.
    :ivar data_root: folder or base URL of the four IDX files of ``"fashion-mnist"`` or
        ``"mnist"`` (:func:`pvae.data.load_fashion_mnist`).
    :ivar num_levels: grey levels of a file (``None``: 256).
    :ivar max_points: use at most this many training points and as many held-out points (a
        seeded random subset), or ``None`` for all.
    :ivar diagnostic_points: the latent diagnostics (:func:`pvae.diagnostics.diagnose`) use the
        first this many training points (their mutual information costs n² per run).
    """

    depths: tuple[int, ...] = (1, 2, 4, 6, 8, 10)
    variants: tuple[str, ...] = tuple(VARIANTS)
    width: int = 512
    latent_dim: int = 64
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    warmup_epochs: int = 10
    init_gamma: float | None = None
    seed: int = 0
    seeds: tuple[int, ...] | None = None
    data: str = "digits"
    data_root: str | None = None
    num_levels: int | None = None
    max_points: int | None = None
    diagnostic_points: int = 2000

    def __post_init__(self):
        depths = check_sizes(self.depths, "depths")
        if not depths:
            raise ValueError("depths must name at least one depth, got ()")
        if len(set(depths)) != len(depths):
            raise ValueError(f"depths must not repeat a depth, got {self.depths!r}")
        object.__setattr__(self, "depths", depths)
        if isinstance(self.variants, (str, bytes)) or not hasattr(self.variants, "__iter__"):
            raise ValueError(
                f"variants must be a tuple of names in {list(VARIANTS)}, got {self.variants!r}"
            )
        variants = tuple(self.variants)
        unknown = [name for name in variants if name not in VARIANTS]
        if not variants or unknown or len(set(variants)) != len(variants):
            raise ValueError(
                f"variants must name one or more of {list(VARIANTS)}, none twice, got "
                f"{self.variants!r}"
            )
        object.__setattr__(self, "variants", tuple(name for name in VARIANTS if name in variants))
        for name in (
            "width",
            "latent_dim",
            "epochs",
            "batch_size",
            "warmup_epochs",
            "diagnostic_points",
        ):
            check_positive_int(getattr(self, name), name)
        check_positive_float(self.lr, "lr")
        if self.init_gamma is not None:
            check_positive_float(self.init_gamma, "init_gamma")
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs must be < epochs (={self.epochs}) so that the last epochs of "
                f"vae-warmup train the ELBO, got {self.warmup_epochs!r}"
            )
        check_seed(self.seed)
        if self.seeds is not None:
            if isinstance(self.seeds, (str, bytes)) or not hasattr(self.seeds, "__iter__"):
                raise ValueError(f"seeds must be a tuple of seeds or None, got {self.seeds!r}")
            seeds = tuple(check_seed(seed, "every entry of seeds") for seed in self.seeds)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ValueError(
                    f"seeds must name at least one seed, none twice, got {self.seeds!r}"
                )
            object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data must be a non-empty name, got {self.data!r}")
        if self.data_root is not None and not isinstance(self.data_root, (str, os.PathLike)):
            raise ValueError(
                f"data_root must be a folder or base URL (a str) or None, got {self.data_root!r}"
            )
        if self.max_points is not None:
            check_positive_int(self.max_points, "max_points")


#: A CPU budget (about 7 minutes on two idle cores): the paper's networks (depths 1–10, width
#: 512, latent 64, batch 64) on sklearn's digits, 40 epochs (920 Adam steps) at lr 3e-3 (the
#: demo's), KL warm-up over the first 10.
DEFAULT = CollapseDepthSettings()


#: Dai et al.'s networks (depths 1, 2, 4, 6, 8, 10; 512 ReLU units; latent 64; Adam, batch 64)
#: with a long budget of our choice: 200 epochs at Adam's usual lr 1e-3, KL warm-up over the
#: first 50. On Fashion-MNIST that is 187,600 steps per run and 18 runs: hours on a GPU.
FULL = dataclasses.replace(DEFAULT, epochs=200, warmup_epochs=50, lr=1e-3)


def load_data(settings: CollapseDepthSettings) -> Split:
    """The data ``settings`` name, before :attr:`~CollapseDepthSettings.max_points` applies,
    through the data catalog (:func:`pvae.data.load_dataset`): sklearn's digits (a seeded
    80/20 split), the official split of Fashion-MNIST or MNIST, or a file's seeded split."""
    check_data_choice(
        settings.data, settings.data_root, settings.num_levels, names={"root": "data_root"}
    )
    return load_dataset(
        settings.data,
        seed=settings.seed,
        root=settings.data_root,
        num_levels=settings.num_levels or 256,
    )


def run_seeds(settings: CollapseDepthSettings) -> tuple[int, ...]:
    """The seeds of the grid: ``settings.seeds``, or ``(settings.seed,)``."""
    return settings.seeds or (settings.seed,)


def train_one(
    variant: str, depth: int, seed: int, data: Split, settings: CollapseDepthSettings
) -> dict:
    """One run of the grid (a task of :func:`run_collapse_depth`): train ``variant`` at
    ``depth`` from ``seed`` on ``data`` and measure it; returns its record (the history,
    watchdog alarms, errors, γ, and the VAEs' latent diagnostics and σ_z)."""
    torch.manual_seed(seed)
    hidden = (settings.width,) * depth
    train = data.train
    gamma = settings.init_gamma or train.var(0).mean().item()
    model = build_model(
        "normal-shared", data.data_dim, settings.latent_dim, hidden, init_variance=gamma
    )
    guide = build_guide(VARIANTS[variant][0], model, hidden)
    model.to(train.device, train.dtype)
    guide.to(train.device, train.dtype)
    if variant == "vae-warmup":
        kl_weight = kl_warmup(settings.warmup_epochs)
    else:
        kl_weight = 0.0 if variant == "ae" else 1.0
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        # A learned shared γ can fall towards the reconstruction error itself, which for an
        # autoencoder may approach 0: the watchdog's alarm is recorded with the run.
        warnings.simplefilter("always", IllPosedWarning)
        history = fit(
            model,
            guide,
            train,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            kl_weight=kl_weight,
            seed=seed,
            progress=False,
        )
    seconds = time.perf_counter() - start
    run = {
        "history": list(history),
        "watchdog": [str(w.message) for w in caught if issubclass(w.category, IllPosedWarning)],
        "seconds": seconds,
        "train_recon_error": reconstruction_error(model, guide, train).mean().item(),
        "test_recon_error": reconstruction_error(model, guide, data.test).mean().item(),
        "gamma": decoder_variance(model, guide, train[:1]),
    }
    if variant != "ae":
        latent = diagnose(model, guide, train[: settings.diagnostic_points], chunk_size=256)
        run["kl_per_dim"] = latent.kl_per_dim.tolist()
        run["activity"] = latent.activity.tolist()
        run["active_units"] = latent.num_active
        run["mutual_information"] = latent.mutual_information
        run["scales"] = latent.scales.detach().cpu().numpy()
    logger.info(
        "%s, depth %d, seed %d: reconstruction error %.4g in %.0f s",
        variant,
        depth,
        seed,
        run["train_recon_error"],
        seconds,
    )
    return run


def _row(variant: str, depth: int, seed: int, run: dict) -> dict:
    scales = run.get("scales")
    return {
        "variant": variant,
        "depth": depth,
        "seed": seed,
        "train_recon_error": run["train_recon_error"],
        "test_recon_error": run["test_recon_error"],
        "gamma": run["gamma"],
        "kl": None if scales is None else float(sum(run["kl_per_dim"])),
        "active_units": run.get("active_units"),
        "median_scale": None if scales is None else float(np.median(scales)),
        "share_scale_near_1": (
            None if scales is None else float(np.mean(np.abs(scales - 1) < SCALE_NEAR_ONE))
        ),
        "final_loss": run["history"][-1]["loss"],
        "seconds": run["seconds"],
        "watchdog": bool(run["watchdog"]),
    }


@locking_folder
def run_collapse_depth(
    out_dir,
    *,
    settings: CollapseDepthSettings | None = None,
    data: Split | None = None,
    progress: bool = True,
    ray=None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    resume: bool = False,
) -> list[dict]:
    r"""Dai et al.'s Section 6 experiment [1]: is the VAE's reconstruction error, and its
    posterior collapse, a matter of depth? For every depth in ``settings.depths`` (and seed in
    ``settings.seeds``) it trains, with Adam on minibatches, the pairs of ``settings.variants``
    (by default all three), with the same Normal decoder of one learned shared variance γ
    (``"normal-shared"``) and encoder and decoder MLPs of ``depth`` hidden layers:

    - ``ae``: a deterministic encoder (:class:`~pvae.guides.DeltaGuide`) with KL weight 0,
      i.e. the autoencoder's objective :math:`\sum_i \log \mathcal{N}(x_i \mid
      \mu_x(f(x_i)), \gamma I)`;
    - ``vae``: a diagonal-Normal encoder, the ELBO;
    - ``vae-warmup``: the same with the KL weight rising linearly from 0 to 1 over
      ``settings.warmup_epochs`` (KL warm-up).

    γ starts at the data's mean per-pixel variance (see
    :attr:`CollapseDepthSettings.init_gamma`). It then measures the training (and held-out)
    reconstruction error
    :func:`reconstruction_error`, the learned γ, and for the VAEs the latent diagnostics of
    :func:`pvae.diagnostics.diagnose`: KL per dimension, active units (Burda et al.'s
    :math:`\mathrm{Cov}_x(\mathbb{E}_q[z_u \mid x]) > 0.01` [2]) and every encoder scale
    :math:`\sigma_z`, whose histogram by depth is Dai et al.'s Fig. 2. Dai et al. report that
    the error first falls and then rises with depth, that the VAE's is always above the AE's,
    and that deeper VAEs have more :math:`\sigma_z` near 1 (dimensions set to the prior): bad
    local minima of deep autoencoders, not the KL term alone, as a cause of collapse.

    Every (variant, depth, seed) is one task (:func:`pvae.tasks.run_tasks`): serially in this
    process, or with ``ray`` each in a Ray worker process of its own, with the same results
    for the same seeds (every run seeds torch itself and reads nothing another run changed).
    A finished run is kept in ``out_dir/tasks`` as it arrives; a run that fails is retried
    once, and one that fails again is reported with its settings after the others finish
    (:class:`~pvae.tasks.TasksFailed`); ``resume=True`` then reruns only what is missing.

    Writes ``collapse_depth.csv`` (the rows), ``collapse_depth.json`` (settings, data sizes,
    ``baseline`` = :func:`mean_error` of the training data, rows, and per run the training
    history, watchdog alarms, KL per dimension and activity),
    ``collapse_depth_scales.npz`` (σ_z of every diagnosed point and dimension, pooled over
    the seeds, keys ``"vae/4"``, ...) and ``collapse_depth.png`` (:func:`plot_collapse_depth`)
    to ``out_dir``.

    :param out_dir: results folder (created).
    :param settings: the budget (default :data:`DEFAULT`; :data:`FULL` for the paper's).
    :param data: a :class:`~pvae.data.Split` to use instead of loading ``settings.data`` (whose
        name then labels it); its dtype and device set the networks'.
    :param bool progress: show a tqdm bar over the runs (default ``True``).
    :param ray: ``None`` (default): the runs one after another in this process; ``True``: on
        Ray (Ray's default: the cluster at ``RAY_ADDRESS`` or one running on this machine, else a
        new local Ray on this machine's CPUs; :class:`pvae.tasks.ray_session`); an
        address (``"auto"``, ``"ray://HOST:10001"``): on that cluster, where pvae must be
        installed. A running ``ray.init`` is used as it is.
    :param cpus_per_task: CPUs per run on Ray (torch's threads; default 1).
    :param gpus_per_task: GPUs per run on Ray, a fraction to share one (default 0); a run given
        a GPU trains on it (its numbers then differ from a CPU run's by rounding).
    :param bool resume: reuse the runs ``out_dir/tasks`` holds from an earlier call with the
        same budget, data and device (CPU or GPU) (default ``False``: they are removed and
        every run is done); the earlier grid may have had other depths, variants or seeds.
    :returns: one row per (variant, depth, seed), variants in :data:`VARIANTS` order, then
        depth, then seed. Keys: ``variant``, ``depth``, ``seed``, ``train_recon_error`` and
        ``test_recon_error`` (mean :func:`reconstruction_error`), ``gamma``, ``kl`` (nats per
        point, summed over the dimensions), ``active_units``, ``median_scale`` and
        ``share_scale_near_1`` (the share of σ_z within :data:`SCALE_NEAR_ONE` of 1),
        ``final_loss`` (the last epoch's training objective), ``seconds`` and ``watchdog``
        (whether :func:`pvae.fit`'s watchdog warned); the VAE-only entries are ``None`` for
        ``ae``.

    References

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    [2] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    """
    settings = settings or DEFAULT
    if not isinstance(settings, CollapseDepthSettings):
        raise TypeError(f"settings must be a CollapseDepthSettings, got {type(settings).__name__}")
    check_bool(progress, "progress")
    check_ray_options(ray, cpus_per_task, gpus_per_task)
    check_bool(resume, "resume")
    data = check_split(load_data(settings) if data is None else data)
    data = subset(data, settings.max_points, settings.seed)
    if data.train.shape[0] < 2:
        raise ValueError(
            f"the training data need at least 2 points (γ starts at their variance), got "
            f"{data.train.shape[0]} (max_points={settings.max_points!r})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A resumed run's records must be of these data: their shapes and sums name them.
    # What a run's result depends on besides its own (variant, depth, seed): a grid extended by a
    # depth or a seed reuses the runs it shares with the earlier one.
    budget = {
        key: value
        for key, value in dataclasses.asdict(settings).items()
        if key not in ("depths", "variants", "seeds")
    }
    data_key = {"train": fingerprint(data.train), "test": fingerprint(data.test)}
    device = "cuda" if gpus_per_task else None
    context = {
        "settings": budget,
        "data": data_key,
        "device": device or str(data.train.device),  # a GPU's numbers differ from a CPU's
        "pvae": __version__,
    }
    jobs = [
        (variant, depth, seed)
        for variant in settings.variants
        for depth in settings.depths
        for seed in run_seeds(settings)
    ]
    tasks = [
        Task(
            name=f"{variant}, depth {depth}, seed {seed}",
            fn=_task,
            kwargs={"variant": variant, "depth": depth, "seed": seed, "device": device},
            settings={"variant": variant, "depth": depth, "seed": seed},
            context=context,
            cost=depth + 1,  # a step's time grows with the hidden layers
        )
        for variant, depth, seed in jobs
    ]
    start = time.perf_counter()
    found = run_tasks(
        tasks,
        shared={"data": data, "settings": settings},
        ray=ray,
        cpus_per_task=cpus_per_task,
        gpus_per_task=gpus_per_task,
        record=out / "tasks",
        resume=resume,
        progress=progress,
        desc="collapse-depth",
    )
    logger.info("collapse-depth trained %d runs in %.0f s", len(jobs), time.perf_counter() - start)
    runs = dict(zip(jobs, found, strict=True))
    rows = [_row(variant, depth, seed, run) for (variant, depth, seed), run in runs.items()]
    scales: dict[tuple[str, int], np.ndarray] = {}
    for (variant, depth, _), run in runs.items():
        if "scales" in run:
            previous = scales.get((variant, depth))
            value = run["scales"]
            scales[variant, depth] = (
                value if previous is None else np.concatenate([previous, value])
            )
    _write_outputs(out, rows, runs, scales, settings, data)
    return rows


def _task(variant, depth, seed, device, data: Split, settings) -> dict:
    if device is not None:
        data = dataclasses.replace(
            data,
            **{
                name: getattr(data, name).to(device)
                for name in ("train", "test", "train_labels", "test_labels")
                if getattr(data, name) is not None
            },
        )
    return train_one(variant, depth, seed, data, settings)


def _write_outputs(out: Path, rows, runs, scales, settings, data: Split) -> None:
    tables.write_table(out / "collapse_depth.csv", rows)
    details = {
        "settings": dataclasses.asdict(settings),
        "num_train": len(data.train),
        "num_test": len(data.test),
        "data_dim": data.data_dim,
        "baseline": mean_error(data.train),
        "rows": rows,
        "runs": {
            _run_key(variant, depth, seed, settings): {
                k: v for k, v in run.items() if k != "scales"
            }
            for (variant, depth, seed), run in runs.items()
        },
    }
    write_text(out / "collapse_depth.json", json.dumps(details, indent=1) + "\n")
    write_arrays(
        out / "collapse_depth_scales.npz",
        {f"{variant}/{depth}": value for (variant, depth), value in scales.items()},
        compressed=True,
    )
    title = (
        f"{settings.data}: {len(data.train)} training points, d = {data.data_dim}, "
        f"width {settings.width}, latent {settings.latent_dim}, {settings.epochs} epochs"
    )
    figure = plot_collapse_depth(rows, scales, baseline=details["baseline"], title=title)
    save_figure(figure, out / "collapse_depth.png", dpi=110)


def _run_key(variant: str, depth: int, seed: int, settings) -> str:
    """The JSON key of a run: ``"vae/4"``, and ``"vae/4/seed 1"`` where there are seeds."""
    return f"{variant}/{depth}" if settings.seeds is None else f"{variant}/{depth}/seed {seed}"


_COLUMNS = [
    tables.Column("variant", 11, "<", key="variant"),
    tables.Column("depth", 6, key="depth"),
    tables.Column("train ‖x−x̂‖²", 15, key="train_recon_error", spec=".3f"),
    tables.Column("held-out", 10, key="test_recon_error", spec=".3f"),
    tables.Column("γ", 10, key="gamma", spec=".2e"),
    # The autoencoder has no encoder distribution: its latent entries are None, a dash.
    tables.Column("KL", 8, key="kl", spec=".1f"),
    tables.Column("active", 8, key="active_units", spec="d"),
    tables.Column("median σ_z", 12, key="median_scale", spec=".3f"),
    tables.Column("σ_z≈1", 8, key="share_scale_near_1", spec=".0%"),
    tables.Column("", cell=lambda row: "  [watchdog]" if row["watchdog"] else ""),
]


_SEED = tables.Column("seed", 5, key="seed")


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`run_collapse_depth` as text; a seed column where they hold more than
    one seed."""
    several = len({row.get("seed") for row in rows}) > 1
    return tables.format_table(rows, [*_COLUMNS[:2], _SEED, *_COLUMNS[2:]] if several else _COLUMNS)
