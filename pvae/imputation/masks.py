"""Masks of observed entries: checked against the data, and the ones the experiments use."""

from __future__ import annotations

import math

import torch

from pvae.validation import check_choice, check_seed

__all__ = ["MASK_PATTERNS", "check_mask", "make_mask", "mask_from_nan"]

#: The missingness patterns of :func:`make_mask` (Mattei & Frellsen's experiments): entries
#: missing at random, or the top or bottom half of each image missing.
MASK_PATTERNS = ("random", "top", "bottom")


def check_mask(mask, x: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Check that ``mask`` marks the observed entries of ``x``: a ``torch.bool`` tensor of
    ``x``'s shape and device, with at least one observed entry in every point, and ``x``
    finite wherever it is observed.

    :returns: ``mask`` itself (a 0/1 float or int mask is refused, not converted).
    :raises TypeError: if ``mask`` is not a bool tensor.
    :raises ValueError: on a wrong shape or device, a point with no observed entry, or a
        non-finite observed entry, naming the first such point.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of dtype torch.bool (True where observed), got "
            f"{type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must have dtype torch.bool (True where observed), got {mask.dtype}; "
            f"convert it explicitly, e.g. {name} == 1"
        )
    if mask.shape != x.shape:
        raise ValueError(
            f"{name} must have the data's shape {tuple(x.shape)} (one flag per entry), got "
            f"shape {tuple(mask.shape)}"
        )
    if mask.device != x.device:
        raise ValueError(f"{name} is on {mask.device}, the data on {x.device}")
    observed = mask.reshape(mask.shape[0], -1).any(-1)
    if not bool(observed.all()):
        point = int((~observed).nonzero()[0])
        count = int((~observed).sum())
        raise ValueError(
            f"{name} marks every entry of point {point} missing ({count} such point(s)): "
            "imputation conditions on the observed entries, and there are none (such a "
            "point's imputation would be a draw from the model's p(x); sample the model "
            "instead, or drop the point)"
        )
    finite = torch.isfinite(x) | ~mask
    if not bool(finite.all()):
        index = [int(i) for i in (~finite).nonzero()[0]]
        raise ValueError(
            f"x has a non-finite value {x[tuple(index)].item()} at index {index}, which "
            f"{name} marks observed; mark it missing (False) or give its value"
        )
    return mask


def mask_from_nan(x: torch.Tensor) -> torch.Tensor:
    """The mask of the entries of ``x`` that are not NaN (what ``pvae impute`` reads from an
    ``.npy`` file whose missing entries are NaN)."""
    return ~torch.isnan(x)


def make_mask(
    shape: tuple[int, ...],
    pattern: str = "random",
    *,
    fraction: float = 0.5,
    image_shape: tuple[int, int] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A mask of ``shape`` ``(n, *event_shape)`` (``True`` where observed) in one of
    :data:`MASK_PATTERNS`:

    - ``"random"``: each point misses ``round(fraction · d)`` of its ``d`` entries, chosen
      uniformly at random for each point from ``torch.Generator().manual_seed(seed)``
      (missing completely at random);
    - ``"top"`` / ``"bottom"``: the top or bottom half of the rows of every image is missing
      (``image_shape`` = (height, width) of the flattened images, or the event's last two
      dimensions where the points are images; an odd height misses the middle row too).

    :raises ValueError: on an unknown pattern, a ``fraction`` outside (0, 1), or an
        ``image_shape`` that does not fit.
    """
    check_choice(pattern, "pattern", MASK_PATTERNS)
    check_seed(seed)
    n, event = shape[0], tuple(shape[1:])
    size = math.prod(event)
    if pattern == "random":
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"fraction must be a float in (0, 1), got {fraction!r}")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
        missing = round(fraction * size)
        if not 0 < missing < size:
            raise ValueError(
                f"fraction={fraction!r} of {size} entries leaves {missing} missing; it must "
                "leave at least one entry missing and one observed"
            )
        generator = torch.Generator().manual_seed(seed)
        ranks = torch.rand(n, size, generator=generator).argsort(-1).argsort(-1)
        return (ranks >= missing).reshape(shape)
    if image_shape is None:
        if len(event) < 2:
            raise ValueError(
                f"pattern={pattern!r} needs image_shape=(height, width) for flat points of "
                f"shape {event}"
            )
        image_shape = event[-2:]
    height, width = image_shape
    if height * width == 0 or size % (height * width):
        raise ValueError(f"image_shape={tuple(image_shape)} does not tile points of shape {event}")
    if height < 2:
        raise ValueError(f"image_shape={tuple(image_shape)} has no half to take away")
    rows = torch.arange(height).unsqueeze(-1).expand(height, width)
    observed = rows >= (height + 1) // 2 if pattern == "top" else rows < height // 2
    return observed.reshape(-1).repeat(size // (height * width)).expand(n, size).reshape(shape)
