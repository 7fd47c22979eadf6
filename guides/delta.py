"""Deterministic (delta) encoder q(z | x) = δ(z − f(x)): the autoencoder's encoder as a guide."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pvae.networks import MLP, unique_name
from pvae.validation import check_positive_int

__all__ = ["DeltaGuide"]


class DeltaGuide(PyroModule):
    r"""Amortized point-mass guide

    .. math:: q_\phi(z \mid x) = \delta\big(z - f_\phi(x)\big),

    with :math:`f_\phi` an MLP :class:`~pvae.networks.MLP`. Samples the site ``"z"`` inside the
    plate ``"data"``, so it pairs with any model keeping the site contract of
    :mod:`pvae.models`.

    With the KL weight set to zero (``pvae.fit(model, DeltaGuide(...), x, kl_weight=0)``) the
    objective is the autoencoder's, :math:`\sum_i \log p_\theta(x_i \mid f_\phi(x_i))`: for a
    Normal decoder with a shared variance, minimising the squared reconstruction error. This is
    the AE of Dai et al.'s AE-versus-VAE comparison [1, Sec. 6]. With weight one the objective
    is :math:`\sum_i \log p(x_i \mid z_i) + \log p(z_i)` at :math:`z_i = f_\phi(x_i)` (a point
    mass has no entropy), a MAP autoencoder, not an ELBO.

    A point mass has no density with respect to Lebesgue measure, so importance sampling with
    this guide (:func:`pvae.log_marginal`) is not meaningful; use it to train and reconstruct.

    :param int data_dim: ``d``.
    :param int latent_dim: ``q``.
    :param hidden_sizes: encoder MLP hidden widths (``()`` for an affine encoder).

    References

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_sizes=(256,)):
        super().__init__(name=unique_name("DeltaGuide"))
        self.data_dim = check_positive_int(data_dim, "data_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.encoder = MLP(data_dim, latent_dim, hidden_sizes)

    def z_dist(self, x: torch.Tensor) -> dist.Delta:
        return dist.Delta(self.encoder(x), event_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.z_dist(x))
