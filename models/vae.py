"""The variational autoencoder's generative model: a N(0, I) prior and a decoder likelihood."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from pvae.distributions import standard_normal
from pvae.networks import unique_name

__all__ = ["VAE"]


class VAE(PyroModule):
    r"""VAE generative model [1]:

    .. math::

        z &\sim \mathcal{N}(0, I_q), \\
        x &\sim p_\theta(x \mid z) = \texttt{decoder.x\_dist}(z).

    The decoder sets the likelihood, e.g. :class:`~pvae.likelihoods.NormalDecoder` with a fixed,
    shared, closed-form optimal or per-pixel variance (the last ill-posed [2] unless floored),
    or :class:`~pvae.likelihoods.BernoulliDecoder`::

        model = VAE(NormalDecoder(latent_dim=2, data_dim=64, variance="shared"))
        model = VAE(BernoulliDecoder(latent_dim=2, data_dim=64))

    Sites: ``"z"`` (latent, shape ``(n, q)``) and ``"x"`` (observed, shape ``(n, d)``) inside the
    plate ``"data"``, as the contract in :mod:`pvae.models` requires.

    :param decoder: a module with ``latent_dim``, ``data_dim`` and ``x_dist(z, x)``.

    References

    [1] Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR.
    [2] Mattei, P.-A. & Frellsen, J. (2018). Leveraging the Exact Likelihood of Deep Latent
        Variable Models. NeurIPS.
    """

    def __init__(self, decoder: PyroModule):
        super().__init__(name=unique_name("VAE"))
        self.decoder = decoder
        self.latent_dim = decoder.latent_dim
        self.data_dim = decoder.data_dim

    def check_data(self, x: torch.Tensor, name: str = "x") -> None:
        """Refuse data the likelihood cannot score (e.g. grey levels for a Bernoulli decoder),
        naming ``name`` and the first offending index. :func:`pvae.fit` and
        :func:`pvae.log_marginal` call this on the whole data before they start."""
        check = getattr(self.decoder, "check_data", None)
        if check is not None:
            check(x, name)

    def log_density_bound(self) -> float:
        """The largest log p(x) of one data point the likelihood allows (``inf`` if none): the
        decoder's :meth:`~pvae.likelihoods.NormalDecoder.log_density_bound`."""
        return self.decoder.log_density_bound()

    @property
    def variance_learned(self) -> bool | None:
        """Whether the decoder's variance is learned (``None``: the decoder has none)."""
        return getattr(self.decoder, "variance_learned", None)

    def z_dist(self, x: torch.Tensor) -> dist.Independent:
        """The prior N(0, I_q) of one latent code (the data plate broadcasts it)."""
        return standard_normal(x, self.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.z_dist(x))
            return pyro.sample("x", self.decoder.x_dist(z, x), obs=x)
