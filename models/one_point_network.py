"""A per-pixel variance network that reproduces one training point: log p(X) without bound."""

from __future__ import annotations

import torch

from pvae.likelihoods import NormalDecoder
from pvae.models.vae import VAE
from pvae.validation import check_data, check_nonnegative_float

__all__ = ["one_point_network"]


def one_point_network(
    points: torch.Tensor, *, sharpness: float, index: int = 0, variance_floor: float = 0.0
) -> VAE:
    r"""A :class:`~pvae.models.VAE` with a :class:`~pvae.likelihoods.NormalDecoder` of
    ``variance="network"``, one latent dimension and **two** hidden ReLU units, its weights
    set so that the mean sits on one training point while the variance of that point shrinks
    (Mattei & Frellsen's argument [1], in pvae's own trained family):

    .. math::

        \mu(z) = x_*, \qquad \log\sigma^2(z) = -k\,r(z), \qquad
        r(z) = \mathrm{relu}(z) - \mathrm{relu}(z - 1),

    a ramp from 0 (:math:`z \le 0`) to 1 (:math:`z \ge 1`); k is ``sharpness`` and
    :math:`x_*` = ``points[index]``. Where :math:`z \ge 1` (prior mass :math:`\Phi(-1)`) the
    decoder puts :math:`\mathcal N(x_*, e^{-k} I)`, so

    .. math::

        \log p(x_*) \ge \tfrac d2 k - \tfrac d2 \log 2\pi + \log \Phi(-1),

    and the ramp adds a share of order :math:`1/(dk)`: :math:`\log p(x_*)` rises with slope
    :math:`d/2` per unit of :math:`k = -\log\sigma^2`. Every other point keeps a density
    bounded below (the prior mass ½ where :math:`z \le 0` gives it
    :math:`\tfrac12\mathcal N(x_i \mid x_*, I)`) and above, so :math:`\log p(X)` also grows by
    :math:`d/2` per unit of k, without bound, while the model describes the data no better.
    With ``variance_floor`` ξ > 0 every variance is at least ξ and
    :math:`\log p(X) \le -\tfrac{nd}{2}\log 2\pi\xi` whatever k.

    :param torch.Tensor points: the training points, shape ``(n, d)``; the model takes their
        dtype and device.
    :param float sharpness: k ≥ 0.
    :param int index: the point the mean sits on (default 0).
    :param float variance_floor: ξ ≥ 0 (default 0: none).
    :returns: the model (parameters set, in eval mode).

    [1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS.
    """
    check_data(points, "points")
    sharpness = check_nonnegative_float(sharpness, "sharpness")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(points):
        raise ValueError(f"index must be an integer in [0, {len(points) - 1}], got {index!r}")
    d = points.shape[1]
    decoder = NormalDecoder(1, d, (2,), variance="network", variance_floor=variance_floor)
    decoder = decoder.to(points.device, points.dtype)
    first, _, last = decoder.net
    with torch.no_grad():
        first.weight.fill_(1.0)
        first.bias.copy_(first.bias.new_tensor([0.0, -1.0]))  # relu(z), relu(z - 1)
        last.weight.zero_()
        last.bias.zero_()
        last.bias[:d] = points[index]
        last.weight[d:] = last.weight.new_tensor([-sharpness, sharpness])
    return VAE(decoder).eval()
