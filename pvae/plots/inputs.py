"""The figures' inputs: arrays, images and curves, checked and converted."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral

import numpy as np
import torch

from pvae.validation import check_positive_int

__all__ = [
    "check_array",
    "check_curve",
    "check_extent",
    "check_grid_size",
    "check_images",
    "check_label_array",
    "check_rows",
    "to_numpy",
]


def to_numpy(value, name: str) -> np.ndarray:
    """``value`` (a tensor, an array or nested sequences of numbers) as a float64 array,
    detached and on the CPU."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a tensor or an array of real numbers, got {type(value).__name__}"
        ) from None


def check_array(value, name: str, shape: str, ndim=(1,), *, finite: bool = True) -> np.ndarray:
    """``value`` as a non-empty float64 array with one of the ranks ``ndim``; ``shape`` names
    the expected shape in errors. With ``finite``, a NaN or inf entry is an error."""
    array = to_numpy(value, name)
    if array.ndim not in ndim:
        raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if finite and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))
        index = ", ".join(str(int(i)) for i in bad[0])
        raise ValueError(
            f"{name} contains a non-finite value {array[tuple(bad[0])]} at index [{index}] "
            f"({len(bad)} non-finite entries in all)"
        )
    return array


def check_images(images, name: str, image_shape, ndim=(2,)) -> np.ndarray:
    """Flat images ``(..., d)`` as an array ``(..., height, width)``, d = height × width."""
    if (
        not isinstance(image_shape, (tuple, list, torch.Size))
        or len(image_shape) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in image_shape)
        or min(image_shape) < 1
    ):
        raise ValueError(
            f"image_shape must be (height, width), two positive integers, got {image_shape!r}"
        )
    height, width = (int(s) for s in image_shape)
    shape = "(n, d)" if ndim == (2,) else "(steps, d) or (rows, steps, d)"
    array = check_array(images, name, shape, ndim)
    if array.shape[-1] != height * width:
        raise ValueError(
            f"{name} has {array.shape[-1]} pixels per image (shape {array.shape}), but "
            f"image_shape {tuple(image_shape)} has {height * width}"
        )
    return array.reshape(*array.shape[:-1], height, width)


def check_extent(extent) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(low, high)`` for both axes, or ``((low₁, high₁), (low₂, high₂))``."""
    message = (
        "extent must be (low, high) for both latent axes or ((low1, high1), (low2, high2)), "
        f"finite with low < high, got {extent!r}"
    )
    try:
        array = to_numpy(extent, "extent")
    except TypeError:
        raise ValueError(message) from None
    if array.shape == (2,):
        array = np.stack([array, array])
    if array.shape != (2, 2) or not np.isfinite(array).all() or (array[:, 0] >= array[:, 1]).any():
        raise ValueError(message)
    return (float(array[0, 0]), float(array[0, 1])), (float(array[1, 0]), float(array[1, 1]))


def check_rows(rows, name: str, keys: tuple[str, ...], source: str) -> list:
    """``rows`` as a non-empty list of dicts that each have ``keys``; ``source`` names the
    function whose output they should be."""
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"{name} must be a list of dicts ({source}), got {type(rows).__name__}")
    if not rows:
        raise ValueError(f"{name} is empty: nothing to plot")
    for i, row in enumerate(rows):
        missing = [key for key in keys if not isinstance(row, Mapping) or key not in row]
        if missing:
            raise ValueError(
                f"{name}[{i}] must be a dict with the keys {list(keys)} ({source}); it lacks "
                f"{missing}" + ("" if isinstance(row, Mapping) else f": got {row!r}")
            )
    return list(rows)


def check_curve(pair, name: str) -> None:
    """``pair`` = (x values, energies) of equal, non-zero length."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x values, energies), got {pair!r}")
    sizes = [len(check_array(values, name, "(n,)", finite=False)) for values in pair]
    if sizes[0] != sizes[1]:
        raise ValueError(
            f"{name} must pair as many x values as energies, got {sizes[0]} and {sizes[1]}"
        )


def check_grid_size(grid_size) -> int:
    if check_positive_int(grid_size, "grid_size") < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size!r}")
    return int(grid_size)


def check_label_array(labels, num_points: int) -> np.ndarray:
    array = check_array(labels, "labels", f"({num_points},)")
    if array.shape != (num_points,):
        raise ValueError(
            f"labels must have one entry per code, shape ({num_points},), got {array.shape}"
        )
    if not np.array_equal(array, np.round(array)):
        bad = int(np.argmax(array != np.round(array)))
        raise ValueError(f"labels must be integer class labels, got labels[{bad}] = {array[bad]}")
    return array.astype(np.int64)
