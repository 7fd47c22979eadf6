"""Draws keyed to (seed, site, point, sample): estimates that do not depend on the passes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

__all__ = ["PARTICLE_PLATE", "SAMPLE_BLOCK", "CommonNoise"]

#: Importance samples per block of common random numbers (see :class:`CommonNoise`).
SAMPLE_BLOCK = 1024


PARTICLE_PLATE = "_pvae_particles"


class CommonNoise(Messenger):
    """Draw the proposal's latent values from noise keyed to (data point, sample index), so that
    log-weights do not depend on how points and samples are split into passes.

    A reparameterizable site (Normal, MultivariateNormal, and Independent, masked or transformed
    versions of these) is drawn as its own ``rsample`` would, from standard-normal noise in which
    the block ``b`` of ``block`` samples (``min(K, SAMPLE_BLOCK)``, so that small K draws no
    more than it needs) of point ``i`` comes from a :class:`torch.Generator` seeded by a hash of
    ``(seed, site, draw, i, b)``. Other
    distributions draw from torch's global RNG as usual (they are then not split-invariant).

    :param int seed: the key of this call's draws.
    :param points: global indices of the pass's points.
    :param int first: index of the pass's first sample; ``size`` samples per point.
    :param bool vectorized: samples on the ``_pvae_particles`` plate (else rows point-major).
    :param int block: samples per block of noise.
    """

    def __init__(
        self, seed: int, points: range, first: int, size: int, vectorized: bool, block: int
    ):
        super().__init__()
        self.seed, self.points, self.first, self.size = seed, points, first, size
        self.block = block
        self.vectorized = vectorized
        self.fallbacks: set[str] = set()
        self._draws: dict[str, int] = {}
        self._generator: torch.Generator | None = None

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(msg):
            return  # observed, replayed from the guide, or a plate's index
        fn = msg["fn"]
        frames = {frame.name: frame.dim for frame in msg["cond_indep_stack"]}
        batch = len(fn.batch_shape)
        if "data" not in frames or (self.vectorized and PARTICLE_PLATE not in frames):
            self.fallbacks.add(msg["name"])
            return
        data = batch + frames["data"]
        particles = batch + frames[PARTICLE_PLATE] if self.vectorized else None

        def noise(shape: torch.Size, like: torch.Tensor) -> torch.Tensor | None:
            return self._noise(msg["name"], shape, data, particles, like)

        value = _reparameterized(fn, noise)
        if value is None:
            self.fallbacks.add(msg["name"])
        else:
            msg["value"] = value

    def _noise(self, name, shape, data, particles, like) -> torch.Tensor | None:
        rows = len(self.points) * (1 if self.vectorized else self.size)
        if shape[data] != rows or (particles is not None and shape[particles] != self.size):
            return None
        rest = [size for dim, size in enumerate(shape) if dim not in (data, particles)]
        draw = self._draws.get(name, 0)
        self._draws[name] = draw + 1
        blocks = [self._point_noise(name, draw, i, rest, like) for i in self.points]
        noise = torch.stack(blocks)  # (points, samples, *rest)
        if self.vectorized:
            return noise.movedim((0, 1), (data, particles))
        return noise.reshape(rows, *rest).movedim(0, data)

    def _point_noise(self, name, draw, point, rest, like) -> torch.Tensor:
        """Samples ``first`` to ``first + size`` of ``point``'s noise, shape ``(size, *rest)``."""
        if self._generator is None:
            self._generator = torch.Generator(device=like.device)
        parts = []
        first_block = self.first // self.block
        last_block = (self.first + self.size - 1) // self.block
        for block in range(first_block, last_block + 1):
            key = f"{self.seed}/{name}/{draw}/{point}/{block}".encode()
            self._generator.manual_seed(
                int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
            )
            noise = torch.randn(
                self.block, *rest, generator=self._generator, dtype=like.dtype, device=like.device
            )
            low = max(self.first - block * self.block, 0)
            high = min(self.first + self.size - block * self.block, self.block)
            parts.append(noise[low:high])
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _reparameterized(fn, noise: Callable) -> torch.Tensor | None:
    """``fn.rsample()`` computed from ``noise(shape, like)`` (standard normal), or ``None`` where
    ``fn`` is not a distribution handled here or the noise does not fit its shape."""
    if isinstance(fn, (dist.Independent, dist.MaskedDistribution)):
        return _reparameterized(fn.base_dist, noise)
    if isinstance(fn, torch.distributions.Normal):
        eps = noise(fn.batch_shape, fn.loc)
        return None if eps is None else fn.loc + fn.scale * eps
    if isinstance(fn, torch.distributions.MultivariateNormal):
        eps = noise(fn.batch_shape + fn.event_shape, fn.loc)
        if eps is None:
            return None
        return fn.loc + (fn.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
    if isinstance(fn, torch.distributions.TransformedDistribution):
        value = _reparameterized(fn.base_dist, noise)
        if value is None:
            return None
        for transform in fn.transforms:
            value = transform(value)
        return value
    return None
