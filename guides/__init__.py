"""Pyro guides (approximate posteriors) shipped with pvae, one per file.

A guide keeps the site contract stated in :mod:`pvae.models`: called as ``guide(x)``, it samples
every latent site of its model, under the same name, inside ``pyro.plate("data", x.shape[0])``,
and observes nothing.
"""

from pvae.layout import require_installed_name

require_installed_name(__name__, "pvae.guides")

from pvae.guides.delta import DeltaGuide
from pvae.guides.diag_normal import DiagNormalGuide
from pvae.guides.linear_gaussian_posterior import LinearGaussianPosterior
from pvae.guides.one_dimensional import OneDimensionalGuide
from pvae.guides.per_point_normal import PerPointNormalGuide, exact_posterior_guide

__all__ = [
    "DeltaGuide",
    "DiagNormalGuide",
    "LinearGaussianPosterior",
    "OneDimensionalGuide",
    "PerPointNormalGuide",
    "exact_posterior_guide",
]
