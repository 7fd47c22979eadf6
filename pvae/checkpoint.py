"""Checkpoints: a model, its guide, their training history and config in one file."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pyro.nn import PyroModule

from pvae.registry import build_guide, build_model

__all__ = ["Checkpoint", "CheckpointError", "load", "save"]

FORMAT = "pvae-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file is not a readable pvae checkpoint."""


@dataclass
class Checkpoint:
    """What :func:`load` returns: the rebuilt ``model`` and ``guide`` (weights loaded), the
    training ``history`` and the run's ``config``."""

    model: PyroModule
    guide: PyroModule
    history: list = field(default_factory=list)
    config: dict = field(default_factory=dict)


def _spec(module, name: str) -> dict:
    spec = getattr(module, "pvae_spec", None)
    if spec is None:
        raise ValueError(
            f"{name} was not built by pvae.build_model/build_guide, so a checkpoint could not "
            f"rebuild it; save its state_dict() with torch.save instead ({type(module).__name__})"
        )
    return spec


def save(path, model, guide, *, history=None, config=None) -> Path:
    """Write ``model``, ``guide`` (built by :func:`pvae.build_model` / :func:`pvae.build_guide`),
    their ``history`` and a JSON-like ``config`` to ``path``.

    The file is written to a temporary file beside ``path``, flushed to disk, then renamed over
    ``path``, so an interrupted save never leaves a half-written checkpoint.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_spec": _spec(model, "model"),
        "guide_spec": _spec(guide, "guide"),
        "model_state": model.state_dict(),
        "guide_state": guide.state_dict(),
        "history": [dict(record) for record in (history or [])],
        "config": dict(config or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save` and rebuild its model and guide.

    :raises FileNotFoundError: if ``path`` does not exist.
    :raises CheckpointError: if the file is truncated, corrupt or not a pvae checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} could not be read (truncated or not a torch file): {error}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pvae checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload.get('version')!r}; "
            f"this pvae reads version {VERSION}"
        )
    model_spec, guide_spec = payload["model_spec"], payload["guide_spec"]
    dtype = next(iter(payload["model_state"].values())).dtype
    model = build_model(
        model_spec["name"],
        model_spec["data_dim"],
        model_spec["latent_dim"],
        tuple(model_spec["hidden_sizes"]),
        **model_spec["options"],
    ).to(dtype)
    guide = build_guide(
        guide_spec["name"], model, tuple(guide_spec["hidden_sizes"]), **guide_spec["options"]
    ).to(dtype)
    try:
        model.load_state_dict(payload["model_state"])
        guide.load_state_dict(payload["guide_state"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match its model: {error}"
        ) from error
    return Checkpoint(model, guide, payload["history"], payload["config"])
