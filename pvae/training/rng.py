"""A forked RNG: work beside training (monitoring, callbacks) that leaves its draws unchanged."""

from __future__ import annotations

import torch

__all__ = ["forked_rng"]


def forked_rng(x: torch.Tensor):
    return torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else [])
