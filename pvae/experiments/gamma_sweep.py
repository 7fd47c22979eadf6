"""The γ sweep: active dimensions against a fixed decoder variance (category (ii) collapse)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pvae import tables
from pvae.files import locking_folder, save_figure, write_text
from pvae.theory.ppca import active_dimensions
from pvae.validation import (
    SEED_LIMIT,
    check_bool,
    check_data,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_sizes,
)
from pvae.version import __version__

__all__ = ["DEFAULT_GAMMAS", "fit_one", "format_table", "gamma_sweep", "run_gamma_sweep"]


def gamma_sweep(
    data: torch.Tensor,
    variances,
    *,
    latent_dim: int,
    hidden_sizes=(),
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    final_lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
    ray=None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    record=None,
    resume: bool = False,
) -> list[dict]:
    r"""Proposition 2 / category (ii) collapse [1]: for each fixed decoder variance γ in
    ``variances``, train a VAE with that γ (:class:`~pvae.likelihoods.NormalDecoder`
    ``variance="fixed"``, an amortized diagonal Normal guide, both MLPs of ``hidden_sizes``;
    ``()`` gives the linear VAE) and count its active units (Burda et al.'s activity > 0.01).

    Each row also carries the closed-form count for the linear-Gaussian model,
    :func:`active_dimensions` (the eigenvalues of the data's covariance above γ), which the
    linear VAE should match and which the nonlinear VAE's thresholding at finite γ echoes.

    :param torch.Tensor data: training data ``(n, d)``.
    :param variances: the γ values (each > 0).
    :param int latent_dim: q.
    :param hidden_sizes: encoder and decoder hidden widths (default ``()``: linear).
    :param int epochs: epochs per γ (default 100).
    :param int batch_size: minibatch size (default 128).
    :param float lr: Adam's learning rate (default 1e-3).
    :param float final_lr: if given, the learning rate decays geometrically from ``lr`` to this
        by the last step (:class:`~pvae.training.JointOptim` ``lr_decay``). Adam's step noise
        at a constant rate keeps the encoder means of switched-off dimensions jittering, which
        the activity threshold 0.01 can count as active; decaying the rate lets them settle.
    :param int seed: seed of the i-th fit is ``seed + i`` (default 0).
    :param bool progress: show a tqdm bar over the γ values (default ``True``).
    :param ray: ``None`` (default): the fits one after another in this process; ``True`` or a
        Ray address: each fit a Ray task in a process of its own, with the same rows
        (:func:`pvae.tasks.run_tasks`; a failed fit is retried once).
    :param cpus_per_task: CPUs per fit on Ray (default 1).
    :param gpus_per_task: GPUs per fit on Ray (default 0); a fit given one trains on it.
    :param record: a folder where each finished fit is kept as it arrives, or ``None``.
    :param bool resume: reuse the fits ``record`` holds from a call with the same arguments
        and device (CPU or GPU).
    :returns: one dict per γ: ``gamma``, ``active`` (trained), ``closed_form``, ``kl``
        (total KL per point, nats), ``elbo`` (nats per point).

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? ICML.
    """
    from pvae.tasks import Task, check_ray_options, fingerprint, run_tasks

    check_data(data, "data")
    if data.shape[0] < 2:
        raise ValueError(
            f"data needs at least 2 points for a covariance, got shape {tuple(data.shape)}"
        )
    if isinstance(variances, (str, bytes)) or not hasattr(variances, "__iter__"):
        raise ValueError(f"variances must be a sequence of numbers γ > 0, got {variances!r}")
    variances = [check_positive_float(v, "every entry of variances") for v in variances]
    if not variances:
        raise ValueError("variances must name at least one γ")
    if len(set(variances)) != len(variances):
        raise ValueError(f"variances must not repeat a γ, got {variances!r}")
    check_positive_int(latent_dim, "latent_dim")
    hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
    check_seed(seed)
    if seed + len(variances) > SEED_LIMIT:  # the i-th fit's seed is seed + i
        raise ValueError(
            f"seed must leave room for one seed per γ (seed + {len(variances)} <= "
            f"{SEED_LIMIT}), got {seed}"
        )
    check_bool(progress, "progress")
    check_ray_options(ray, cpus_per_task, gpus_per_task)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    if final_lr is not None and not 0 < check_positive_float(final_lr, "final_lr") <= lr:
        raise ValueError(f"final_lr must be in (0, lr={lr}], got {final_lr!r}")
    num_steps = epochs * math.ceil(data.shape[0] / min(batch_size, data.shape[0]))
    decay = 1.0 if final_lr is None else (final_lr / lr) ** (1 / max(num_steps - 1, 1))
    eigenvalues = torch.linalg.eigvalsh(torch.cov(data.T, correction=0))
    budget = {
        "latent_dim": latent_dim,
        "hidden_sizes": hidden_sizes,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_decay": decay,
    }
    device = "cuda" if gpus_per_task else None
    context = {
        **budget,
        "data": fingerprint(data),
        "device": device or str(data.device),  # a GPU's numbers differ from a CPU's
        "pvae": __version__,
    }
    tasks = [
        Task(
            name=f"γ = {variance!r}",  # the shortest text that tells two floats apart
            fn=fit_one,
            kwargs={"variance": variance, "seed": seed + index, **budget},
            settings={"gamma": variance, "seed": seed + index},
            context=context,
        )
        for index, variance in enumerate(variances)
    ]
    rows = run_tasks(
        tasks,
        shared={"data": data, "device": device},
        ray=ray,
        cpus_per_task=cpus_per_task,
        gpus_per_task=gpus_per_task,
        record=record,
        resume=resume,
        progress=progress,
        desc="γ sweep",
    )
    for row in rows:
        row["closed_form"] = active_dimensions(eigenvalues, row["gamma"], latent_dim)
    return [
        {key: row[key] for key in ("gamma", "active", "closed_form", "kl", "elbo")} for row in rows
    ]


def fit_one(
    data: torch.Tensor,
    variance: float,
    *,
    latent_dim: int,
    hidden_sizes: tuple[int, ...],
    epochs: int,
    batch_size: int,
    lr: float,
    lr_decay: float,
    seed: int,
    device=None,
) -> dict:
    """One fit of :func:`gamma_sweep` (a task): the VAE with decoder variance ``variance``
    trained from ``seed``; returns ``gamma``, ``active``, ``kl`` and ``elbo``."""
    from pvae.diagnostics.latent import diagnose
    from pvae.estimation.terms import elbo_terms
    from pvae.guides import DiagNormalGuide
    from pvae.likelihoods import NormalDecoder
    from pvae.models import VAE
    from pvae.training.fit import fit
    from pvae.training.optim import JointOptim

    if device is not None:
        data = data.to(device)
    torch.manual_seed(seed)
    decoder = NormalDecoder(
        latent_dim, data.shape[1], hidden_sizes, variance="fixed", scale=variance**0.5
    )
    model = VAE(decoder).to(data.device, data.dtype)
    guide = DiagNormalGuide(data.shape[1], latent_dim, hidden_sizes).to(data.device, data.dtype)
    fit(
        model,
        guide,
        data,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=JointOptim(torch.optim.Adam, {"lr": lr}, lr_decay=lr_decay),
        seed=seed,
        monitor_size=0,
        watchdog=False,
        progress=False,
    )
    found = diagnose(model, guide, data)
    with torch.no_grad():
        elbo = float(elbo_terms(model, guide, data)["elbo"].mean())
    return {
        "gamma": variance,
        "active": found.num_active,
        "kl": float(found.kl_per_dim.sum()),
        "elbo": elbo,
    }


#: γ values of ``pvae experiment gamma-sweep``: 7 from 10^-1.5 to 1, evenly in log γ.
DEFAULT_GAMMAS = tuple(float(10 ** (-1.5 + 0.25 * i)) for i in range(7))


@locking_folder
def run_gamma_sweep(
    out_dir,
    *,
    data: str = "digits",
    data_root=None,
    num_levels: int | None = None,
    gammas=DEFAULT_GAMMAS,
    latent_dim: int = 16,
    hidden_sizes=(256,),
    epochs: int = 150,
    batch_size: int = 128,
    lr: float = 3e-3,
    final_lr: float | None = 3e-5,
    seed: int = 0,
    progress: bool = True,
    ray=None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    resume: bool = False,
) -> list[dict]:
    """``pvae experiment gamma-sweep``: :func:`gamma_sweep` on the training split of the data
    set ``data`` (:func:`pvae.data.load_dataset`, seeded by ``seed``; images flattened), its
    table and figure. The defaults are notebook 02's MLP sweep: latent 16, one hidden layer of
    256, 150 epochs, Adam from 3e-3 decaying to 3e-5.

    Writes ``gamma_sweep.csv`` (the rows), ``gamma_sweep.json`` (the arguments, the data's
    covariance eigenvalues and the rows) and ``gamma_sweep.png`` (:func:`pvae.plots.
    plot_gamma_sweep` with the closed-form step) to ``out_dir``; each finished fit is kept in
    ``out_dir/tasks`` for ``resume``.

    :param out_dir: results folder (created).
    :param str data: a name of :data:`pvae.data.catalog.NAMES` or a file; ``data_root`` and
        ``num_levels`` (of a file; ``None``: 256) as in :func:`pvae.data.load_dataset`.
    :param gammas: the fixed decoder variances. The other arguments are :func:`gamma_sweep`'s.
    :returns: :func:`gamma_sweep`'s rows.
    """
    import json

    from pvae.data.catalog import check_data_choice, load_dataset
    from pvae.plots.collapse import plot_gamma_sweep

    check_data_choice(data, data_root, num_levels)
    split = load_dataset(data, seed=seed, root=data_root, num_levels=num_levels or 256)
    x = split.train.flatten(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "latent_dim": latent_dim,
        "hidden_sizes": hidden_sizes,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "final_lr": final_lr,
        "seed": seed,
    }
    rows = gamma_sweep(
        x,
        gammas,
        **options,
        progress=progress,
        ray=ray,
        cpus_per_task=cpus_per_task,
        gpus_per_task=gpus_per_task,
        record=out / "tasks",
        resume=resume,
    )
    eigenvalues = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)
    tables.write_table(out / "gamma_sweep.csv", rows)
    details = {
        "data": str(data),
        "num_train": x.shape[0],
        "data_dim": x.shape[1],
        **{
            key: list(value) if isinstance(value, tuple) else value
            for key, value in options.items()
        },
        "eigenvalues": eigenvalues.tolist(),
        "rows": rows,
    }
    write_text(out / "gamma_sweep.json", json.dumps(details, indent=1) + "\n")
    label = "linear VAE" if not hidden_sizes else f"MLP VAE, {'-'.join(map(str, hidden_sizes))}"
    figure = plot_gamma_sweep({label: rows}, eigenvalues=eigenvalues, latent_dim=latent_dim)
    figure.suptitle(f"{data}: {x.shape[0]} training points, {epochs} epochs per γ")
    save_figure(figure, out / "gamma_sweep.png", dpi=110)
    return rows


_COLUMNS = [
    tables.Column("γ", 9, key="gamma", spec=".3g"),
    tables.Column("active", 8, key="active", spec="d"),
    tables.Column("closed form", 12, key="closed_form", spec="d"),
    tables.Column("KL (nats)", 10, key="kl", spec=".2f"),
    tables.Column("ELBO", 10, key="elbo", spec=".2f"),
]


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`gamma_sweep` as text."""
    return tables.format_table(rows, _COLUMNS)
