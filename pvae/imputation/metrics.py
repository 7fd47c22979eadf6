"""How far imputations are from the truth: error on the missing entries, F1 on binary data."""

from __future__ import annotations

import math

import torch

__all__ = ["imputation_error", "imputation_f1"]


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
    missing = _check(imputed, truth, mask)
    squares = (imputed - truth).reshape(missing.shape).square().where(missing, 0.0)
    per_point = (squares.sum(-1) / missing.sum(-1)).sqrt()
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
    missing = _check(imputed, truth, mask)
    flat = {"imputed": imputed.reshape(missing.shape), "truth": truth.reshape(missing.shape)}
    for name, value in flat.items():
        outside = missing & (value != 0) & (value != 1)
        if bool(outside.any()):
            raise ValueError(f"{name} must be 0 or 1 at every missing entry (binary data)")
    predicted = (flat["imputed"] == 1) & missing
    actual = (flat["truth"] == 1) & missing
    true_pos = (predicted & actual).sum(-1).double()
    false_pos = (predicted & ~actual).sum(-1).double()
    false_neg = (~predicted & actual).sum(-1).double()

    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn)

    score = float(f1(true_pos.sum(), false_pos.sum(), false_neg.sum()))
    n = true_pos.numel()
    if n < 2:
        return score, math.nan
    left_out = f1(
        true_pos.sum() - true_pos, false_pos.sum() - false_pos, false_neg.sum() - false_neg
    )
    stderr = math.sqrt((n - 1) / n * float((left_out - left_out.mean()).square().sum()))
    return score, stderr
