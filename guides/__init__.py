"""Pyro guides (approximate posteriors) shipped with pvae, one per file.

A guide keeps the site contract stated in :mod:`pvae.models`: called as ``guide(x)``, it samples
every latent site of its model, under the same name, inside ``pyro.plate("data", x.shape[0])``,
and observes nothing.
"""

if __name__ != "pvae.guides":  # pragma: no cover - exercised from a subprocess in the tests
    raise ImportError(
        f"the folder 'guides/' is installed as 'pvae.guides', but was imported as {__name__!r} "
        "(probably from the repository root). Install pvae (see README.md) and use "
        "'import pvae.guides' so that every class exists once."
    )

from pvae.guides.diag_normal import DiagNormalGuide
from pvae.guides.linear_gaussian_posterior import LinearGaussianPosterior

__all__ = ["DiagNormalGuide", "LinearGaussianPosterior"]
