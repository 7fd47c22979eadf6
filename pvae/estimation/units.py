"""log p(x) in nats per point as bits per dimension."""

from __future__ import annotations

import math
import numbers

import torch

from pvae.validation import check_num_levels, check_positive_int

__all__ = ["bits_per_dim"]


def bits_per_dim(log_px, data_dim: int, *, num_levels: int | None = None) -> torch.Tensor | float:
    r"""Convert :math:`\log p(x)` in nats per point to bits per dimension.

    For a discrete likelihood (e.g. Bernoulli on binary pixels), ``num_levels=None``:
    :math:`-\log p(x) / (d \ln 2)`. For a density on data dequantized from ``num_levels``
    grey levels to :math:`(x + u) / L \in [0, 1)` (:func:`pvae.data.from_levels` with
    ``dequantize=True``), each pixel's bin has width :math:`1/L`, so

    .. math:: \text{bits/dim} = -\frac{\log p(x)}{d \ln 2} + \log_2 L,

    an upper bound on the bits/dim of the discrete model that integrates the density over the
    bins [1]. Only numbers on the same data (same levels, same pixels) can be compared: uniform
    pixels cost :math:`\log_2 L` bits/dim (4.09 for 17 levels, 1 for binary data).

    :param log_px: log-likelihoods in nats per point (a float or tensor).
    :param int data_dim: d, the pixels per point.
    :param int num_levels: L for dequantized data, or ``None`` for a discrete likelihood.

    [1] Theis, L., van den Oord, A. & Bethge, M. (2016). A note on the evaluation of generative
        models. ICLR.
    """
    if isinstance(log_px, bool) or not isinstance(log_px, numbers.Real | torch.Tensor):
        raise TypeError(f"log_px must be a number or a tensor, got {type(log_px).__name__}")
    check_positive_int(data_dim, "data_dim")
    offset = 0.0
    if num_levels is not None:
        offset = math.log2(check_num_levels(num_levels))
    return -log_px / (data_dim * math.log(2)) + offset
