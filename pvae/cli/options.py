"""The argument types of the ``pvae`` command: each checks its value and names the flag."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from pvae.estimation.memory import parse_memory
from pvae.tasks import HOST_PORT
from pvae.validation import SEED_LIMIT

__all__ = [
    "DATA_FLAGS",
    "depths_type",
    "gammas_type",
    "gpus_type",
    "hidden_type",
    "memory_type",
    "nonnegative_int_type",
    "out_type",
    "positive_type",
    "ray_address_type",
    "ray_arguments",
    "ray_options",
    "seed_type",
    "variants_type",
]


#: How the data flags are spelled in errors (pvae.data.catalog.check_data_choice's ``names``).
DATA_FLAGS = {"data": "--data", "root": "--data-root", "num_levels": "--levels"}


def hidden_type(text: str) -> tuple[int, ...]:
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


def positive_type(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        return value

    return parse


def seed_type(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be an integer in [0, {SEED_LIMIT - 1}], got {text!r}"
        )
    return value


def out_type(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a file, got {text!r}")
    return Path(text)


def memory_type(text: str) -> str:
    try:
        parse_memory(text, "--max-memory")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def nonnegative_int_type(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def gammas_type(text: str) -> tuple[float, ...]:
    """Comma-separated decoder variances γ > 0 (``0.05,0.1,0.5``)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers such as 0.05,0.1,0.5, got {text!r}"
        ) from None
    if not all(value > 0 and math.isfinite(value) for value in values):
        raise argparse.ArgumentTypeError(f"every γ must be a finite number > 0, got {text!r}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"must not repeat a γ, got {text!r}")
    return values


def depths_type(text: str) -> tuple[int, ...]:
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


def seeds_type(text: str) -> tuple[int, ...]:
    """Comma-separated seeds, none twice (``0,1,2``)."""
    seeds = tuple(seed_type(part) for part in text.split(","))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"must not repeat a seed, got {text!r}")
    return seeds


def gpus_type(text: str) -> float:
    """GPUs per Ray task: 0 (the CPU), a fraction that shares one, or a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    if value > 1 and value != int(value):
        raise argparse.ArgumentTypeError(
            f"above 1 must be a whole number of GPUs (a fraction shares one), got {text!r}"
        )
    return value


def ray_address_type(text: str) -> str:
    """A Ray address: ``auto``, ``local``, ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT``
    (a cluster's GCS); anything else is refused, so that ``--ray model.pt`` does not take a
    file for an address."""
    if text in ("auto", "local") or re.fullmatch(HOST_PORT, text.removeprefix("ray://")):
        return text
    raise argparse.ArgumentTypeError(
        f"must be a Ray address: auto, local, ray://HOST:PORT or HOST:PORT, got {text!r}"
    )


def ray_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    """--ray [ADDRESS], --cpus-per-task and --gpus-per-task (``unit`` names a task)."""
    parser.add_argument(
        "--ray",
        nargs="?",
        const=True,
        type=ray_address_type,
        metavar="ADDRESS",
        help=f"run each {unit} as a Ray task, in a process of its own: alone, on the Ray "
        "cluster at RAY_ADDRESS, else one started on this machine with 'ray start', else a new "
        "local Ray on this machine's CPUs; with an address, there (local: always a new local "
        "Ray; auto; ray://HOST:10001; HOST:6379) (needs pip install 'pvae-pyro[ray]')",
    )
    parser.add_argument(
        "--cpus-per-task",
        type=positive_type(float),
        metavar="N",
        help=f"CPUs per {unit} on Ray, torch's threads in it (default 1)",
    )
    parser.add_argument(
        "--gpus-per-task",
        type=gpus_type,
        metavar="F",
        help=f"GPUs per {unit} on Ray, a fraction to share one (default 0: CPU)",
    )


def ray_options(args) -> dict:
    """``ray``, ``cpus_per_task`` and ``gpus_per_task`` from the flags of :func:`ray_arguments`;
    the resources without ``--ray`` are refused."""
    for flag, value in (
        ("--cpus-per-task", args.cpus_per_task),
        ("--gpus-per-task", args.gpus_per_task),
    ):
        if value and args.ray is None:  # 0 GPUs is the default, asking for nothing
            raise ValueError(f"{flag} {value:g} sets a Ray task's resources; add --ray")
    return {
        "ray": args.ray,
        "cpus_per_task": 1 if args.cpus_per_task is None else args.cpus_per_task,
        "gpus_per_task": 0 if args.gpus_per_task is None else args.gpus_per_task,
    }


def variants_type(text: str) -> tuple[str, ...]:
    """Comma-separated variants of the depth experiment, none twice (``ae,vae``)."""
    from pvae.experiments.collapse_depth import VARIANTS

    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated names of {', '.join(VARIANTS)}, none twice, got {text!r}"
        )
    return names
