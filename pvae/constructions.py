"""Constructed models with known likelihoods: the Mattei–Frellsen degenerate decoder sequence
and the one-dimensional example, each with closed forms to check the estimators against."""

from __future__ import annotations

import math
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from pvae.priors import standard_normal
from pvae.validation import (
    check_data,
    check_finite_float,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)

__all__ = [
    "MatteiFrellsen",
    "NormalLogVariance",
    "OneDimensional",
    "OneDimensionalGuide",
]


class NormalLogVariance(TorchDistribution):
    r"""Diagonal Normal parameterized by its log-variance, exact for any log-variance.

    .. math:: \log \mathcal{N}(x \mid \mu, e^{v}) = -\tfrac12 \big(\log 2\pi + v
        + (x - \mu)^2 e^{-v}\big),

    with :math:`(x - \mu)^2 e^{-v} = 0` where :math:`x = \mu` exactly, so a log-variance of
    −1000 (a variance that underflows to 0) still gives the finite log-density
    :math:`-\tfrac12(\log 2\pi - 1000)` at the mean and :math:`-\infty` elsewhere.
    Batch shape is the broadcast shape of ``loc`` and ``log_variance``; no event dims (use
    ``.to_event``).
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "log_variance": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: torch.Tensor, log_variance: torch.Tensor, validate_args=None):
        self.loc, self.log_variance = torch.broadcast_tensors(loc, log_variance)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NormalLogVariance, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.log_variance = self.log_variance.expand(batch_shape)
        super(NormalLogVariance, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + torch.exp(0.5 * self.log_variance) * noise

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        difference = value - self.loc
        exact = difference == 0
        # Both branches of a where are differentiated: keep 0·inf out of the unused one too.
        safe_log_variance = torch.where(
            exact, torch.zeros_like(self.log_variance), self.log_variance
        )
        scaled = difference.pow(2) * torch.exp(-safe_log_variance)
        scaled = torch.where(exact, torch.zeros_like(scaled), scaled)
        return -0.5 * (math.log(2 * math.pi) + self.log_variance + scaled)


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


class OneDimensional(pyro.nn.PyroModule):
    r"""The one-dimensional example: one latent :math:`z \sim \mathcal{N}(0, 1)`, decoder
    :math:`x \mid z \sim \mathcal{N}(w z + b, 1/\lambda)`, usually fitted to the single data
    point :math:`x = 0`. Exactly:

    .. math::

        \log p(x) &= \log \mathcal{N}(x \mid b, w^2 + 1/\lambda), \\
        \mathrm{ELBO}(m, s) &= \tfrac12 \log\frac{\lambda}{2\pi}
            - \tfrac\lambda2\big((x - w m - b)^2 + w^2 s^2\big)
            - \tfrac12\big(m^2 + s^2 - \log s^2 - 1\big)

    for a guide :math:`q(z) = \mathcal{N}(m, s^2)`; the ELBO equals :math:`\log p(x)` at the
    exact posterior :math:`q = \mathcal{N}\big(\frac{\lambda w (x - b)}{1 + \lambda w^2},
    \frac{1}{1 + \lambda w^2}\big)`.

    As :math:`\lambda \to \infty`:

    - the identity decoder (:math:`w = 1, b = 0`) stays bounded:
      :math:`\log p(0) = -\tfrac12 \log 2\pi(1 + 1/\lambda) \to -\tfrac12 \log 2\pi`. Showing
      that *this* decoder is well behaved proves nothing about ill-posedness;
    - the decoder that ignores :math:`z` (:math:`w = 0, b = 0`) is unbounded:
      :math:`\log p(0) = \tfrac12 \log \frac{\lambda}{2\pi} \to \infty`, and its ELBO with
      :math:`q = p(z)` is the same, with KL = 0: the KL term cannot stop it.

    :param float weight: :math:`w`.
    :param float bias: :math:`b`.
    :param float precision: :math:`\lambda > 0`.
    """

    #: One data dimension and one latent dimension.
    data_dim = 1
    latent_dim = 1

    def __init__(self, weight: float, bias: float, precision: float):
        super().__init__()
        self.weight = check_finite_float(weight, "weight")
        self.bias = check_finite_float(bias, "bias")
        self.precision = check_positive_float(precision, "precision")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", standard_normal(x, 1))
            loc = self.weight * z + self.bias
            scale = x.new_tensor(self.precision**-0.5)
            return pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p(x)`, per row of ``x`` (shape ``(n, 1)``)."""
        check_data(x, "x", dim=1)
        variance = self.weight**2 + 1 / self.precision
        return dist.Normal(self.bias, math.sqrt(variance)).log_prob(x).sum(-1)

    def elbo(self, x: torch.Tensor, loc: float, scale: float) -> torch.Tensor:
        """Closed-form ELBO for the guide :math:`q(z) = \\mathcal{N}(\\text{loc},
        \\text{scale}^2)`, per row of ``x``."""
        check_data(x, "x", dim=1)
        check_finite_float(loc, "loc")
        check_positive_float(scale, "scale")
        residual = (x - self.weight * loc - self.bias).pow(2).sum(-1)
        spread = self.weight**2 * scale**2
        recon = 0.5 * math.log(self.precision / (2 * math.pi)) - 0.5 * self.precision * (
            residual + spread
        )
        kl = 0.5 * (loc**2 + scale**2 - math.log(scale**2) - 1)
        return recon - kl

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The exact posterior's mean (per row) and standard deviation."""
        check_data(x, "x", dim=1)
        precision = 1 + self.precision * self.weight**2
        loc = self.precision * self.weight * (x.sum(-1) - self.bias) / precision
        return loc, precision**-0.5


class OneDimensionalGuide(pyro.nn.PyroModule):
    """The guide :math:`q(z) = \\mathcal{N}(\\text{loc}, \\text{scale}^2)` for
    :class:`OneDimensional` (the same for every data point)."""

    def __init__(self, loc: float, scale: float):
        super().__init__()
        self.loc = check_finite_float(loc, "loc")
        self.scale = check_positive_float(scale, "scale")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            loc = x.new_full((1,), self.loc)
            return pyro.sample("z", dist.Normal(loc, self.scale).to_event(1))
