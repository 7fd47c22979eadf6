"""``pvae train``'s settings: defaults, TOML run configs and their checks."""

from __future__ import annotations

import difflib
import math
import sys
from pathlib import Path

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from pvae.data.catalog import NAMES
from pvae.files import write_text
from pvae.registry import GUIDES, MODELS
from pvae.training.objectives import ELBOS
from pvae.validation import SEED_LIMIT

__all__ = ["TRAIN_DEFAULTS", "read_train_config", "train_config", "write_train_config"]

# The type of a config key's value: (what it must be, its check, the type it is read as).


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


#: Every option of ``pvae train`` under its long name with underscores (the keys of a
#: ``--config`` TOML file) and its default. ``variance_floor = None``: the model's own;
#: ``data_root`` and ``levels``: unset (only IDX sets and files take them).
TRAIN_DEFAULTS: dict = {
    "model": "normal-shared",
    "guide": "diag-normal",
    "data": "digits",
    "data_root": None,
    "levels": None,
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


#: key → (what the value must be, the test, the type it is stored as)
_TRAIN_TYPES: dict[str, tuple] = {
    "model": _one_of(MODELS),
    "guide": _one_of(GUIDES),
    "data": (
        f"one of {list(NAMES)} or the path of a .npy or .npz file",
        lambda v: isinstance(v, str) and (v in NAMES or v.endswith((".npy", ".npz"))),
        str,
    ),
    "data_root": ("a folder or base URL (a string)", lambda v: isinstance(v, str) and v, str),
    "levels": ("an integer >= 2", lambda v: _is_int(v) and v >= 2, int),
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


def write_train_config(path: Path, config: dict) -> Path:
    header = (
        "# Every setting of a 'pvae train' run (TOML has no null: a setting left out takes its "
        "default).\n"
        f"# Repeat the run with: pvae train --config {path} (add --out to keep these files)\n"
    )
    settings = tomli_w.dumps({k: v for k, v in config.items() if v is not None})
    return write_text(path, header + settings)  # atomic; never through a symlink


def train_config(args) -> dict:
    """The run's settings: options given on the command line, else the ``--config`` file's,
    else :data:`TRAIN_DEFAULTS`."""
    config = dict(TRAIN_DEFAULTS)
    if args.config is not None:
        config.update(read_train_config(args.config))
    given = {key: getattr(args, key) for key in TRAIN_DEFAULTS if hasattr(args, key)}
    if "hidden" in given:
        given["hidden"] = list(given["hidden"])
    for key in ("out", "data_root"):
        if given.get(key) is not None:
            given[key] = str(given[key])
    config.update(given)
    return config
