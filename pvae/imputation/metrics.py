"""How far imputations are from the truth: error on the missing entries, F1 on binary data,
and paired differences of two imputations of the same points."""

from __future__ import annotations

import math

import torch

__all__ = ["MEASURES", "imputation_difference", "imputation_error", "imputation_f1"]

#: The error measures of :func:`imputation_difference`.
MEASURES = ("rmse", "f1")


def _check(imputed: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    for name, value in (("imputed", imputed), ("truth", truth)):
        if not isinstance(value, torch.Tensor) or value.shape != mask.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must have the mask's shape {tuple(mask.shape)}, got {shape}")
    missing = ~mask.reshape(mask.shape[0], -1)
    if not bool(missing.any(-1).all()):
        point = int((~missing.any(-1)).nonzero()[0])
        raise ValueError(f"mask leaves nothing missing in point {point}: no error to measure")
    return missing


def _point_rmse(imputed, truth, mask) -> torch.Tensor:
    missing = _check(imputed, truth, mask)
    squares = (imputed - truth).reshape(missing.shape).square().where(missing, 0.0)
    return (squares.sum(-1) / missing.sum(-1)).sqrt()


def _counts(imputed, truth, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per point, the true positives, false positives and false negatives among the missing
    entries of binary imputations."""
    missing = _check(imputed, truth, mask)
    flat = {"imputed": imputed.reshape(missing.shape), "truth": truth.reshape(missing.shape)}
    for name, value in flat.items():
        outside = missing & (value != 0) & (value != 1)
        if bool(outside.any()):
            raise ValueError(f"{name} must be 0 or 1 at every missing entry (binary data)")
    predicted = (flat["imputed"] == 1) & missing
    actual = (flat["truth"] == 1) & missing
    return (
        (predicted & actual).sum(-1).double(),
        (predicted & ~actual).sum(-1).double(),
        (~predicted & actual).sum(-1).double(),
    )


def _f1(counts) -> torch.Tensor:
    true_pos, false_pos, false_neg = counts
    return 2 * true_pos / (2 * true_pos + false_pos + false_neg)


def _pooled(counts) -> torch.Tensor:
    return _f1(tuple(c.sum() for c in counts))


def _left_out(counts) -> torch.Tensor:
    """The pooled F1 with each point left out in turn."""
    return _f1(tuple(c.sum() - c for c in counts))


def _jackknife(values: torch.Tensor) -> float:
    n = values.numel()
    return math.sqrt((n - 1) / n * float((values - values.mean()).square().sum()))


def imputation_error(
    imputed: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float]:
    """Each point's root mean squared error over its missing entries, averaged over the
    points, and the standard error of that average across points.

    :param imputed: single imputations (e.g. :attr:`Imputation.mean`), shape ``(n, ...)``.
    :param truth: the complete data, the same shape.
    :param mask: ``True`` where observed; every point must miss an entry.
    :returns: ``(mean RMSE, its standard error across points)`` (``nan`` for one point).
    """
    per_point = _point_rmse(imputed, truth, mask)
    n = per_point.numel()
    stderr = float(per_point.std() / math.sqrt(n)) if n > 1 else math.nan
    return float(per_point.mean()), stderr


def imputation_f1(
    imputed: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor
) -> tuple[float, float]:
    """The F1 score of binary imputations over every missing entry (ones as positives), and
    its jackknife standard error over points (leave one point out).

    :param imputed: imputations in {0, 1} (e.g. :attr:`Imputation.mode`), shape ``(n, ...)``.
    :param truth: the complete binary data, the same shape.
    :param mask: ``True`` where observed.
    :returns: ``(F1, its standard error)``; F1 is ``nan`` where no entry is positive in
        either.
    :raises ValueError: if ``imputed`` or ``truth`` hold a value other than 0 and 1 at a
        missing entry.
    """
    counts = _counts(imputed, truth, mask)
    score = float(_pooled(counts))
    if counts[0].numel() < 2:
        return score, math.nan
    return score, _jackknife(_left_out(counts))


def imputation_difference(
    first: torch.Tensor,
    second: torch.Tensor,
    truth: torch.Tensor,
    mask: torch.Tensor,
    measure: str,
) -> tuple[float, float]:
    """The paired difference ``first − second`` of two imputations of the same points, and
    its standard error: for ``measure="rmse"`` the mean over points of the difference of
    their RMSEs (:func:`imputation_error`) ± its se across points; for ``"f1"`` the difference
    of the pooled F1 scores (:func:`imputation_f1`) ± its jackknife se over points. Pairing
    removes the spread between points that both share.

    :returns: ``(difference, its standard error)`` (``nan`` for one point).
    :raises ValueError: on an unknown ``measure``, or inputs as the two measures refuse them.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if measure == "rmse":
        gaps = _point_rmse(first, truth, mask) - _point_rmse(second, truth, mask)
        n = gaps.numel()
        return float(gaps.mean()), float(gaps.std() / math.sqrt(n)) if n > 1 else math.nan
    ours, theirs = _counts(first, truth, mask), _counts(second, truth, mask)
    difference = float(_pooled(ours) - _pooled(theirs))
    if ours[0].numel() < 2:
        return difference, math.nan
    return difference, _jackknife(_left_out(ours) - _left_out(theirs))
