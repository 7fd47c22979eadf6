"""The ``pvae`` command line: train a model/guide pair, evaluate its log p(x)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from pvae import checkpoint
from pvae.data import linear_gaussian_data, load_digits
from pvae.marginal import log_marginal
from pvae.registry import GUIDES, MODELS, build_guide, build_model
from pvae.tables import write_table
from pvae.training import ELBOS, fit

__all__ = ["load_data", "main"]

DATASETS = ("digits", "linear-gaussian")


def load_data(config: dict):
    """The train/held-out split a run's ``config`` names (``data``, ``binarize``,
    ``dequantize``, ``data_seed``)."""
    name = config.get("data")
    if name is None:
        raise ValueError(
            "the checkpoint's config names no data set (key 'data'); it was not written by "
            "'pvae train', so evaluate it from Python with pvae.load and pvae.log_marginal"
        )
    if name == "digits":
        return load_digits(
            binarize=config.get("binarize", False),
            dequantize=config.get("dequantize", False),
            seed=config.get("data_seed", 0),
        )
    if name == "linear-gaussian":
        from pvae.data import split

        data, _ = linear_gaussian_data(2000, 16, 4, seed=config.get("data_seed", 0))
        return split(data, seed=config.get("data_seed", 0))
    raise ValueError(f"data must be one of {list(DATASETS)}, got {name!r}")


def _hidden(text: str) -> tuple[int, ...]:
    if text.strip() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hidden must be comma-separated integers such as 256,256 (or 'none'), got {text!r}"
        ) from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def _depths(text: str) -> tuple[int, ...]:
    try:
        depths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--depths must be comma-separated integers such as 1,2,4, got {text!r}"
        ) from None
    if any(depth < 1 for depth in depths):
        raise argparse.ArgumentTypeError(f"--depths must be positive, got {text!r}")
    if len(set(depths)) != len(depths):
        raise argparse.ArgumentTypeError(f"--depths must not repeat a depth, got {text!r}")
    return depths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvae",
        description="Is maximum-likelihood training of a Gaussian VAE well-posed? "
        "Train model/guide pairs and estimate log p(x) per data point.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model/guide pair and save a checkpoint")
    train.add_argument("--model", default="normal-shared", choices=MODELS, help="model")
    train.add_argument("--guide", default="diag-normal", choices=GUIDES, help="guide")
    train.add_argument("--data", default="digits", choices=DATASETS, help="data set")
    train.add_argument("--binarize", action="store_true", help="binarize (for bernoulli)")
    train.add_argument("--dequantize", action="store_true", help="uniform dequantization")
    train.add_argument("--latent-dim", type=_positive(int), default=8)
    train.add_argument("--hidden", type=_hidden, default=(256,), help="e.g. 256,256 or none")
    train.add_argument("--variance-floor", type=_positive(float), help="ξ for normal-floor")
    train.add_argument("--epochs", type=_positive(int), default=50)
    train.add_argument("--batch-size", type=_positive(int), default=64)
    train.add_argument("--lr", type=_positive(float), default=3e-3)
    train.add_argument("--elbo", default="meanfield", choices=ELBOS)
    train.add_argument("--num-particles", type=_positive(int), default=1)
    train.add_argument("--seed", type=int, default=0, help="training seed")
    train.add_argument("--data-seed", type=int, default=0, help="split and dequantization seed")
    train.add_argument("--out", type=Path, default=Path("runs/model.pt"), help="checkpoint")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    demo = commands.add_parser(
        "demo",
        help="is the Gaussian VAE well-posed? train five likelihoods, print a table, write "
        "demo.png",
    )
    demo.add_argument(
        "--data",
        default="digits",
        help="'digits' (bundled) or a .npy/.npz file of integer grey levels, (n, d) or (n, h, w)",
    )
    demo.add_argument(
        "--levels", type=_positive(int), help="grey levels of a --data file (default 256)"
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="results folder")
    demo.add_argument("--epochs", type=_positive(int), help="epochs per variant (default 40)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke run (3 epochs, 20 points)"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    evaluate = commands.add_parser(
        "evaluate", help="estimate log p(x) on train and held-out points from a checkpoint"
    )
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--num-samples", type=_positive(int), default=1000, help="K")
    evaluate.add_argument("--num-points", type=_positive(int), default=200, help="per split")
    evaluate.add_argument("--proposal", default="guide", choices=("guide", "prior"))
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--table", type=Path, help="also write the table (.csv or .json)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")

    experiment = commands.add_parser(
        "experiment", help="reproduce a published experiment at CPU scale"
    )
    experiments = experiment.add_subparsers(dest="experiment", required=True)
    collapse = experiments.add_parser(
        "collapse-depth",
        help="Dai et al. (2020), Sec. 6: AE and VAE reconstruction error and encoder scales "
        "against depth (1-10 hidden layers of 512 units, latent 64)",
    )
    collapse.add_argument(
        "--full",
        action="store_true",
        help="the paper's architecture with a long budget (our choice; the paper's epoch count is "
        "not known to us): 200 epochs, KL warm-up over 50 (default: 40 and 10)",
    )
    collapse.add_argument(
        "--out", type=Path, default=Path("runs/collapse_depth"), help="results folder"
    )
    collapse.add_argument(
        "--epochs",
        type=_positive(int),
        help="epochs per run (the KL warm-up takes the first quarter); at least 2",
    )
    collapse.add_argument(
        "--depths",
        type=_depths,
        help="hidden layers per network, e.g. 1,2,4 (default 1,2,4,6,8,10)",
    )
    collapse.add_argument(
        "--fashion-mnist",
        metavar="ROOT",
        help="train on Fashion-MNIST: a folder or base URL with the four IDX .gz files "
        "(default: sklearn's bundled 8x8 digits)",
    )
    collapse.add_argument(
        "--max-points",
        type=_positive(int),
        help="use at most N training and N held-out points (a seeded random subset)",
    )
    collapse.add_argument("--seed", type=int, default=0)
    collapse.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _train(args) -> int:
    options = {}
    if args.variance_floor is not None:
        if args.model not in ("normal-floor", "normal-shared", "normal-optimal"):
            raise ValueError(
                f"--variance-floor applies to --model normal-floor, normal-shared or "
                f"normal-optimal, not {args.model} (for a floored normal-network use normal-floor)"
            )
        options["variance_floor"] = args.variance_floor
    if args.data != "digits" and (args.binarize or args.dequantize):
        raise ValueError(f"--binarize and --dequantize apply to --data digits, not {args.data}")
    config = {
        "data": args.data,
        "binarize": args.binarize,
        "dequantize": args.dequantize,
        "data_seed": args.data_seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "elbo": args.elbo,
        "num_particles": args.num_particles,
        "seed": args.seed,
    }
    if args.guide == "per-point":
        raise ValueError(
            "--guide per-point has no posterior for the held-out points 'pvae train' monitors "
            "and 'pvae evaluate' scores; use it from Python (pvae.guides.PerPointNormalGuide)"
        )
    data = load_data(config)
    torch.manual_seed(args.seed)
    hidden = () if args.model == "linear-gaussian" else args.hidden
    model = build_model(args.model, data.data_dim, args.latent_dim, hidden, **options)
    guide = build_guide(args.guide, model, args.hidden)
    history = fit(
        model,
        guide,
        data.train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        elbo=args.elbo,
        num_particles=args.num_particles,
        seed=args.seed,
        validation_data=data.test,
        progress=not args.no_progress,
    )
    path = checkpoint.save(args.out, model, guide, history=history, config=config)
    last = history[-1]
    print(
        f"trained {args.model}/{args.guide} on {args.data} for {args.epochs} epochs: "
        f"ELBO train {last['elbo']:.2f}, held-out {last['val_elbo']:.2f} nats/point; "
        f"saved {path}"
    )
    from pvae.plots import plot_history

    figure = plot_history(history, title=f"{args.model} / {args.guide} on {args.data}")
    figure.savefig(path.with_suffix(".png"), dpi=120)
    write_table(path.with_suffix(".history.csv"), list(history))
    return 0


def _demo(args) -> int:
    from pvae.demo import DemoSettings, format_construction, format_table, run_demo

    if args.data == "digits" and args.levels is not None:
        raise ValueError("--levels applies to a --data file; the digits have 17 grey levels")
    if args.quick and args.epochs is not None:
        raise ValueError("--quick runs 3 epochs; leave out --epochs or --quick")
    data = {"data": args.data, "num_levels": args.levels or 256, "seed": args.seed}
    settings = DemoSettings(epochs=args.epochs or 40, **data)
    if args.quick:
        settings = DemoSettings(epochs=3, num_points=20, num_samples=20, **data)
    rows = run_demo(args.out, settings=settings, progress=not args.no_progress)
    print(
        f"\nIs the Gaussian VAE well-posed? {settings.epochs} epochs each, log p̂(x) in nats per "
        f"point (K = {settings.num_samples}, {settings.num_points} training and "
        f"{settings.num_points} held-out points), trend = slope of the training log p̂ over the "
        "last 5 epochs, bound = the largest log p(x) the likelihood allows:\n"
    )
    print(format_table(rows))
    construction = json.loads((args.out / "construction.json").read_text())
    print()
    print(format_construction(construction))
    print(
        f"\nwrote {args.out / 'demo.png'}, {args.out / 'construction.png'}, "
        f"{args.out / 'demo.csv'}, {args.out / 'demo.json'}"
    )
    return 0


def _collapse_depth(args) -> int:
    import dataclasses

    from pvae.collapse_depth import DEFAULT, FULL, format_table, run_collapse_depth

    settings = FULL if args.full else DEFAULT
    changes: dict = {"seed": args.seed, "max_points": args.max_points}
    if args.epochs is not None:
        if args.epochs < 2:
            raise ValueError(
                f"--epochs must be at least 2 (vae-warmup warms up over the first quarter and "
                f"then trains the ELBO), got {args.epochs}"
            )
        changes.update(epochs=args.epochs, warmup_epochs=max(1, args.epochs // 4))
    if args.depths is not None:
        changes["depths"] = args.depths
    if args.fashion_mnist is not None:
        changes.update(data="fashion-mnist", data_root=args.fashion_mnist)
    settings = dataclasses.replace(settings, **changes)
    start = time.perf_counter()
    rows = run_collapse_depth(args.out, settings=settings, progress=not args.no_progress)
    print(
        f"\nDai et al. (2020), Sec. 6 on {settings.data}: {len(settings.depths)} depths x "
        f"{len(rows) // len(settings.depths)} variants, width {settings.width}, latent "
        f"{settings.latent_dim}, {settings.epochs} epochs, batch {settings.batch_size}, Adam lr "
        f"{settings.lr:g}, in {time.perf_counter() - start:.0f} s. Training reconstruction error "
        "‖x − μ_x(E_q[z|x])‖² per point, the learned γ, and for the VAEs the KL (nats per "
        "point), active units and encoder scales σ_z:\n"
    )
    print(format_table(rows))
    saved = json.loads((args.out / "collapse_depth.json").read_text())
    print(
        f"\nreconstructing every point by the training mean (a decoder that ignores z): "
        f"{saved['baseline']:.3f}"
    )
    names = ("collapse_depth.png", "collapse_depth.csv", "collapse_depth.json")
    print(
        f"\nwrote {', '.join(str(args.out / name) for name in names)}, "
        f"{args.out / 'collapse_depth_scales.npz'}"
    )
    return 0


def _experiment(args) -> int:
    return {"collapse-depth": _collapse_depth}[args.experiment](args)


def _evaluate(args) -> int:
    loaded = checkpoint.load(args.checkpoint)
    data = load_data(loaded.config)
    rows = []
    for name, points in (("train", data.train), ("held-out", data.test)):
        torch.manual_seed(args.seed)
        subset = points[: args.num_points]
        result = log_marginal(
            loaded.model,
            loaded.guide,
            subset,
            num_samples=args.num_samples,
            proposal=args.proposal,
            progress=not args.no_progress,
        )
        rows.append({"split": name, **result.summary()})
    spec = loaded.model.pvae_spec
    print(
        f"{spec['name']} / {loaded.guide.pvae_spec['name']} on {loaded.config['data']}: "
        f"importance-sampled log p(x), K = {args.num_samples}, proposal = {args.proposal}"
    )
    print(_format_table(rows))
    if args.table:
        write_table(args.table, rows)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvae`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    commands = {"train": _train, "evaluate": _evaluate, "demo": _demo, "experiment": _experiment}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        name = " ".join(filter(None, (args.command, getattr(args, "experiment", None))))
        print(f"pvae {name}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
