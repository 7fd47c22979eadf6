"""log p(x) of many points split into shards, each a Ray task: the same result as one call."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable

import pyro
import torch

from pvae.estimation.estimators import check_log_marginal_args, log_marginal
from pvae.estimation.result import ImportanceEstimate
from pvae.tasks import Task, check_ray_options, ray_session, run_tasks
from pvae.validation import KEY_LIMIT, check_bool, check_pair_data, check_positive_int, check_seed

__all__ = ["UnkeyedDrawsWarning", "estimate_shard", "sharded_log_marginal"]


class UnkeyedDrawsWarning(UserWarning):
    """:func:`sharded_log_marginal`'s proposal draws some latent sites from each task's own
    RNG, so the merged result is not the one a single :func:`log_marginal` call gives."""


def estimate_shard(
    model, guide, x: torch.Tensor, *, start: int, stop: int, param_state, options: dict
) -> ImportanceEstimate:
    """One shard of :func:`sharded_log_marginal` (a task): :func:`log_marginal` of
    ``x[start:stop]`` with ``first_point=start``, after loading ``param_state`` (the caller's
    Pyro parameter store, for pairs built on ``pyro.param``) into this process's store."""
    if param_state is not None:
        pyro.get_param_store().set_state(param_state)
    return log_marginal(model, guide, x[start:stop], first_point=start, progress=False, **options)


def sharded_log_marginal(
    model: Callable,
    guide: Callable | None,
    x: torch.Tensor,
    *,
    num_shards: int | None = None,
    seed: int | None = None,
    ray=True,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    progress: bool = True,
    **options,
) -> ImportanceEstimate:
    r""":func:`log_marginal` of ``x`` split into ``num_shards`` contiguous shards of points,
    each a task (:func:`pvae.tasks.run_tasks`; on Ray, each in a worker process of its own),
    merged into one :class:`ImportanceEstimate` (:meth:`ImportanceEstimate.concatenate`).

    The draws of point ``i`` are keyed to (``seed``, ``i``, sample index)
    (:class:`~pvae.estimation.common_noise.CommonNoise`) and shard ``x[a:b]`` is estimated
    with ``first_point=a``, so the result equals one ``log_marginal(model, guide, x,
    seed=seed, **options)`` up to float rounding in the passes' sums (measured: within
    1e-12 in float64, ``tests/test_ray.py``), for guides whose draws are all reparameterized
    Normals (the case :func:`log_marginal` makes independent of the passes); for others (a
    Laplace, a discrete site) an :class:`UnkeyedDrawsWarning` says so. With ``seed=None``
    one seed is drawn from torch's global RNG, as :func:`log_marginal` draws it, so that
    ``torch.manual_seed`` makes both calls the same.

    The pair and ``x`` are sent to every task (through Ray's object store once); so is the
    Pyro parameter store, for pairs that keep parameters there (``pyro.param``) rather than
    in modules. On a cluster, the pair's code must be importable on every node, or defined in
    ``__main__`` or a notebook (pickled by value).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide (``None`` for ``proposal="prior"``).
    :param torch.Tensor x: data, shape ``(n, d)``.
    :param int num_shards: shards of points (at most n); ``None`` (default): one per CPU
        that Ray offers (per ``cpus_per_task``), or 1 without Ray.
    :param int seed: the key of the draws (default ``None``: drawn from torch's global RNG).
    :param ray: ``True`` (default): Ray's default cluster (``RAY_ADDRESS``, one running on
        this machine, else a new local Ray; :class:`pvae.tasks.ray_session`); an address
        (``"auto"``, ``"ray://HOST:10001"``); ``None``: the shards one after another in this
        process (the same result, for testing a split without Ray).
    :param cpus_per_task: CPUs per shard on Ray (default 1).
    :param gpus_per_task: GPUs per shard on Ray (default 0).
    :param bool progress: a tqdm bar over the shards (default ``True``).
    :param options: the other arguments of :func:`log_marginal` (``num_samples``,
        ``chunk_size``, ``max_memory``, ``proposal``, ``return_log_weights``, ``vectorize``,
        ``obs_site``).
    :raises pvae.tasks.TasksFailed: if a shard failed twice; the finished shards' results
        are in its ``results``.
    """
    check_pair_data(model, guide, x, "x")
    if "first_point" in options:  # each shard's own
        raise ValueError(
            f"first_point is set by sharded_log_marginal itself (got "
            f"first_point={options['first_point']!r})"
        )
    check_ray_options(ray, cpus_per_task, gpus_per_task)
    check_bool(progress, "progress")
    if seed is not None:
        check_seed(seed, limit=KEY_LIMIT)
    else:
        seed = int(torch.randint(KEY_LIMIT, ()))  # as log_marginal draws it
    # Here, once, rather than in every shard's task, each tried twice.
    unkeyed = check_log_marginal_args(model, guide, x, seed=seed, **options)
    if unkeyed:
        warnings.warn(
            f"the proposal's sites {sorted(unkeyed)} are not reparameterized Normals: their "
            f"draws come from each shard's own RNG, not keyed to (seed, point, sample), so "
            f"the merged estimate is a valid one but not equal to one log_marginal call",
            UnkeyedDrawsWarning,
            stacklevel=2,
        )
    if num_shards is not None:
        check_positive_int(num_shards, "num_shards")
    num_points = x.shape[0]
    with ray_session(ray) as module:
        if num_shards is None:
            slots = 1 if module is None else module.cluster_resources().get("CPU", 1)
            num_shards = min(max(1, math.floor(slots / cpus_per_task)), num_points)
        if num_shards > num_points:
            raise ValueError(
                f"num_shards must be at most the number of points ({num_points}), got {num_shards}"
            )
        bounds = [round(num_points * i / num_shards) for i in range(num_shards + 1)]
        store = pyro.get_param_store()
        tasks = [
            Task(
                name=f"points {start}-{stop - 1}",
                fn=estimate_shard,
                kwargs={"start": start, "stop": stop},
                settings={"start": start, "stop": stop},
            )
            for start, stop in itertools.pairwise(bounds)
        ]
        shared = {
            "model": model,
            "guide": guide,
            "x": x,
            "param_state": store.get_state() if len(store) else None,
            "options": {**options, "seed": seed},
        }
        parts = run_tasks(
            tasks,
            shared=shared,
            ray=ray,
            cpus_per_task=cpus_per_task,
            gpus_per_task=gpus_per_task,
            progress=progress,
            desc="log p(x) shards",
        )
    return ImportanceEstimate.concatenate(parts)
