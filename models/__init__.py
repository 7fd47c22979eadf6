"""Pyro models (generative programs) shipped with pvae, one per file.

The site contract
-----------------
Every tool in :mod:`pvae` (``fit``, ``log_marginal``, ``elbo_per_point``, the CLI) works on any
model/guide pair, :class:`~pyro.nn.PyroModule` or plain function, that keeps this contract:

1. Both are called as ``model(x)`` and ``guide(x)`` with ``x`` a ``(batch, *event_shape)``
   tensor: flat vectors ``(batch, data_dim)`` (pvae's own models) or images
   ``(batch, channels, height, width)`` for a convolutional pair.
2. Every per-point site sits inside ``pyro.plate("data", x.shape[0])``, the batch plate, with
   the data points on its rightmost batch dimension (``dim=-1``).
3. The model observes the data at one sample site inside the data plate (``obs=x``), with one
   log-density per data point (``.to_event(len(event_shape))``: ``.to_event(1)`` over flat
   pixels, ``.to_event(3)`` over ``(channels, height, width)``). Its name is
   free: pvae's models call it ``"x"``, Pyro's VAE example ``"obs"``; the tools find it in the
   trace (:func:`pvae.contract.observed_site`). A model may observe several sites there (parts
   of ``x``, or ``x`` twice): log p̂ and the bounds sum every one, every one's support is
   checked, and ``obs_site=`` on the tools (or :func:`pvae.contract.observing` around a block)
   names the one whose likelihood the diagnostics read (its variance, its mean); without it
   such a model is refused with the list of its observed sites.
4. The latent sites (one or more) are sampled by the model (their prior) and by the guide (the
   approximate posterior) under the same names, also free (``"z"``, ``"latent"``, ...); each
   has one value per data point. A diagnostic of one latent site reads the guide's only one
   unless told which (``site=``), and an unknown name is refused with the list of them.

Data points must be conditionally independent given the parameters: pvae evaluates points
(and importance samples) by stacking them along the data plate.
"""

from pvae.layout import require_installed_name

require_installed_name(__name__, "pvae.models")

from pvae.models.every_point_shared import every_point_shared
from pvae.models.linear_gaussian import LinearGaussian
from pvae.models.mattei_frellsen import MatteiFrellsen
from pvae.models.one_dimensional import OneDimensional
from pvae.models.one_point_network import one_point_network
from pvae.models.vae import VAE

__all__ = [
    "VAE",
    "LinearGaussian",
    "MatteiFrellsen",
    "OneDimensional",
    "every_point_shared",
    "one_point_network",
]
