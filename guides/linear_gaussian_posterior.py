"""The exact posterior of the linear-Gaussian model, as a guide."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule

from pvae.models.linear_gaussian import LinearGaussian
from pvae.networks import unique_name

__all__ = ["LinearGaussianPosterior"]


class LinearGaussianPosterior(PyroModule):
    r"""Guide equal to the exact posterior of a :class:`~pvae.models.LinearGaussian` model [1]:

    .. math:: q(z \mid x) = p(z \mid x) = \mathcal{N}\big(M^{-1} W^\top (x - b),
        \sigma^2 M^{-1}\big), \qquad M = W^\top W + \sigma^2 I_q.

    Every importance weight then equals :math:`p(x)`, so an importance-sampled
    :math:`\log \hat p(x)` is exact for any number of samples and the ELBO equals
    :math:`\log p(x)`: the oracle pvae's estimators are tested against.

    The guide reads the model's current parameters and has none of its own; it does not own the
    model (saving the guide does not save the model).

    :param LinearGaussian model: the model whose posterior this is.

    References

    [1] Tipping, M. E. & Bishop, C. M. (1999). Probabilistic Principal Component Analysis.
        JRSS B 61(3).
    """

    def __init__(self, model: LinearGaussian):
        if not isinstance(model, LinearGaussian):
            raise TypeError(
                f"model must be a pvae.models.LinearGaussian, got {type(model).__name__}"
            )
        super().__init__(name=unique_name("LinearGaussianPosterior"))
        self.__dict__["model"] = model  # a reference, not a submodule: no shared state_dict
        self.data_dim = model.data_dim
        self.latent_dim = model.latent_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.model.posterior(x))
