"""The ``pvae`` command line: train a model/guide pair, evaluate its log p(x)."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import sys
import time
from pathlib import Path

import tomli_w
import torch

from pvae import checkpoint
from pvae.data import linear_gaussian_data, load_digits
from pvae.marginal import log_marginal
from pvae.memory import parse_memory
from pvae.registry import GUIDES, MODELS, build_guide, build_model
from pvae.tables import write_table
from pvae.training import ELBOS, default_optimizer, fit
from pvae.validation import SEED_LIMIT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TRAIN_DEFAULTS", "load_data", "main", "read_train_config"]

DATASETS = ("digits", "linear-gaussian")

#: Every option of ``pvae train`` under its long name with underscores (the keys of a
#: ``--config`` TOML file) and its default. ``variance_floor = None``: the model's own.
TRAIN_DEFAULTS: dict = {
    "model": "normal-shared",
    "guide": "diag-normal",
    "data": "digits",
    "binarize": False,
    "dequantize": False,
    "latent_dim": 8,
    "hidden": [256],
    "variance_floor": None,
    "epochs": 50,
    "batch_size": 64,
    "lr": 3e-3,
    "elbo": "meanfield",
    "num_particles": 1,
    "seed": 0,
    "data_seed": 0,
    "out": "runs/model.pt",
    "eval_samples": 100,
    "eval_points": 200,
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_real(value) -> bool:
    real = isinstance(value, int | float) and not isinstance(value, bool)
    return real and math.isfinite(value) and value > 0


_SEED = (
    f"an integer in [0, {SEED_LIMIT - 1}]",
    lambda v: _is_int(v) and 0 <= v < SEED_LIMIT,
    int,
)
_POSITIVE_INTEGER = ("a positive integer", lambda v: _is_int(v) and v > 0, int)
_POSITIVE_REAL = ("a positive number", _is_positive_real, float)
_BOOLEAN = ("true or false", lambda v: isinstance(v, bool), bool)


def _one_of(choices) -> tuple:
    return (f"one of {list(choices)}", lambda v: isinstance(v, str) and v in choices, str)


#: key → (what the value must be, the test, the type it is stored as)
_TRAIN_TYPES: dict[str, tuple] = {
    "model": _one_of(MODELS),
    "guide": _one_of(GUIDES),
    "data": _one_of(DATASETS),
    "binarize": _BOOLEAN,
    "dequantize": _BOOLEAN,
    "latent_dim": _POSITIVE_INTEGER,
    "hidden": (
        "a list of positive integers such as [256, 256] ([] for none)",
        lambda v: isinstance(v, list) and all(_is_int(size) and size > 0 for size in v),
        list,
    ),
    "variance_floor": _POSITIVE_REAL,
    "epochs": _POSITIVE_INTEGER,
    "batch_size": _POSITIVE_INTEGER,
    "lr": _POSITIVE_REAL,
    "elbo": _one_of(ELBOS),
    "num_particles": _POSITIVE_INTEGER,
    "seed": _SEED,
    "data_seed": _SEED,
    "out": ("a path (a string)", lambda v: isinstance(v, str) and v != "", str),
    "eval_samples": ("an integer >= 0", lambda v: _is_int(v) and v >= 0, int),
    "eval_points": _POSITIVE_INTEGER,
}


def read_train_config(path) -> dict:
    """Read a ``pvae train --config`` TOML file: a flat table whose keys are among
    :data:`TRAIN_DEFAULTS` (any subset), e.g. ``epochs = 20`` and ``hidden = [256, 256]``.

    :param path: the TOML file.
    :returns: the file's settings, checked, as a dict (only the keys the file sets).
    :raises FileNotFoundError: if ``path`` does not exist.
    :raises ValueError: on a TOML syntax error, an unknown key or a value of the wrong type or
        range, naming the file, the key and the value.
    """
    path = Path(path)
    where = f"config file {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        settings = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{where} is not valid TOML: {error}") from None
    for key, value in settings.items():
        if key not in _TRAIN_TYPES:
            close = difflib.get_close_matches(key.replace("-", "_"), list(_TRAIN_TYPES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}: unknown key {key!r}{hint}; the keys are {list(_TRAIN_TYPES)}"
            )
        what, test, kind = _TRAIN_TYPES[key]
        if not test(value):
            raise ValueError(f"{where}: {key} must be {what}, got {value!r}")
        settings[key] = kind(value)
    return settings


def _write_train_config(path: Path, config: dict) -> Path:
    header = (
        "# Every setting of a 'pvae train' run (TOML has no null: a setting left out takes its "
        "default).\n"
        f"# Repeat the run with: pvae train --config {path} (add --out to keep these files)\n"
    )
    path.write_text(header + tomli_w.dumps({k: v for k, v in config.items() if v is not None}))
    return path


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
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, {SEED_LIMIT - 1}], got {text!r}"
        )
    return value


def _out(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a file, got {text!r}")
    return Path(text)


def _memory(text: str) -> str:
    try:
        parse_memory(text, "--max-memory")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


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
    option("--data", "data set", choices=DATASETS)
    option("--binarize", "binarize (for bernoulli)", action=argparse.BooleanOptionalAction)
    option("--dequantize", "uniform dequantization", action=argparse.BooleanOptionalAction)
    option("--latent-dim", "latent dimensions", type=_positive(int))
    option("--hidden", "hidden layer sizes, e.g. 256,256 or none", type=_hidden)
    option("--variance-floor", "ξ for normal-floor", type=_positive(float))
    option("--epochs", "passes over the training data", type=_positive(int))
    option("--batch-size", "points per step", type=_positive(int))
    option("--lr", "Adam learning rate", type=_positive(float))
    option("--elbo", "ELBO estimator", choices=ELBOS)
    option("--num-particles", "samples of z per point and step", type=_positive(int))
    option("--seed", "training seed", type=_seed)
    option("--data-seed", "split and dequantization seed", type=_seed)
    option("--out", "checkpoint; the config, figure and tables go beside it", type=_out)
    option(
        "--eval-samples",
        "K for the final log p(x) estimate, as 'pvae evaluate --num-samples' (0: none)",
        type=_nonnegative_int,
    )
    option("--eval-points", "points per split for the final estimate", type=_positive(int))
    train.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue the run saved in CHECKPOINT ('pvae train' saves it after every epoch) "
        "with its saved settings, to the same result as a run never interrupted; --epochs "
        "may extend it",
    )
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
    demo.add_argument("--seed", type=_seed, default=0)
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
    evaluate.add_argument("--seed", type=_seed, default=0)
    evaluate.add_argument(
        "--max-memory",
        type=_memory,
        metavar="SIZE",
        help="memory budget of the estimate, e.g. 512MiB or 2GB (default 1GiB); it sets the "
        "rows per pass, not the result",
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
    collapse.add_argument("--seed", type=_seed, default=0)
    collapse.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _train_config(args) -> dict:
    """The run's settings: options given on the command line, else the ``--config`` file's,
    else :data:`TRAIN_DEFAULTS`."""
    config = dict(TRAIN_DEFAULTS)
    if args.config is not None:
        config.update(read_train_config(args.config))
    given = {key: getattr(args, key) for key in TRAIN_DEFAULTS if hasattr(args, key)}
    if "hidden" in given:
        given["hidden"] = list(given["hidden"])
    if "out" in given:
        given["out"] = str(given["out"])
    config.update(given)
    return config


def _train(args) -> int:
    if args.resume is not None:
        return _resume(args)
    config = _train_config(args)
    options = {}
    if config["variance_floor"] is not None:
        if config["model"] not in ("normal-floor", "normal-shared", "normal-optimal"):
            raise ValueError(
                f"variance_floor (--variance-floor) applies to model (--model) normal-floor, "
                f"normal-shared or "
                f"normal-optimal, not {config['model']} (for a floored normal-network use "
                "normal-floor)"
            )
        options["variance_floor"] = config["variance_floor"]
    if config["data"] != "digits" and (config["binarize"] or config["dequantize"]):
        raise ValueError(
            f"binarize and dequantize (--binarize, --dequantize) apply to data (--data) "
            f"digits, not {config['data']}"
        )
    if config["guide"] == "per-point":
        raise ValueError(
            "--guide per-point has no posterior for the held-out points 'pvae train' monitors "
            "and 'pvae evaluate' scores; use it from Python (pvae.guides.PerPointNormalGuide)"
        )
    _train_outputs(Path(config["out"]))
    data = load_data(config)
    torch.manual_seed(config["seed"])
    hidden = tuple(config["hidden"])
    model_hidden = () if config["model"] == "linear-gaussian" else hidden
    model = build_model(
        config["model"], data.data_dim, config["latent_dim"], model_hidden, **options
    )
    guide = build_guide(config["guide"], model, hidden)
    optimizer = default_optimizer(config["lr"], data.train)
    return _run_training(args, config, data, model, guide, optimizer, resume=None)


def _resume(args) -> int:
    """Continue the run saved in ``args.resume`` with its saved settings (``--epochs`` may
    extend it), from its weights, optimizer state and fit state."""
    given = [key for key in TRAIN_DEFAULTS if hasattr(args, key) and key != "epochs"]
    if args.config is not None:
        given.insert(0, "config")
    if given:
        flags = ", ".join("--" + key.replace("_", "-") for key in given)
        raise ValueError(
            f"--resume continues a run with the settings saved in its checkpoint; {flags} "
            "cannot change them (only --epochs, to train longer)"
        )
    path = args.resume
    loaded = checkpoint.load(path)
    if loaded.fit_state is None or any(key not in loaded.config for key in TRAIN_DEFAULTS):
        raise ValueError(
            f"checkpoint {str(path)!r} holds no fit state to resume: it was not written by "
            "'pvae train' during a run (or by a pvae older than its format 3)"
        )
    config = {**loaded.config, "out": str(path)}
    if hasattr(args, "epochs"):
        config["epochs"] = args.epochs
    done = loaded.fit_state.epochs_done
    if done >= config["epochs"] and hasattr(args, "epochs"):
        raise ValueError(
            f"checkpoint {str(path)!r} has already trained {done} epochs; pass --epochs N "
            f"with N > {done} to train on"
        )
    outputs = _train_outputs(path)
    if done >= config["epochs"]:  # stopped after its last epoch, before its files
        print(f"{str(path)!r} has trained all its {done} epochs; writing the run's files")
        return _write_run_files(args, config, loaded.history, outputs)
    data = load_data(config)
    optimizer = default_optimizer(config["lr"], data.train)
    optimizer.set_state(loaded.optimizer_state)
    print(f"resuming {str(path)!r} after epoch {done} of {config['epochs']}")
    return _run_training(
        args, config, data, loaded.model, loaded.guide, optimizer, resume=loaded.fit_state
    )


def _train_outputs(out: Path) -> dict[str, Path]:
    outputs = {
        "config": out.with_suffix(".toml"),
        "figure": out.with_suffix(".png"),
        "history": out.with_suffix(".history.csv"),
        "evaluation": out.with_suffix(".evaluation.json"),
    }
    if out in outputs.values():
        raise ValueError(
            f"--out {str(out)!r} would be overwritten by the run's other files; give the "
            "checkpoint another suffix, e.g. .pt"
        )
    return outputs


def _run_training(args, config, data, model, guide, optimizer, *, resume) -> int:
    """Train (or go on training), saving the checkpoint atomically after every epoch so that
    an interrupted run loses at most one epoch, then write the run's files."""
    out = Path(config["out"])
    outputs = _train_outputs(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_train_config(outputs["config"], config)

    def save_epoch(state) -> None:
        checkpoint.save(
            out,
            model,
            guide,
            history=state.history,
            config=config,
            optimizer=optimizer,
            fit_state=state,
        )

    history = fit(
        model,
        guide,
        data.train,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        elbo=config["elbo"],
        num_particles=config["num_particles"],
        seed=config["seed"],
        validation_data=data.test,
        optimizer=optimizer,
        on_epoch_end=save_epoch,
        resume=resume,
        progress=not args.no_progress,
    )
    return _write_run_files(args, config, history, outputs)


def _write_run_files(args, config, history, outputs) -> int:
    """The files of a trained run beside its checkpoint: the learning curves, the history
    table and the final log p(x) estimate."""
    path = Path(config["out"])  # saved by fit's on_epoch_end after the last epoch
    from pvae.plots import plot_history

    figure = plot_history(
        history, title=f"{config['model']} / {config['guide']} on {config['data']}"
    )
    figure.savefig(outputs["figure"], dpi=120)
    write_table(outputs["history"], list(history))
    last = history[-1]
    print(
        f"trained {config['model']}/{config['guide']} on {config['data']} for "
        f"{config['epochs']} epochs: ELBO train {last['elbo']:.2f}, held-out "
        f"{last['val_elbo']:.2f} nats/point; saved {path} (config {outputs['config']}, "
        f"{outputs['figure']}, {outputs['history']})"
    )
    if config["eval_samples"] == 0:
        return 0
    if config["guide"] == "delta":
        print(
            "no final log p(x) estimate: a point-mass guide has no importance weights; "
            f"'pvae evaluate {path} --proposal prior' samples the prior instead"
        )
        return 0
    # The checkpoint as 'pvae evaluate' reads it, through the same function, so that
    # 'pvae evaluate' with the same K, points and seed prints the same numbers.
    loaded = checkpoint.load(path)
    settings = {
        "num_samples": config["eval_samples"],
        "num_points": config["eval_points"],
        "proposal": "guide",
        "seed": 0,
    }
    results = _evaluation_results(
        loaded.model,
        loaded.guide,
        load_data(loaded.config),
        **settings,
        progress=not args.no_progress,
    )
    rows = _evaluation_rows(results, proposal="guide", seed=0)
    print()
    _print_evaluation(loaded, rows, **settings)
    write_table(outputs["evaluation"], rows)
    print(
        f"wrote {outputs['evaluation']}; 'pvae evaluate {path} --num-samples "
        f"{settings['num_samples']} --num-points {settings['num_points']} --seed 0' repeats it"
    )
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


def _evaluation_results(
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


def _evaluation_rows(results: dict, *, proposal: str, seed: int) -> list[dict]:
    return [
        {"split": name, **result.summary(), "proposal": proposal, "seed": seed}
        for name, result in results.items()
    ]


def _print_evaluation(loaded, rows, *, num_samples, num_points, proposal, seed) -> None:
    print(
        f"{loaded.model.pvae_spec['name']} / {loaded.guide.pvae_spec['name']} on "
        f"{loaded.config['data']}: importance-sampled log p(x), K = {num_samples}, "
        f"proposal = {proposal}, seed {seed}"
    )
    print(_format_table(rows))


def _evaluate(args) -> int:
    loaded = checkpoint.load(args.checkpoint)
    data = load_data(loaded.config)
    settings = {
        "num_samples": args.num_samples,
        "num_points": args.num_points,
        "proposal": args.proposal,
        "seed": args.seed,
    }
    results = _evaluation_results(
        loaded.model,
        loaded.guide,
        data,
        **settings,
        progress=not args.no_progress,
        max_memory=args.max_memory,
    )
    rows = _evaluation_rows(results, proposal=args.proposal, seed=args.seed)
    _print_evaluation(loaded, rows, **settings)
    if args.table:
        write_table(args.table, rows)
    if args.figures:
        from pvae.plots import plot_khat, plot_log_marginal

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
