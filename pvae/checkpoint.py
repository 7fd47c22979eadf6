"""Checkpoints: a model, its guide, their optimizer state, history and config in one file."""

from __future__ import annotations

import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch
from pyro.nn import PyroModule

from pvae.files import atomic_write, plain
from pvae.registry import GUIDES, MODELS, build_guide, build_model
from pvae.training.state import FitState, History
from pvae.version import __version__

__all__ = ["Checkpoint", "CheckpointError", "load", "save"]

FORMAT = "pvae-checkpoint"
#: Version 2 adds ``optimizer_state`` and ``versions``, version 3 ``fit_state`` (where an
#: interrupted run stands); :func:`load` reads 1, 2 and 3.
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


class CheckpointError(ValueError):
    """A file is not a readable pvae checkpoint."""


@dataclass
class Checkpoint:
    """What :func:`load` returns.

    :ivar model: the rebuilt model with its trained weights, in eval mode (:func:`pvae.fit`
        switches it back to training mode when it trains on).
    :ivar guide: the rebuilt guide with its trained weights, in eval mode.
    :ivar history: the per-epoch records of training, a :class:`pvae.training.History`
        (``history.column("val_elbo")`` gives one quantity over the epochs); empty if none.
    :ivar config: the run's settings as saved; for ``pvae train`` every train option after
        precedence (the same as the ``.toml`` file written beside the checkpoint).
    :ivar optimizer_state: the optimizer's :meth:`~pyro.optim.PyroOptim.get_state` at the end of
        training, keyed by the param-store names of *this* ``model`` and ``guide`` (empty if
        none was saved, and for version-1 files); give it to a new optimizer's ``set_state``
        to continue training them, e.g. ``optimizer = JointOptim(torch.optim.Adam, {"lr":
        lr})``, ``optimizer.set_state(checkpoint.optimizer_state)``, then
        ``pvae.fit(checkpoint.model, checkpoint.guide, data, optimizer=optimizer)``. The
        saved learning rate of each parameter (as decayed by ``lr_decay``) then replaces the
        ``lr`` given to the new optimizer, so that the schedule continues where it stood.
    :ivar versions: the pvae, torch and pyro versions that wrote the file (empty for version 1).
    :ivar fit_state: where the run stood when the file was written (a
        :class:`~pvae.training.FitState`: epochs done, the training RNG states), for
        ``pvae.fit(..., resume=checkpoint.fit_state)``; ``None`` if none was saved.
    """

    model: PyroModule
    guide: PyroModule
    history: History = field(default_factory=History)
    config: dict = field(default_factory=dict)
    optimizer_state: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    fit_state: FitState | None = None


def _versions() -> dict[str, str]:
    # str(): torch.__version__ is a TorchVersion, which weights_only loading refuses
    return {
        "pvae": str(__version__),
        "torch": str(torch.__version__),
        "pyro": str(pyro.__version__),
    }


def _spec(module, name: str) -> dict:
    spec = getattr(module, "pvae_spec", None)
    if spec is None:
        raise ValueError(
            f"{name} was not built by pvae.build_model/build_guide, so a checkpoint could not "
            f"rebuild it; save its state_dict() with torch.save instead ({type(module).__name__})"
        )
    known, other = (MODELS, "build_guide") if name == "model" else (GUIDES, "build_model")
    if spec.get("name") not in known:
        raise ValueError(
            f"{name} was built by pvae.{other} ({spec.get('name')!r}), not "
            f"pvae.build_{name}: are the model and guide swapped?"
        )
    return spec


def _path(path) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def _check_finite(module, name: str, path: Path) -> None:
    for key, tensor in module.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            nan, inf = int(tensor.isnan().sum()), int(tensor.isinf().sum())
            raise ValueError(
                f"{name} parameter {key!r} holds {nan} NaN and {inf} infinite values; refusing "
                f"to write a non-finite checkpoint to {str(path)!r} (did training diverge?)"
            )


def _root(module) -> str:
    # Pyro names a PyroModule's parameters in the param store after the module's own name
    # (pvae's modules take unique ones, "VAE_0", so that several live in one session), so
    # optimizer state keyed by param name is stored relative to it and re-rooted on load.
    return module.__dict__.get("_pyro_name", "")


def _relative(name: str, root: str) -> str:
    return name[len(root) + 1 :] if root and name.startswith(root + ".") else name


def _absolute(name: str, root: str) -> str:
    return f"{root}.{name}" if root else name


def _portable_optimizer_state(state: dict, model, guide) -> dict:
    """``state`` keyed ``model:<name>`` / ``guide:<name>`` (param name relative to the module)
    instead of by param-store name; entries that are not per-parameter (e.g.
    :attr:`~pvae.training.JointOptim.LR_KEY`) as they are."""
    store = pyro.get_param_store()
    portable = {key: value for key, value in state.items() if not isinstance(value, dict)}
    per_parameter = {key for key, value in state.items() if isinstance(value, dict)}
    for kind, module in (("model", model), ("guide", guide)):
        for attribute, parameter in module.named_parameters():
            name = store.param_name(parameter)
            if name is None and per_parameter:
                raise ValueError(
                    f"{kind} parameter {attribute!r} is not in Pyro's param store, so the "
                    "optimizer's state cannot be matched to it (was pyro.clear_param_store() "
                    "called after training?); save before clearing the store, or leave out "
                    "optimizer="
                )
            if name in per_parameter:
                portable[f"{kind}:{_relative(name, _root(module))}"] = state[name]
                per_parameter.discard(name)
    if per_parameter:
        raise ValueError(
            f"the optimizer holds state for {sorted(map(str, per_parameter))}, which belong to "
            "neither the model nor the guide; save each pair with the optimizer that trained it"
        )
    return portable


def _restored_optimizer_state(portable: dict, model, guide) -> dict:
    roots = {"model": _root(model), "guide": _root(guide)}
    state = {}
    for key, value in portable.items():
        kind, _, name = key.partition(":")
        state[_absolute(name, roots[kind]) if kind in roots and name else key] = value
    return state


def save(path, model, guide, *, history=None, config=None, optimizer=None, fit_state=None) -> Path:
    """Write ``model``, ``guide`` (built by :func:`pvae.build_model` / :func:`pvae.build_guide`),
    the state of their ``optimizer``, their ``history`` and a JSON-like ``config`` to ``path``
    (format version 3; the pvae, torch and pyro versions are recorded too).

    The file is written to a temporary file beside ``path``, flushed to disk, then renamed over
    ``path`` (:func:`pvae.files.atomic_write`), so an interrupted save never leaves a
    half-written checkpoint.

    :param path: the checkpoint file (its folder is created).
    :param model: the model, from :func:`pvae.build_model`.
    :param guide: its guide, from :func:`pvae.build_guide`.
    :param history: per-epoch records, e.g. the :class:`~pvae.training.History` from
        :func:`pvae.fit` (default: none).
    :param dict config: the run's settings, plain values only (str, int, float, bool, None,
        lists and dicts of them; default: none).
    :param optimizer: the :class:`pyro.optim.PyroOptim` that trained the pair (e.g. the
        :class:`~pvae.training.JointOptim` given to :func:`pvae.fit`), whose ``get_state()``
        is saved for the parameters of ``model`` and ``guide`` (keyed by their names inside
        the modules, since param-store names carry the module's session-unique name, and
        re-keyed by :func:`load` for the modules it builds); default ``None`` saves none.
    :param fit_state: a :class:`~pvae.training.FitState` (from ``fit(..., on_epoch_end=...)``)
        saved so that the run can be resumed; default ``None``.
    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises ValueError: if a parameter or buffer of ``model`` or ``guide`` is NaN or infinite
        (a non-finite checkpoint is never written).
    """
    path = _path(path)
    model_spec, guide_spec = _spec(model, "model"), _spec(guide, "guide")
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict of plain values, got {type(config).__name__}")
    if history is not None and (
        not isinstance(history, list) or not all(isinstance(r, dict) for r in history)
    ):
        raise TypeError(
            "history must be a list of per-epoch dicts (pvae.fit's History), got "
            f"{type(history).__name__}"
        )
    _check_finite(model, "model", path)
    _check_finite(guide, "guide", path)
    if optimizer is not None and not callable(getattr(optimizer, "get_state", None)):
        raise TypeError(
            f"optimizer must be a pyro.optim.PyroOptim (with get_state()), got "
            f"{type(optimizer).__name__}"
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "versions": _versions(),
        "model_spec": model_spec,
        "guide_spec": guide_spec,
        "model_state": model.state_dict(),
        "guide_state": guide.state_dict(),
        "optimizer_state": (
            {}
            if optimizer is None
            else _portable_optimizer_state(optimizer.get_state(), model, guide)
        ),
        "history": [plain(record, f"history[{i}]") for i, record in enumerate(history or [])],
        "config": plain(dict(config or {}), "config"),
        "fit_state": None if fit_state is None else _fit_state(fit_state).to_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialized in memory first: on a full disk torch.save's own writer fails with "unexpected
    # pos", naming neither the disk nor the file; a plain write fails with the OS's error.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path) as file:
        file.write(buffer.getbuffer())
    return path


def _read(path: Path) -> dict:
    name = str(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {name!r} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {name!r} is a directory, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {name!r} is empty (0 bytes)")
    with path.open("rb") as file:
        head = file.read(16)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's own message follows in the traceback
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if isinstance(error, pickle.UnpicklingError) and unsafe:
            why = (
                f"it holds Python objects ({unsafe.group(1)}) other than tensors and plain "
                "values, which pvae never unpickles (a whole pickled module?)"
            )
        elif head.startswith(_ZIP_MAGIC):
            why = f"it is truncated or corrupt (a torch zip archive of {size} bytes, unreadable)"
        else:
            why = f"it is not a torch file (it begins with {head!r})"
        raise CheckpointError(f"checkpoint {name!r} could not be read: {why}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict):
            keys = sorted(map(str, payload))
            shown = ", ".join(repr(key) for key in keys[:4]) + (", ..." if len(keys) > 4 else "")
            holds = f"a dict with keys [{shown}] (a bare state_dict?)"
        else:
            holds = f"a {type(payload).__name__}"
        raise CheckpointError(
            f"{name!r} is not a pvae checkpoint: it is a torch file holding {holds}; pvae "
            "checkpoints are written by pvae.save and 'pvae train'"
        )
    return payload


def _rebuild(name: str, payload: dict, model_spec, guide_spec):
    """The model and guide a checkpoint's specs describe (on the current default device)."""
    try:
        model = build_model(
            model_spec["name"],
            model_spec["data_dim"],
            model_spec["latent_dim"],
            tuple(model_spec["hidden_sizes"]),
            **model_spec["options"],
        )
        guide = build_guide(
            guide_spec["name"], model, tuple(guide_spec["hidden_sizes"]), **guide_spec["options"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {name!r} could not rebuild its model and guide from their specs "
            f"({model_spec}, {guide_spec}; written by {_written_by(payload)}): {error}"
        ) from error
    return model, guide


def _check_state(name: str, spec: str, kind: str, expected: dict, state: dict) -> None:
    """The saved weights ``state`` against those the spec's module has (``expected``, on the
    meta device): the same names and shapes, floating point where the module's are, finite."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {name!r}: the {kind} weights do not match its {spec}: missing "
            f"{missing[:4]}, unexpected {unexpected[:4]} (refused before allocating the {kind})"
        )
    for key, tensor in state.items():
        want = expected[key]
        if tuple(tensor.shape) != tuple(want.shape):
            raise CheckpointError(
                f"checkpoint {name!r}: the {kind} weights do not match its {spec}: size "
                f"mismatch for {key!r}: the file holds shape {tuple(tensor.shape)}, the spec "
                f"needs {tuple(want.shape)} (refused before allocating the {kind})"
            )
        if tensor.is_floating_point() != want.is_floating_point():
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: its {kind} weight {key!r} is {tensor.dtype}, "
                f"where the {kind} has {want.dtype}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: its {kind} weight {key!r} holds {bad} "
                "non-finite value(s)"
            )


def _written_by(payload: dict) -> str:
    versions = payload.get("versions")
    if not isinstance(versions, dict) or not versions:
        return "an unknown pvae version"
    return ", ".join(f"{library} {version}" for library, version in versions.items())


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save` (format version 1, 2 or 3) and rebuild its model
    and guide, on the CPU, in eval mode, in the dtype of the saved weights.

    :param path: the checkpoint file.
    :returns: a :class:`Checkpoint`.
    :raises FileNotFoundError: if ``path`` does not exist.
    :raises CheckpointError: if ``path`` is a directory, empty, truncated, corrupt, not a pvae
        checkpoint, of a newer format version, names a model or guide this pvae does not have,
        or holds weights that do not fit its model and guide.
    """
    path = _path(path)
    name = str(path)
    payload = _read(path)
    version = payload.get("version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {name!r} has format version {version!r} (written by "
            f"{_written_by(payload)}); this pvae ({_versions()['pvae']}) reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: upgrade pvae to read it"
        )
    required = ["model_spec", "guide_spec", "model_state", "guide_state", "history", "config"]
    missing = [key for key in required if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {name!r} is damaged: it lacks {missing}")
    for key in ("model_state", "guide_state"):
        state = payload[key]
        if not isinstance(state, dict) or not all(
            isinstance(t, torch.Tensor) for t in state.values()
        ):
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: its {key!r} is not a dict of tensors"
            )
    model_spec, guide_spec = payload["model_spec"], payload["guide_spec"]
    for kind, spec, known in (("model", model_spec, MODELS), ("guide", guide_spec, GUIDES)):
        spec_name = spec.get("name") if isinstance(spec, dict) else None
        if spec_name not in known:
            raise CheckpointError(
                f"checkpoint {name!r} holds a {kind} named {spec_name!r}, which this "
                f"pvae ({_versions()['pvae']}) does not have (it has {list(known)}); the "
                f"file was written by {_written_by(payload)}"
            )
    states = (payload["model_state"], payload["guide_state"])
    for key, kind in (("history", list), ("config", dict)):
        if not isinstance(payload[key], kind):
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: its {key!r} is a "
                f"{type(payload[key]).__name__}, not a {kind.__name__}"
            )
    # First on the meta device, which allocates nothing: a spec asking for more weights than
    # the file holds is refused before any memory is taken for them.
    with torch.device("meta"):
        specimen = _rebuild(name, payload, model_spec, guide_spec)
    for kind, module, state, spec in zip(
        ("model", "guide"), specimen, states, (model_spec, guide_spec), strict=True
    ):
        _check_state(name, f"{kind} spec {spec}", kind, module.state_dict(), state)
    dtypes = [t.dtype for state in states for t in state.values() if t.is_floating_point()]
    dtype = dtypes[0] if dtypes else torch.get_default_dtype()
    model, guide = (module.to(dtype) for module in _rebuild(name, payload, model_spec, guide_spec))
    for kind, module, state in (("model", model, states[0]), ("guide", guide, states[1])):
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint {name!r}: the {kind} weights do not match its {kind} spec "
                f"{model_spec if kind == 'model' else guide_spec}: {' '.join(str(error).split())}"
            ) from error
    model.eval()
    guide.eval()
    fit_state = payload.get("fit_state")
    if fit_state is not None:
        try:
            fit_state = FitState.from_dict(fit_state)
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {name!r} is damaged: its fit state is unreadable: {error}"
            ) from error
    return Checkpoint(
        model,
        guide,
        History(payload["history"]),
        payload["config"],
        _restored_optimizer_state(payload.get("optimizer_state", {}), model, guide),
        payload.get("versions", {}),
        fit_state,
    )


def _fit_state(value) -> FitState:
    if not isinstance(value, FitState):
        raise TypeError(
            f"fit_state must be a pvae.training.FitState (from fit's on_epoch_end), got "
            f"{type(value).__name__}"
        )
    return value
