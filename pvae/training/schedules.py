"""KL-weight schedules for :func:`~pvae.training.fit`: linear warm-up and cyclical annealing."""

from __future__ import annotations

from collections.abc import Callable

from pvae.validation import check_nonnegative_float, check_positive_float, check_positive_int

__all__ = ["kl_cyclical", "kl_warmup"]


def kl_warmup(epochs: int, start: float = 0.0) -> Callable[[int], float]:
    """A KL-weight schedule for :func:`fit`: β rises linearly from ``start`` at epoch 0 to 1 at
    epoch ``epochs`` and stays there (KL annealing / warm-up)."""
    check_positive_int(epochs, "epochs")
    if check_nonnegative_float(start, "start") > 1:
        raise ValueError(f"start must be in [0, 1], got {start!r}")

    def schedule(epoch: int) -> float:
        return min(1.0, start + (1.0 - start) * epoch / epochs)

    return schedule


def kl_cyclical(
    period: int, *, ramp: float = 0.5, cycles: int | None = None
) -> Callable[[int], float]:
    """A cyclical KL-weight schedule for :func:`fit` (Fu et al. [1]): every ``period`` epochs β
    rises linearly from 0 to 1 over the first ``ramp`` share of the period, then stays at 1
    until the period ends; after ``cycles`` periods (default: never) it stays at 1.

    [1] Fu, H., Li, C., Liu, X., Gao, J., Celikyilmaz, A. & Carin, L. (2019). Cyclical
        Annealing Schedule: A Simple Approach to Mitigating KL Vanishing. NAACL.
    """
    check_positive_int(period, "period")
    if not 0 < check_positive_float(ramp, "ramp") <= 1:
        raise ValueError(f"ramp must be in (0, 1], got {ramp!r}")
    if cycles is not None:
        check_positive_int(cycles, "cycles")

    def schedule(epoch: int) -> float:
        if cycles is not None and epoch >= cycles * period:
            return 1.0
        return min(1.0, (epoch % period) / (ramp * period))

    return schedule
