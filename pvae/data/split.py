"""Train/held-out splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pvae.validation import (
    check_data,
    check_finite_float,
    check_float_dtype,
    check_labels,
    check_seed,
)

__all__ = ["Split", "check_split", "split", "subset"]


@dataclass
class Split:
    """A train/held-out split. ``*_labels`` are class labels where the data has them;
    ``noise_variance`` is the variance per pixel of the noise added to the data, where it is
    known (dequantized images: :func:`~pvae.data.images.dequantization_variance`), else
    ``None``. A decoder variance below it resolves a point more finely than its own noise."""

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    noise_variance: float | None = None

    @property
    def data_dim(self) -> int:
        """Entries per point, d (64 for the digits, flat or as 1×8×8 images): what bits per
        dimension divide by."""
        return self.train[0].numel()

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one point: ``(d,)`` for flat vectors, ``(1, height, width)`` for
        images."""
        return tuple(self.train.shape[1:])


def split(
    data: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Shuffle ``data`` (and ``labels``) with ``seed`` and hold out ``test_fraction`` of it.

    :param torch.Tensor data: ``(n, *event_shape)``, finite.
    :param labels: integer class labels, shape ``(n,)``, or ``None``.
    :param float test_fraction: held-out share, in (0, 1) (default 0.2).
    :param int seed: seed of the shuffle, in ``[0, 2**32 − 1]`` (default 0).
    """
    check_data(data, "data")
    if not 0 < check_finite_float(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    check_seed(seed)
    num_points = data.shape[0]
    num_test = round(test_fraction * num_points)
    if num_test in (0, num_points):
        raise ValueError(
            f"test_fraction={test_fraction} of {num_points} points leaves an empty split"
        )
    if labels is not None:
        check_labels(labels, num_points)
    order = torch.randperm(num_points, generator=torch.Generator().manual_seed(seed))
    test, train = order[:num_test], order[num_test:]
    return Split(
        train=data[train],
        test=data[test],
        train_labels=None if labels is None else labels[train],
        test_labels=None if labels is None else labels[test],
    )


def check_split(data, name: str = "data") -> Split:
    """Check that ``data`` is a :class:`Split` whose training points are finite floats and
    whose held-out points have their width and dtype (what an experiment given a split of
    its own needs before it trains on it)."""
    if not isinstance(data, Split):
        raise TypeError(f"{name} must be a pvae.data.Split, got {type(data).__name__}")
    check_data(data.train, f"{name}.train")
    check_float_dtype(data.train.dtype, f"{name}.train.dtype", allow_none=False)
    check_data(data.test, f"{name}.test", dim=data.data_dim)
    if data.test.dtype != data.train.dtype:
        raise TypeError(
            f"{name}.test has dtype {data.test.dtype} but {name}.train has {data.train.dtype}; "
            "convert one of them explicitly"
        )
    return data


def subset(data: Split, size: int | None, seed: int) -> Split:
    """At most ``size`` training and as many held-out points of ``data``, each a seeded
    random subset (``None``: all of them); labels and the noise variance are not carried."""

    def points(x: torch.Tensor) -> torch.Tensor:
        if size is None or size >= len(x):
            return x
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        return x[order[:size].to(x.device)]

    return Split(train=points(data.train), test=points(data.test))
