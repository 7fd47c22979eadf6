"""``pvae train``: train a pair, checkpoint every epoch, resume."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from pvae import checkpoint
from pvae.cli.config import TRAIN_DEFAULTS, train_config, write_train_config
from pvae.cli.evaluate import evaluation_results, evaluation_rows, print_evaluation
from pvae.cli.options import DATA_FLAGS
from pvae.data.catalog import check_data_choice, load_data
from pvae.files import check_output_path, run_lock, save_figure
from pvae.registry import build_guide, build_model
from pvae.startup import recording_interrupts
from pvae.tables import write_table
from pvae.training.fit import fit
from pvae.training.optim import default_optimizer
from pvae.validation import check_representable

__all__ = ["resume_command", "train_command"]


def train_command(args) -> int:
    try:
        if args.resume is not None:
            return resume_command(args)
        return _train(args)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # before fit began: reading the data, building the pair
        raise Interrupted("before training began; nothing was saved") from None


def _train(args) -> int:
    config = train_config(args)
    options = {}
    if config["variance_floor"] is not None:
        if config["model"] not in ("normal-floor", "normal-shared", "normal-optimal"):
            raise ValueError(
                f"variance_floor (--variance-floor) applies to model (--model) normal-floor, "
                f"normal-shared or "
                f"normal-optimal, not {config['model']} (for a floored normal-network use "
                "normal-floor)"
            )
        options["variance_floor"] = check_representable(
            config["variance_floor"], "variance_floor (--variance-floor)"
        )
    check_data_choice(
        config["data"],
        config["data_root"],
        config["levels"],
        names=DATA_FLAGS,
    )
    if config["data"] == "linear-gaussian" and (config["binarize"] or config["dequantize"]):
        raise ValueError(
            "binarize and dequantize (--binarize, --dequantize) apply to images, not to data "
            "(--data) linear-gaussian"
        )
    if config["guide"] == "per-point":
        raise ValueError(
            "--guide per-point has no posterior for the held-out points 'pvae train' monitors "
            "and 'pvae evaluate' scores; use it from Python (pvae.guides.PerPointNormalGuide)"
        )
    with _locked(Path(config["out"])):
        _check_not_overwriting(Path(config["out"]), force=args.force)
        data = load_data(config)
        hidden = tuple(config["hidden"])
        model_hidden = () if config["model"] == "linear-gaussian" else hidden

        def build():
            model = build_model(
                config["model"], data.data_dim, config["latent_dim"], model_hidden, **options
            )
            return model, build_guide(config["guide"], model, hidden)

        _check_fits_in_memory(build, config)
        torch.manual_seed(config["seed"])
        model, guide = build()
        optimizer = default_optimizer(config["lr"], data.train)
        return _run_training(args, config, data, model, guide, optimizer, resume=None)


def _check_fits_in_memory(build, config) -> None:
    """Refuse --hidden and --latent-dim asking for more parameters than the machine's memory
    holds with their gradients and Adam's two moments, counted on PyTorch's meta device
    (which allocates nothing) before the real pair is built."""
    with torch.device("meta"):
        model, guide = build()
    parameters = [*model.parameters(), *guide.parameters()]
    count = sum(p.numel() for p in parameters)
    need = 4 * sum(p.numel() * p.element_size() for p in parameters)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > memory:
        raise ValueError(
            f"--hidden {','.join(map(str, config['hidden'])) or 'none'} and --latent-dim "
            f"{config['latent_dim']} ask for a model and guide of {count:,} parameters: "
            f"{need / 2**30:,.1f} GiB with their gradients and Adam's state, more than this "
            f"machine's {memory / 2**30:,.1f} GiB of memory"
        )


@contextlib.contextmanager
def _locked(out: Path):
    """The run's lock on ``out`` (:func:`pvae.files.run_lock`), held from before anything is
    read or written until its last file is: a second run on the same ``--out`` is refused
    instead of mixing its checkpoint, tables and figures with this one's."""
    outputs = _train_outputs(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise type(error)(
            error.errno, f"cannot create --out's folder ({error.strerror})", str(out.parent)
        ) from None
    with run_lock(out, names=tuple(path.name for path in outputs.values())):
        yield


def _check_not_overwriting(out: Path, *, force: bool) -> None:
    """A new run does not replace files that exist at its outputs (an earlier run's
    checkpoint, a text file of the user's) unless ``--force`` says so."""
    existing = [p for p in (out, *_train_outputs(out).values()) if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(repr(str(p)) for p in existing)
        raise ValueError(
            f"--out {str(out)!r}: {names} already exist(s); pass --force to replace them, "
            f"'pvae train --resume {out}' to continue that run, or choose another --out"
        )


def resume_command(args) -> int:
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
    path = Path(args.resume)
    if not path.exists():  # before the lock, which would create its file beside it
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    _train_outputs(path, "--resume")  # a directory is refused before the lock too
    with _locked(path):
        return _resume_locked(args, path)


def _resume_locked(args, path: Path) -> int:
    loaded = checkpoint.load(path)
    # data_root and levels came after format 3; a run without them had neither.
    config = {"data_root": None, "levels": None, **loaded.config}
    if loaded.fit_state is None or any(key not in config for key in TRAIN_DEFAULTS):
        raise ValueError(
            f"checkpoint {str(path)!r} holds no fit state to resume: it was not written by "
            "'pvae train' during a run (or by a pvae older than its format 3)"
        )
    config = {**config, "out": str(path)}
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


def _train_outputs(out: Path, flag: str = "--out") -> dict[str, Path]:
    if out.is_dir() or out.name in ("", ".", ".."):
        raise ValueError(
            f"{flag} {str(out)!r} is a directory; name the checkpoint file, e.g. "
            f"{str(out / 'model.pt')!r}"
        )
    check_output_path(out, flag)
    outputs = {
        "config": out.with_suffix(".toml"),
        "figure": out.with_suffix(".png"),
        "history": out.with_suffix(".history.csv"),
        "evaluation": out.with_suffix(".evaluation.json"),
    }
    check_output_path(outputs["evaluation"], f"{flag}'s evaluation table")  # the longest name
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
    write_train_config(outputs["config"], config)
    saved = [resume.epochs_done if resume is not None else 0]  # the epochs on disk

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
        saved[0] = state.epochs_done
        if interrupts:  # a Ctrl-C whose KeyboardInterrupt a finalizer swallowed
            raise KeyboardInterrupt

    try:
        with recording_interrupts() as interrupts:
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
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(out, outputs, saved[0], config["epochs"])) from None
    try:
        return _write_run_files(args, config, history, outputs)
    except KeyboardInterrupt:
        raise Interrupted(
            f"{str(out)!r} keeps all {config['epochs']} epochs; 'pvae train --resume {out}' "
            "writes the run's other files"
        ) from None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``pvae train``; the message says what its checkpoint keeps."""


def _interrupted(out: Path, outputs: dict[str, Path], epochs_saved: int, epochs: int) -> str:
    """What an interrupted run left: the checkpoint of its last whole epoch, or, if no epoch
    finished, nothing (the run's TOML, its only file so far, is removed: a new run needs no
    --force)."""
    if epochs_saved == 0:
        if not out.exists():
            outputs["config"].unlink(missing_ok=True)
        return "no epoch had finished, so nothing was saved"
    return (
        f"{str(out)!r} keeps epoch {epochs_saved} of {epochs}, the last whole one; "
        f"'pvae train --resume {out}' goes on from it"
    )


def _write_run_files(args, config, history, outputs) -> int:
    """The files of a trained run beside its checkpoint: the learning curves, the history
    table and the final log p(x) estimate."""
    path = Path(config["out"])  # saved by fit's on_epoch_end after the last epoch
    from pvae.plots.training import plot_history

    figure = plot_history(
        history, title=f"{config['model']} / {config['guide']} on {config['data']}"
    )
    save_figure(figure, outputs["figure"], dpi=120)
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
    results = evaluation_results(
        loaded.model,
        loaded.guide,
        load_data(loaded.config),
        **settings,
        progress=not args.no_progress,
    )
    rows = evaluation_rows(results, proposal="guide", seed=0)
    print()
    print_evaluation(loaded, rows, **settings, results=results)
    write_table(outputs["evaluation"], rows)
    print(
        f"wrote {outputs['evaluation']}; 'pvae evaluate {path} --num-samples "
        f"{settings['num_samples']} --num-points {settings['num_points']} --seed 0' repeats it"
    )
    return 0
