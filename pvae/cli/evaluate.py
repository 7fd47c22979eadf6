"""``pvae evaluate``: log p(x) of a checkpoint by importance sampling or AIS, and BDMC."""

from __future__ import annotations

import torch

from pvae import checkpoint
from pvae.cli.options import ray_options
from pvae.data.catalog import load_data
from pvae.estimation.ais import ais, bdmc
from pvae.estimation.compare import unpaired_difference
from pvae.estimation.estimators import log_marginal
from pvae.estimation.kcurve import k_curve
from pvae.estimation.sharded import sharded_log_marginal
from pvae.files import check_output_path, save_figure
from pvae.tables import Column, format_table, write_table
from pvae.tasks import ray_session

__all__ = [
    "evaluate_command",
    "evaluation_results",
    "evaluation_rows",
    "format_evaluation",
    "print_evaluation",
]

_COLUMNS = [
    Column("split", 9, "<", key="split"),
    Column("points", 6, key="num_points", separator=" "),
    Column("log p̂ (nats)", 14, key="log_marginal", spec=".3f", separator=" "),
    Column("± se MC", 9, key="stderr_mc", spec=".4f", separator=" "),
    Column("± se points", 11, key="stderr_points", spec=".3f", separator=" "),
    Column("ELBO", 10, key="elbo", spec=".3f", separator=" "),
    Column("mean ESS", 9, key="ess", spec=".1f", separator=" "),
    Column("k̂ > 0.7", 8, key="khat_above_0.7", spec=".0%", separator=" "),
    Column("reliable", 8, key="reliable", spec=".0%", separator=" "),
    Column("accept", 7, key="acceptance", spec=".2f", separator=" "),
]


def evaluation_results(
    model,
    guide,
    data,
    *,
    num_samples: int,
    num_points: int,
    proposal: str,
    seed: int,
    progress,
    max_memory=None,
    method: str = "is",
    num_steps: int = 100,
    num_chains: int = 8,
    keep_log_weights: bool = False,
    ray=None,
    num_shards: int | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
) -> dict:
    """log p̂(x) on the first ``num_points`` training and held-out points of ``data``, each
    split from ``torch.manual_seed(seed)``: what ``pvae evaluate`` and the end of ``pvae train``
    report, as ``{"train": result, "held-out": result}``. ``method="is"``: importance sampling
    with K = ``num_samples`` (:func:`~pvae.estimation.log_marginal`); ``"ais"``: annealed
    importance sampling with ``num_steps`` steps and ``num_chains`` chains per point
    (:func:`~pvae.estimation.ais`). With ``ray``, importance sampling runs in ``num_shards``
    shards of points as Ray tasks (:func:`~pvae.estimation.sharded_log_marginal`), with the
    same result."""
    results = {}
    for name, points in (("train", data.train), ("held-out", data.test)):
        torch.manual_seed(seed)
        if method == "ais":
            results[name] = ais(
                model,
                guide,
                points[:num_points],
                num_steps=num_steps,
                num_chains=num_chains,
                proposal=proposal,
                max_memory=max_memory,
                seed=seed,
                progress=progress,
            )
            continue
        options = {
            "num_samples": num_samples,
            "proposal": proposal,
            "progress": progress,
            "max_memory": max_memory,
            "return_log_weights": keep_log_weights,
        }
        if ray is None:
            results[name] = log_marginal(model, guide, points[:num_points], **options)
            continue
        results[name] = sharded_log_marginal(
            model,
            guide,
            points[:num_points],
            ray=ray,
            num_shards=None if num_shards is None else min(num_shards, len(points[:num_points])),
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            **options,
        )
    return results


def _share_reliable(result) -> float | None:
    if getattr(result, "nested", None) is None:
        return None  # AIS: no calibrated status yet
    statuses = result.status
    return statuses.count("reliable") / len(statuses)


def _estimator(result) -> str:
    if hasattr(result, "num_chains"):
        return f"AIS, T = {result.num_steps}, C = {result.num_chains}"
    return f"IS, K = {result.num_samples}"


def evaluation_rows(results: dict, *, proposal: str, seed: int) -> list[dict]:
    """One row per split: the estimator, the mean log p̂ with its Monte Carlo and across-point
    standard errors, and the estimator's diagnostics (ELBO, ESS and k̂ for IS; the HMC
    acceptance rate for AIS; ``None`` where they do not apply)."""
    rows = []
    for name, result in results.items():
        summary = result.summary()
        rows.append(
            {
                "split": name,
                "estimator": _estimator(result),
                "num_points": summary["num_points"],
                "num_samples": summary.get("num_samples"),
                "log_marginal": summary["log_marginal"],
                "stderr": summary["stderr_mc"],  # its older name, kept for readers of the files
                "stderr_mc": summary["stderr_mc"],
                "stderr_points": summary["stderr_points"],
                "elbo": summary.get("elbo"),
                "ess": summary.get("ess"),
                "khat_above_0.7": summary.get("khat_above_0.7"),
                # the share of points whose status is "reliable" (pvae.estimation.trust)
                "reliable": _share_reliable(result),
                "acceptance": summary.get("acceptance"),
                "proposal": proposal,
                "seed": seed,
            }
        )
    return rows


def format_evaluation(rows: list[dict]) -> str:
    """The rows of :func:`evaluation_rows` as the text table ``pvae evaluate`` prints."""
    return format_table(rows, _COLUMNS)


def print_evaluation(
    loaded, rows, *, num_samples, num_points, proposal, seed, results=None
) -> None:
    estimator = rows[0]["estimator"] if rows else f"IS, K = {num_samples}"
    method = (
        "annealed importance sampling" if estimator.startswith("AIS") else ("importance sampling")
    )
    print(
        f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']} on "
        f"{loaded.config['data']}: log p(x) by {method} ({estimator}), proposal = {proposal}, "
        f"seed {seed}; ± se MC: Monte Carlo error of the mean over these points; ± se points: "
        "its error as a mean over the population the points come from; reliable: the share of "
        "points whose trust status is reliable (docs/trust_calibration.md)"
    )
    print(format_evaluation(rows))
    if results is not None and len(results) == 2:
        train, held_out = results["train"], results["held-out"]
        gap = unpaired_difference(held_out, train)
        print(
            f"held-out − train: {gap['difference']:+.3f} ± {gap['stderr_points']:.3f} nats "
            f"(different points: the across-point error; Monte Carlo alone ± "
            f"{gap['stderr_mc']:.4f})"
        )


def _print_bdmc(model, guide, data, args) -> None:
    """``--bdmc N``: how tight AIS (and IS, with the same K) are on N points simulated from
    the model."""
    result = bdmc(
        model,
        guide,
        data.train,
        num_points=args.bdmc,
        num_steps=args.num_steps,
        num_chains=args.num_chains,
        proposal=args.proposal,
        seed=args.seed,
        progress=not args.no_progress,
    )
    sampled = log_marginal(
        model,
        guide,
        result.data,
        num_samples=args.num_samples,
        proposal=args.proposal,
        seed=args.seed,
        progress=False,
    )
    upper = result.upper.mean().item()
    print(
        f"\nBDMC on {args.bdmc} points simulated from the model (AIS, T = {args.num_steps}, "
        f"C = {args.num_chains}): forward AIS {result.lower.mean().item():.3f} ≤ log p(x) ≤ "
        f"reverse AIS {upper:.3f} nats per point (stochastic bounds); width "
        f"{result.width.mean().item():.3f} on average, {result.width.max().item():.3f} at most; "
        f"IS with K = {args.num_samples} on the same points: {sampled.estimate.mean().item():.3f}, "
        f"{upper - sampled.estimate.mean().item():.3f} under the upper bound"
    )


def evaluate_command(args) -> int:
    # Before minutes of evaluation: where its table and figures go must be writable.
    if args.table:
        check_output_path(args.table, "--table")
    if args.figures:
        check_output_path(args.figures, "--figures", folder=True)
    ray = ray_options(args)
    if args.shards is not None and ray["ray"] is None:
        raise ValueError(f"--shards {args.shards} splits the points into Ray tasks; add --ray")
    if ray["ray"] is not None and args.method == "ais":
        raise ValueError(
            "--ray shards importance sampling (--method is); AIS (--method ais) runs in this "
            "process"
        )
    loaded = checkpoint.load(args.checkpoint)
    data = load_data(loaded.config)
    settings = {
        "num_samples": args.num_samples,
        "num_points": args.num_points,
        "proposal": args.proposal,
        "seed": args.seed,
    }
    # One Ray for both splits (started here unless one is running), not one each.
    with ray_session(ray["ray"]):
        results = _evaluate(loaded, data, settings, ray, args)
    rows = evaluation_rows(results, proposal=args.proposal, seed=args.seed)
    print_evaluation(loaded, rows, **settings, results=results)
    if args.bdmc:
        _print_bdmc(loaded.model, loaded.guide, data, args)
    if args.table:
        write_table(args.table, rows)
    if args.figures:
        _write_figures(loaded, results, args)
    return 0


def _evaluate(loaded, data, settings: dict, ray: dict, args) -> dict:
    return evaluation_results(
        loaded.model,
        loaded.guide,
        data,
        **settings,
        progress=not args.no_progress,
        max_memory=args.max_memory,
        method=args.method,
        num_steps=args.num_steps,
        num_chains=args.num_chains,
        keep_log_weights=args.figures is not None,
        num_shards=args.shards,
        **ray,
    )


def _write_figures(loaded, results, args) -> None:
    from pvae.plots.estimates import plot_k_curve, plot_khat, plot_log_marginal

    args.figures.mkdir(parents=True, exist_ok=True)
    name = f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']}"
    estimator = _estimator(results["train"])
    figures = {
        "log_marginal.png": plot_log_marginal(results, title=f"{name}: log p̂(x), {estimator}")
    }
    if args.method == "is":
        figures["khat.png"] = plot_khat(
            {split: result.khat for split, result in results.items()},
            title=f"{name}: PSIS k̂ per point, {estimator}",
        )
        figures["k_curve.png"] = plot_k_curve(
            {split: k_curve(result) for split, result in results.items()},
            title=f"{name}: log p̂ against K on nested draws",
        )
    for file_name, figure in figures.items():
        save_figure(figure, args.figures / file_name, dpi=110)
    print(f"wrote {', '.join(str(args.figures / file_name) for file_name in figures)}")
