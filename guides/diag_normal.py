"""Amortized diagonal-Normal guide q(z | x) with an MLP encoder."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pvae.networks import NormalEncoder, unique_name
from pvae.validation import check_positive_int

__all__ = ["DiagNormalGuide"]


class DiagNormalGuide(PyroModule):
    r"""Amortized mean-field guide [1]:

    .. math:: q_\phi(z \mid x) = \mathcal{N}\big(z \mid \mu_\phi(x),
        \operatorname{diag} \sigma^2_\phi(x)\big),

    with :math:`(\mu_\phi, \sigma_\phi)` an MLP :class:`~pvae.networks.NormalEncoder` whose scales
    are positive by construction (softplus plus ``scale_floor``). Samples the site ``"z"`` inside
    the plate ``"data"``, matching :class:`~pvae.models.VAE`.

    :param int data_dim: ``d``.
    :param int latent_dim: ``q``.
    :param hidden_sizes: encoder MLP hidden widths (``()`` for an affine encoder).
    :param float scale_floor: the smallest encoder scale (default 1e-4).

    References

    [1] Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_sizes=(256,), scale_floor=1e-4):
        super().__init__(name=unique_name("DiagNormalGuide"))
        self.data_dim = check_positive_int(data_dim, "data_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.encoder = NormalEncoder(data_dim, latent_dim, hidden_sizes, scale_floor)

    def z_dist(self, x: torch.Tensor) -> dist.Independent:
        loc, scale = self.encoder(x)
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.z_dist(x))
