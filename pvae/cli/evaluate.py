"""``pvae evaluate``: importance-sampled log p(x) of a checkpoint."""

from __future__ import annotations

import sys

import torch

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass
from pvae import checkpoint
from pvae.data.catalog import load_data
from pvae.estimation.estimators import log_marginal
from pvae.tables import write_table

__all__ = ["evaluate_command", "evaluation_results", "evaluation_rows", "print_evaluation"]


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
) -> dict:
    """log p̂(x) by importance sampling on the first ``num_points`` training and held-out
    points of ``data``, each split from ``torch.manual_seed(seed)``: what ``pvae evaluate`` and
    the end of ``pvae train`` report, as ``{"train": ImportanceEstimate, "held-out": ...}``."""
    results = {}
    for name, points in (("train", data.train), ("held-out", data.test)):
        torch.manual_seed(seed)
        results[name] = log_marginal(
            model,
            guide,
            points[:num_points],
            num_samples=num_samples,
            proposal=proposal,
            progress=progress,
            max_memory=max_memory,
        )
    return results


def evaluation_rows(results: dict, *, proposal: str, seed: int) -> list[dict]:
    return [
        {"split": name, **result.summary(), "proposal": proposal, "seed": seed}
        for name, result in results.items()
    ]


def print_evaluation(loaded, rows, *, num_samples, num_points, proposal, seed) -> None:
    print(
        f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']} on "
        f"{loaded.config['data']}: importance-sampled log p(x), K = {num_samples}, "
        f"proposal = {proposal}, seed {seed}"
    )
    print(_format_table(rows))


def evaluate_command(args) -> int:
    loaded = checkpoint.load(args.checkpoint)
    data = load_data(loaded.config)
    settings = {
        "num_samples": args.num_samples,
        "num_points": args.num_points,
        "proposal": args.proposal,
        "seed": args.seed,
    }
    results = evaluation_results(
        loaded.model,
        loaded.guide,
        data,
        **settings,
        progress=not args.no_progress,
        max_memory=args.max_memory,
    )
    rows = evaluation_rows(results, proposal=args.proposal, seed=args.seed)
    print_evaluation(loaded, rows, **settings)
    if args.table:
        write_table(args.table, rows)
    if args.figures:
        from pvae.plots.estimates import plot_khat, plot_log_marginal

        args.figures.mkdir(parents=True, exist_ok=True)
        name = f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']}"
        figures = {
            "log_marginal.png": plot_log_marginal(
                results, title=f"{name}: log p̂(x), K = {args.num_samples}"
            ),
            "khat.png": plot_khat(
                {split: result.khat for split, result in results.items()},
                title=f"{name}: PSIS k̂ per point, K = {args.num_samples}",
            ),
        }
        for file_name, figure in figures.items():
            figure.savefig(args.figures / file_name, dpi=110)
        print(f"wrote {', '.join(str(args.figures / file_name) for file_name in figures)}")
    return 0


def _format_table(rows: list[dict]) -> str:
    header = f"{'split':<9} {'points':>6} {'log p̂ (nats)':>14} {'± se':>9} {'ELBO':>10} "
    header += f"{'mean ESS':>9} {'k̂ > 0.7':>8}"
    lines = [header, "-" * len(header)]
    for row in rows:
        se = row["stderr"]
        lines.append(
            f"{row['split']:<9} {row['num_points']:>6} {row['log_marginal']:>14.3f} "
            f"{se:>9.4f} {row['elbo']:>10.3f} "
            f"{row['ess']:>9.1f} {row['khat_above_0.7']:>8.0%}"
        )
    return "\n".join(lines)
