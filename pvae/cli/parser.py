"""The ``pvae`` command's argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from pvae.cli.config import TRAIN_DEFAULTS
from pvae.cli.options import (
    depths_type,
    gammas_type,
    hidden_type,
    memory_type,
    nonnegative_int_type,
    out_type,
    positive_type,
    ray_arguments,
    seed_type,
    seeds_type,
    variants_type,
)
from pvae.data.catalog import NAMES
from pvae.registry import GUIDES, MODELS
from pvae.training.objectives import ELBOS

__all__ = ["build_parser"]


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --data-root and --levels, as ``pvae demo`` and the experiments take them."""
    parser.add_argument(
        "--data",
        default="digits",
        help=f"one of {', '.join(NAMES)} (fashion-mnist and mnist: IDX files under "
        "--data-root), or a .npy/.npz file of integer grey levels, (n, d) or (n, h, w) "
        "(default: digits, sklearn's bundled 8x8 digits)",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="folder (or base URL) of the four IDX files of --data fashion-mnist or mnist",
    )
    parser.add_argument(
        "--levels", type=positive_type(int), help="grey levels of a --data file (default 256)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvae",
        description="Is maximum-likelihood training of a Gaussian VAE well-posed? "
        "Train model/guide pairs and estimate log p(x) per data point.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error instead of its one-line message",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model/guide pair, save a checkpoint, estimate log p(x)",
        description="Train a model/guide pair with SVI, save the checkpoint (model, guide, "
        "optimizer state, history, config) with its config as TOML beside it, and estimate "
        "log p(x) on train and held-out points as 'pvae evaluate' does. Settings come from the "
        "options given here, else from --config, else from the defaults.",
    )

    def option(flag: str, help: str, **kwargs):
        key = flag[2:].replace("-", "_")
        default = TRAIN_DEFAULTS[key]
        if default is not None:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help = f"{help} (default: {shown})"
        train.add_argument(flag, default=argparse.SUPPRESS, help=help, **kwargs)

    train.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a TOML file of train options (keys as the long options, with underscores: "
        "latent_dim = 8, hidden = [256]); options given here override it",
    )
    option("--model", "model", choices=MODELS)
    option("--guide", "guide", choices=GUIDES)
    option("--data", f"data set: one of {', '.join(NAMES)}, or a .npy/.npz file of grey levels")
    option("--data-root", "folder of the IDX files of fashion-mnist or mnist", metavar="DIR")
    option("--levels", "grey levels of a --data file (default 256)", type=positive_type(int))
    option("--binarize", "binarize (for bernoulli)", action=argparse.BooleanOptionalAction)
    option("--dequantize", "uniform dequantization", action=argparse.BooleanOptionalAction)
    option("--latent-dim", "latent dimensions", type=positive_type(int))
    option("--hidden", "hidden layer sizes, e.g. 256,256 or none", type=hidden_type)
    option("--variance-floor", "ξ for normal-floor", type=positive_type(float))
    option("--epochs", "passes over the training data", type=positive_type(int))
    option("--batch-size", "points per step", type=positive_type(int))
    option("--lr", "Adam learning rate", type=positive_type(float))
    option("--elbo", "ELBO estimator", choices=ELBOS)
    option("--num-particles", "samples of z per point and step", type=positive_type(int))
    option("--seed", "training seed", type=seed_type)
    option("--data-seed", "split and dequantization seed", type=seed_type)
    option("--out", "checkpoint; the config, figure and tables go beside it", type=out_type)
    option(
        "--eval-samples",
        "K for the final log p(x) estimate, as 'pvae evaluate --num-samples' (0: none)",
        type=nonnegative_int_type,
    )
    option("--eval-points", "points per split for the final estimate", type=positive_type(int))
    train.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue the run saved in CHECKPOINT ('pvae train' saves it after every epoch) "
        "with its saved settings, to the same result as a run never interrupted; --epochs "
        "may extend it",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="replace the files at --out (and its .toml, .png, .history.csv, "
        ".evaluation.json) that exist from an earlier run or of your own",
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    demo = commands.add_parser(
        "demo",
        help="is the Gaussian VAE well-posed? train five likelihoods, read verdicts from the "
        "numbers, print a table, write demo.png",
    )
    _data_arguments(demo)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="results folder")
    demo.add_argument(
        "--epochs",
        type=positive_type(int),
        help="epochs on the small training set (default 1000; the larger set gets as many steps)",
    )
    demo.add_argument("--seed", type=seed_type, default=0)
    demo.add_argument(
        "--ais-steps",
        type=nonnegative_int_type,
        metavar="T",
        help="T of the AIS run on the final models wherever IS is not reliable at every "
        "tracked point (default 100; --quick 10; 0 for none)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a seconds-long smoke run (20 epochs on 40 points: every output, not the runaway)",
    )
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    evaluate = commands.add_parser(
        "evaluate", help="estimate log p(x) on train and held-out points from a checkpoint"
    )
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--num-samples", type=positive_type(int), default=1000, help="K")
    evaluate.add_argument("--num-points", type=positive_type(int), default=200, help="per split")
    evaluate.add_argument("--proposal", default="guide", choices=("guide", "prior"))
    evaluate.add_argument(
        "--method",
        default="is",
        choices=("is", "ais"),
        help="importance sampling with K = --num-samples (default), or annealed importance "
        "sampling with --num-steps and --num-chains",
    )
    evaluate.add_argument(
        "--num-steps", type=positive_type(int), default=100, help="AIS's T (default 100)"
    )
    evaluate.add_argument(
        "--num-chains",
        type=positive_type(int),
        default=8,
        help="AIS's chains per point (default 8)",
    )
    evaluate.add_argument(
        "--bdmc",
        type=positive_type(int),
        metavar="N",
        help="also simulate N points from the model and report how tight AIS (T, C) and IS (K) "
        "are on them (bidirectional Monte Carlo)",
    )
    evaluate.add_argument("--seed", type=seed_type, default=0)
    evaluate.add_argument(
        "--max-memory",
        type=memory_type,
        metavar="SIZE",
        help="memory budget of the estimate (IS or AIS), e.g. 512MiB or 2GB (default 1GiB); it "
        "sets the rows per pass",
    )
    ray_arguments(evaluate, "shard of points")
    evaluate.add_argument(
        "--shards",
        type=positive_type(int),
        metavar="N",
        help="with --ray, split each split's points into N shards (default: one per CPU Ray "
        "offers); the result equals one process's",
    )
    evaluate.add_argument("--table", type=Path, help="also write the table (.csv or .json)")
    evaluate.add_argument(
        "--figures",
        type=Path,
        metavar="DIR",
        help="also write log_marginal.png (log p̂ ± 2 se beside the ELBO) and khat.png (k̂ per "
        "point) into DIR",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")

    impute = commands.add_parser(
        "impute",
        help="fill in the missing (NaN) entries of an .npy file with a checkpoint's model "
        "(Mattei & Frellsen's Metropolis-within-Gibbs)",
    )
    impute.add_argument("checkpoint", type=Path)
    impute.add_argument(
        "data",
        type=Path,
        help=".npy of floats on the scale the model was trained on, NaN where missing: (n, d) "
        "or images of d pixels",
    )
    impute.add_argument(
        "--out",
        type=Path,
        help="the .npz to write: mean, mean_stderr, samples, mask, (mode,) acceptance or R̂ "
        "or ESS and k̂, status (default: DATA_imputed.npz beside the data)",
    )
    impute.add_argument(
        "--method",
        default="mwg",
        choices=("mwg", "pseudo-gibbs", "importance"),
        help="Metropolis-within-Gibbs (default), pseudo-Gibbs, or importance resampling",
    )
    impute.add_argument(
        "--num-steps", type=positive_type(int), default=200, help="steps per chain (default 200)"
    )
    impute.add_argument(
        "--num-samples",
        type=positive_type(int),
        default=20,
        help="imputations per point: chains, or resamples (default 20)",
    )
    impute.add_argument(
        "--num-particles",
        type=positive_type(int),
        default=1000,
        help="importance resampling's proposals per point (default 1000)",
    )
    impute.add_argument("--seed", type=seed_type, default=0)
    impute.add_argument("--no-progress", action="store_true", help="hide progress bars")

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
        type=positive_type(int),
        help="epochs per run (the KL warm-up takes the first quarter); at least 2",
    )
    collapse.add_argument(
        "--depths",
        type=depths_type,
        help="hidden layers per network, e.g. 1,2,4 (default 1,2,4,6,8,10)",
    )
    collapse.add_argument(
        "--variants",
        type=variants_type,
        help="the objectives to train, e.g. ae,vae (default ae,vae,vae-warmup)",
    )
    _data_arguments(collapse)
    collapse.add_argument(
        "--fashion-mnist",
        metavar="ROOT",
        help="the same as --data fashion-mnist --data-root ROOT",
    )
    collapse.add_argument(
        "--max-points",
        type=positive_type(int),
        help="use at most N training and N held-out points (a seeded random subset)",
    )
    collapse.add_argument(
        "--seed", type=seed_type, default=0, help="seed of the data split and of every run"
    )
    collapse.add_argument(
        "--seeds",
        type=seeds_type,
        help="run the grid once per seed, e.g. 0,1,2 (default: once, with --seed); the table "
        "has a row per seed, the figure the mean and each seed",
    )
    ray_arguments(collapse, "run")
    collapse.add_argument(
        "--resume",
        action="store_true",
        help="reuse the runs an earlier call with the same settings finished (kept in "
        "OUT/tasks), and run only the rest",
    )
    collapse.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sweep = experiments.add_parser(
        "gamma-sweep",
        help="Dai et al. (2020), Proposition 2 (category (ii) collapse): a VAE's active units "
        "against a fixed decoder variance γ, beside the closed-form count",
    )
    sweep.add_argument("--out", type=Path, default=Path("runs/gamma_sweep"), help="results folder")
    sweep.add_argument(
        "--gammas",
        type=gammas_type,
        help="the fixed decoder variances, e.g. 0.05,0.1,0.5 (default: 7 from 10^-1.5 to 1)",
    )
    sweep.add_argument("--latent-dim", type=positive_type(int), default=16, help="q (default 16)")
    sweep.add_argument(
        "--hidden",
        type=hidden_type,
        default=(256,),
        help="encoder and decoder hidden sizes, or 'none' for the linear VAE (default 256)",
    )
    sweep.add_argument(
        "--epochs", type=positive_type(int), default=150, help="epochs per γ (default 150)"
    )
    sweep.add_argument(
        "--lr",
        type=positive_type(float),
        default=3e-3,
        help="Adam's first learning rate, decaying 100x by the last step (default 3e-3)",
    )
    _data_arguments(sweep)
    sweep.add_argument(
        "--seed", type=seed_type, default=0, help="the data split's seed; the i-th fit's is +i"
    )
    ray_arguments(sweep, "fit")
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="reuse the fits an earlier call with the same settings finished (OUT/tasks)",
    )
    sweep.add_argument("--no-progress", action="store_true", help="hide progress bars")
    iwae = experiments.add_parser(
        "iwae-vs-elbo",
        help="Burda et al. (2016): held-out log p̂ of Bernoulli VAEs trained by the ELBO, the "
        "ELBO with K samples, IWAE_K and IWAE_K with DReG gradients, at the same budget",
    )
    iwae.add_argument("--out", type=Path, default=Path("runs/iwae_vs_elbo"), help="results folder")
    iwae.add_argument("--epochs", type=positive_type(int), help="epochs per run (default 100)")
    iwae.add_argument(
        "--particles",
        type=positive_type(int),
        help="K, samples per point of elbo-k, iwae and iwae-dreg; at least 2 (default 16)",
    )
    iwae.add_argument(
        "--seeds", type=seeds_type, help="one run of every objective per seed (default 0,1,2)"
    )
    iwae.add_argument(
        "--num-samples",
        type=positive_type(int),
        help="K of the held-out importance-sampling estimate (default 5000)",
    )
    iwae.add_argument(
        "--ais-steps",
        type=nonnegative_int_type,
        help="T of the held-out AIS estimate that must confirm IS's differences; 0: no AIS "
        "(the verdict then reads the trust status) (default 100)",
    )
    _data_arguments(iwae)
    iwae.add_argument(
        "--max-points",
        type=positive_type(int),
        help="use at most N training and N held-out points (a seeded random subset)",
    )
    iwae.add_argument("--no-progress", action="store_true", help="hide progress bars")
    missing = experiments.add_parser(
        "missing-data",
        help="Mattei & Frellsen (2018), Sec. 4: imputing half the pixels (at random, the top or "
        "the bottom half) by Metropolis-within-Gibbs, pseudo-Gibbs, importance resampling and "
        "the mean, on grey levels and binarized",
    )
    missing.add_argument(
        "--out", type=Path, default=Path("runs/missing_data"), help="results folder"
    )
    missing.add_argument(
        "--epochs", type=positive_type(int), help="training epochs per model (default 300)"
    )
    missing.add_argument(
        "--num-points",
        type=positive_type(int),
        help="held-out points imputed (default: all of them)",
    )
    missing.add_argument(
        "--max-points",
        type=positive_type(int),
        help="use at most N training and N held-out points (a seeded random subset)",
    )
    missing.add_argument(
        "--num-steps", type=positive_type(int), help="steps per chain (default 1000)"
    )
    missing.add_argument(
        "--num-samples", type=positive_type(int), help="imputations per point (default 20)"
    )
    missing.add_argument(
        "--num-particles",
        type=positive_type(int),
        help="importance resampling's proposals per point (default 1000)",
    )
    _data_arguments(missing)
    missing.add_argument(
        "--seed", type=seed_type, default=0, help="seed of the split, training, masks, chains"
    )
    missing.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser
