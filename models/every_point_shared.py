"""A shared-variance MLP that reproduces every training point: log p(X) without bound as γ → 0."""

from __future__ import annotations

import math

import torch

from pvae.likelihoods import NormalDecoder
from pvae.models.vae import VAE
from pvae.validation import check_data, check_nonnegative_float, check_positive_float

__all__ = ["every_point_shared"]


def every_point_shared(
    points: torch.Tensor,
    *,
    sharpness: float,
    variance_floor: float = 0.0,
    ramp_share: float = 0.1,
) -> VAE:
    r"""A :class:`~pvae.models.VAE` with a :class:`~pvae.likelihoods.NormalDecoder` of
    ``variance="shared"`` (one learned γ), one latent dimension and one hidden layer of
    :math:`2(n-1)` ReLU units, its weights set so that the mean reproduces each of the n
    training points exactly on an interval of z of prior mass about :math:`1/n` (Dai &
    Wipf's γ → 0 [1], in pvae's own trained family):

    .. math::

        \mu(z) = x_1 + \sum_{j=1}^{n-1} (x_{j+1} - x_j)\, r_j(z), \qquad
        r_j(z) = \frac{\mathrm{relu}(z - c_j + \delta/2) - \mathrm{relu}(z - c_j - \delta/2)}
        {\delta},

    with :math:`c_j = \Phi^{-1}(j/n)` and δ = ``ramp_share`` times the smallest gap between
    the :math:`c_j`: a staircase whose step j is :math:`x_j` on the plateau
    :math:`I_j = [c_{j-1} + \delta/2, c_j - \delta/2]` (prior mass :math:`P_j`, between
    :math:`(1 - \text{ramp\_share})/n` and :math:`1/n`). With :math:`\gamma = e^{-k}`
    (``sharpness`` k),

    .. math::

        \log p(x_j) \ge \tfrac d2 k - \tfrac d2 \log 2\pi + \log P_j,

    and the rest of the integral (the ramps, the other plateaus) vanishes relative to it as
    k grows, so each :math:`\log p(x_j)` rises with slope :math:`d/2` and :math:`\log p(X)`
    with slope :math:`nd/2` per unit of :math:`-\log\gamma`, without bound. One shared γ
    cannot single a point out, but a decoder that reproduces *every* point makes it collapse
    all the same. With ``variance_floor`` ξ > 0, :math:`\gamma \ge \xi` and
    :math:`\log p(X) \le -\tfrac{nd}{2}\log 2\pi\xi`.

    :param torch.Tensor points: the n ≥ 2 training points, shape ``(n, d)``, reproduced in
        this order along z; the model takes their dtype and device.
    :param float sharpness: k = −log γ (any real number; γ = 1 at 0).
    :param float variance_floor: ξ ≥ 0 (default 0: none).
    :param float ramp_share: δ as a share of the smallest gap between breakpoints, in (0, 1)
        (default 0.1).
    :returns: the model (parameters set, in eval mode).

    [1] Dai, B. & Wipf, D. (2019). Diagnosing and Enhancing VAE Models. ICLR.
    """
    check_data(points, "points")
    if len(points) < 2:
        raise ValueError(f"points must hold at least 2 points, got {len(points)}")
    if not (isinstance(sharpness, int | float) and math.isfinite(sharpness)):
        raise ValueError(f"sharpness must be a finite number, got {sharpness!r}")
    check_nonnegative_float(variance_floor, "variance_floor")
    if not 0 < check_positive_float(ramp_share, "ramp_share") < 1:
        raise ValueError(f"ramp_share must be in (0, 1), got {ramp_share!r}")
    n, d = points.shape
    normal = torch.distributions.Normal(0.0, 1.0)
    levels = torch.arange(1, n, dtype=torch.float64) / n
    breaks = normal.icdf(levels).to(points.device, points.dtype)
    gaps = breaks.diff()
    delta = ramp_share * float(gaps.min()) if n > 2 else ramp_share
    decoder = NormalDecoder(
        1, d, (2 * (n - 1),), variance="shared", variance_floor=variance_floor
    ).to(points.device, points.dtype)
    first, _, last = decoder.net
    steps = points.diff(dim=0).T / delta  # (d, n - 1)
    with torch.no_grad():
        first.weight.fill_(1.0)
        first.bias[0::2] = -(breaks - delta / 2)
        first.bias[1::2] = -(breaks + delta / 2)
        last.weight[:, 0::2] = steps
        last.weight[:, 1::2] = -steps
        last.bias.copy_(points[0])
        decoder.raw_log_variance.fill_(-float(sharpness))
    return VAE(decoder).eval()
