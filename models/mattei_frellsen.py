"""Mattei & Frellsen's construction: a decoder whose likelihood grows without bound."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from pvae.distributions import NormalLogVariance, standard_normal
from pvae.validation import check_data, check_nonnegative_float, check_positive_int

__all__ = ["MatteiFrellsen"]


class MatteiFrellsen(pyro.nn.PyroModule):
    r"""The degenerate decoder sequence of Mattei & Frellsen [1, Sec. 2.1], as a Pyro model.

    With :math:`z \sim \mathcal{N}(0, I_q)` and the half-space :math:`R = \{z : z_1 > 0\}` of
    prior mass :math:`P(R) = \tfrac12`, the decoder puts its mean on the training point
    :math:`x_i` inside :math:`R` with variance :math:`\sigma_k^2 = e^{-k}` and is
    :math:`\mathcal{N}(\bar x, I)` elsewhere (:math:`\bar x` the data mean):

    .. math:: p_k(x \mid z) = \begin{cases} \mathcal{N}(x \mid x_i, e^{-k} I_d) & z \in R, \\
        \mathcal{N}(x \mid \bar x, I_d) & z \notin R. \end{cases}

    The decoder is piecewise constant in :math:`z`, so the marginal is an exact two-component
    mixture, :meth:`log_prob`:

    .. math:: p_k(x_j) = \tfrac12 \mathcal{N}(x_j \mid x_i, e^{-k} I_d)
        + \tfrac12 \mathcal{N}(x_j \mid \bar x, I_d).

    **Slope.** For the chosen point, :math:`\mathcal{N}(x_i \mid x_i, e^{-k} I) =
    (2\pi)^{-d/2} e^{dk/2}`, so

    .. math:: \log p_k(x_i) = \log\tfrac12 - \tfrac d2 \log 2\pi + \tfrac d2 k
        + \log\big(1 + (2\pi)^{d/2} e^{-dk/2} \mathcal{N}(x_i \mid \bar x, I)\big),

    whose last term vanishes as :math:`k \to \infty`. For every other point
    :math:`x_j \ne x_i` the first component vanishes like :math:`e^{dk/2 - e^{k}\|x_j -
    x_i\|^2/2}` and :math:`\log p_k(x_j) \to \log \tfrac12 \mathcal{N}(x_j \mid \bar x, I)`, a
    constant. Hence :math:`\frac{d}{dk} \log p_k(x_1, \ldots, x_n) \to \frac d2`: the
    likelihood of the data set grows linearly in :math:`k = -\log \sigma_k^2`, slope
    :math:`d/2`, without bound, while the model has learned nothing about the other points.
    The KL term of an ELBO cannot stop it: the region :math:`R` keeps its prior mass.

    **Floor.** With ``variance_floor`` :math:`\xi \in (0, 1]` the variance in :math:`R` is
    :math:`\max(e^{-k}, \xi)`; every component density is then at most
    :math:`(2\pi\xi)^{-d/2}`, so :math:`\log p(x_1, \ldots, x_n) \le -\frac{nd}{2}\log(2\pi\xi)`
    for every :math:`k` [1].

    Log-variances throughout (:class:`NormalLogVariance`): stable for any :math:`k`.

    :param torch.Tensor data: the training data, shape ``(n, d)``.
    :param int point: the index :math:`i` of the point the decoder collapses on (default 0).
    :param float sharpness: :math:`k \ge 0` (default 0).
    :param float variance_floor: :math:`\xi \in [0, 1]` (default 0: no floor).
    :param int latent_dim: :math:`q` (default 1).

    References

    [1] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS.
    """

    def __init__(
        self,
        data: torch.Tensor,
        *,
        point: int = 0,
        sharpness: float = 0.0,
        variance_floor: float = 0.0,
        latent_dim: int = 1,
    ):
        super().__init__()
        check_data(data, "data")
        if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point < len(data):
            raise ValueError(
                f"point must be an index into data (0..{len(data) - 1}), got {point!r}"
            )
        check_nonnegative_float(sharpness, "sharpness")
        if not 0 <= check_nonnegative_float(variance_floor, "variance_floor") <= 1:
            raise ValueError(f"variance_floor must be in [0, 1], got {variance_floor!r}")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.register_buffer("spike", data[point].clone())
        self.register_buffer("center", data.mean(0))
        self.sharpness = float(sharpness)
        self.variance_floor = float(variance_floor)
        self.data_dim = data.shape[1]

    @property
    def spike_log_variance(self) -> float:
        """:math:`\\log \\max(e^{-k}, \\xi)`."""
        if self.variance_floor > 0:
            return max(-self.sharpness, math.log(self.variance_floor))
        return -self.sharpness

    def log_density_bound(self) -> float:
        """Per point :math:`-\\frac d2 \\log(2\\pi\\xi)` with a floor, else ``inf``."""
        if self.variance_floor == 0:
            return math.inf
        return -0.5 * self.data_dim * math.log(2 * math.pi * self.variance_floor)

    def x_dist(self, z: torch.Tensor) -> dist.Independent:
        in_region = (z[..., :1] > 0).expand(*z.shape[:-1], self.data_dim)
        loc = torch.where(in_region, self.spike, self.center)
        log_variance = torch.where(
            in_region, z.new_tensor(self.spike_log_variance), z.new_zeros(())
        )
        return NormalLogVariance(loc, log_variance).to_event(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", standard_normal(x, self.latent_dim))
            return pyro.sample("x", self.x_dist(z), obs=x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact :math:`\\log p_k(x)` of every row of ``x``, shape ``(n,)``."""
        check_data(x, "x", dim=self.data_dim)
        spike = NormalLogVariance(self.spike, x.new_tensor(self.spike_log_variance))
        rest = NormalLogVariance(self.center, x.new_zeros(()))
        components = torch.stack([spike.log_prob(x).sum(-1), rest.log_prob(x).sum(-1)], dim=-1)
        return torch.logsumexp(components, -1) - math.log(2)
