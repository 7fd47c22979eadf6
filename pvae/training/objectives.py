"""The SVI objectives by name (``Trace_ELBO``, ``TraceMeanField_ELBO``, the IWAE bound) and the
KL weight β."""

from __future__ import annotations

import functools

from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.poutine.messenger import Messenger

from pvae.training.iwae import IWAE

__all__ = ["ELBOS", "IWAE_OBJECTIVES", "KLWeight"]

ELBOS = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "iwae": IWAE,
    "iwae-dreg": functools.partial(IWAE, dreg=True),
}
IWAE_OBJECTIVES = ("iwae", "iwae-dreg")  # K = num_particles; no KL weight


class KLWeight(Messenger):
    r"""Scale every *latent* sample site (model and guide) by β, leaving observed sites alone.

    Applied around both the model and the guide, it turns the ELBO into
    :math:`\mathbb{E}_q[\log p(x|z)] - \beta\,\mathrm{KL}(q \| p)` for ``Trace_ELBO`` and
    ``TraceMeanField_ELBO`` alike (a :func:`pyro.poutine.scale` restricted to latent sites).
    """

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.beta
