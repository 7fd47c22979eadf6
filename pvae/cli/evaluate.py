"""``pvae evaluate``: importance-sampled log p(x) of a checkpoint."""

from __future__ import annotations

import torch

from pvae import checkpoint
from pvae.data.catalog import load_data
from pvae.estimation.estimators import log_marginal
from pvae.tables import Column, format_table, write_table

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
    Column("± se", 9, key="stderr", spec=".4f", separator=" "),
    Column("ELBO", 10, key="elbo", spec=".3f", separator=" "),
    Column("mean ESS", 9, key="ess", spec=".1f", separator=" "),
    Column("k̂ > 0.7", 8, key="khat_above_0.7", spec=".0%", separator=" "),
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


def format_evaluation(rows: list[dict]) -> str:
    """The rows of :func:`evaluation_rows` as the text table ``pvae evaluate`` prints."""
    return format_table(rows, _COLUMNS)


def print_evaluation(loaded, rows, *, num_samples, num_points, proposal, seed) -> None:
    print(
        f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']} on "
        f"{loaded.config['data']}: importance-sampled log p(x), K = {num_samples}, "
        f"proposal = {proposal}, seed {seed}"
    )
    print(format_evaluation(rows))


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
