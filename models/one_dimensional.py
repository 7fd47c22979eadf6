"""A one-dimensional VAE whose log p(x) is known in closed form."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from pvae.distributions import standard_normal
from pvae.validation import check_data, check_finite_float, check_positive_float

__all__ = ["OneDimensional"]


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
