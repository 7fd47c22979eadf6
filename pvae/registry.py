"""Named model and guide builders: what the CLI offers and what checkpoints rebuild."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyro.nn import PyroModule

from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder
from pvae.validation import check_choice, check_positive_int, check_sizes

__all__ = ["GUIDES", "MODELS", "build_guide", "build_model", "compatible_guides"]


def _normal(variance: str, **defaults) -> Callable[..., PyroModule]:
    def build(data_dim, latent_dim, hidden_sizes, **options):
        from pvae.models import VAE

        decoder = NormalDecoder(
            latent_dim, data_dim, hidden_sizes, variance=variance, **{**defaults, **options}
        )
        return VAE(decoder)

    return build


def _bernoulli(data_dim, latent_dim, hidden_sizes):
    from pvae.models import VAE

    return VAE(BernoulliDecoder(latent_dim, data_dim, hidden_sizes))


def _continuous_bernoulli(data_dim, latent_dim, hidden_sizes):
    from pvae.models import VAE

    return VAE(ContinuousBernoulliDecoder(latent_dim, data_dim, hidden_sizes))


def _linear_gaussian(data_dim, latent_dim, hidden_sizes, **options):
    from pvae.models import LinearGaussian

    if hidden_sizes:
        raise ValueError(
            f"the linear-gaussian model has an affine decoder: hidden_sizes must be (), "
            f"got {hidden_sizes!r}"
        )
    return LinearGaussian(data_dim, latent_dim, **options)


#: name → (builder, one-line description)
MODELS: dict[str, tuple[Callable[..., PyroModule], str]] = {
    "normal-fixed": (_normal("fixed"), "Normal, fixed variance scale² (default 1)"),
    "normal-shared": (_normal("shared"), "Normal, one learned shared variance γ"),
    "normal-optimal": (_normal("optimal"), "Normal, closed-form optimal shared γ* (σ-VAE)"),
    "normal-network": (
        _normal("network"),
        "Normal, learned per-pixel variance network σ²(z), unconstrained (ill-posed)",
    ),
    "normal-floor": (
        _normal("network", variance_floor=1e-3),
        "Normal, per-pixel variance network with floor ξ (default 1e-3)",
    ),
    "bernoulli": (_bernoulli, "Bernoulli with logits (binary data only)"),
    "continuous-bernoulli": (
        _continuous_bernoulli,
        "continuous Bernoulli with logits (grey levels in [0, 1])",
    ),
    "linear-gaussian": (_linear_gaussian, "linear-Gaussian (pPCA), exact log p(x)"),
}


def _diag_normal(model, hidden_sizes, **options):
    from pvae.guides import DiagNormalGuide

    return DiagNormalGuide(model.data_dim, model.latent_dim, hidden_sizes, **options)


def _delta(model, hidden_sizes):
    from pvae.guides import DeltaGuide

    return DeltaGuide(model.data_dim, model.latent_dim, hidden_sizes)


def _per_point(model, hidden_sizes, data=None, num_points=None, **options):
    from pvae.guides import PerPointNormalGuide

    if hidden_sizes:
        raise ValueError(
            f"the per-point guide has no encoder network: hidden_sizes must be (), "
            f"got {hidden_sizes!r}"
        )
    if (data is None) == (num_points is None):
        raise ValueError(
            "the per-point guide needs data=<the training points> (or, when a checkpoint "
            "rebuilds it, num_points=<their number>), exactly one of the two"
        )
    if data is None:  # a placeholder of the right shape; load_state_dict fills in the points
        data = torch.zeros(check_positive_int(num_points, "num_points"), model.data_dim)
    return PerPointNormalGuide(data, model.latent_dim, **options)


def _exact(model, hidden_sizes):
    from pvae.guides import LinearGaussianPosterior

    return LinearGaussianPosterior(model)


GUIDES: dict[str, tuple[Callable[..., PyroModule], str]] = {
    "diag-normal": (_diag_normal, "amortized diagonal Normal, MLP encoder"),
    "delta": (_delta, "point mass at an MLP encoder's output (AE: kl_weight=0)"),
    "per-point": (_per_point, "free Normal (loc, scale) per training point (data=...)"),
    "exact": (_exact, "exact posterior (linear-gaussian model only)"),
}


def build_model(
    name: str, data_dim: int, latent_dim: int, hidden_sizes=(256,), **options
) -> PyroModule:
    """Build the model called ``name`` (see :data:`MODELS`), e.g.
    ``build_model("normal-floor", 64, 8, (256,), variance_floor=1e-2)``.

    The returned module carries ``pvae_spec``, what :func:`pvae.checkpoint.load` needs to build
    it again.
    """
    check_choice(name, "model", MODELS)
    check_positive_int(data_dim, "data_dim")
    check_positive_int(latent_dim, "latent_dim")
    hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
    model = MODELS[name][0](data_dim, latent_dim, hidden_sizes, **options)
    model.pvae_spec = {
        "name": name,
        "data_dim": data_dim,
        "latent_dim": latent_dim,
        "hidden_sizes": list(hidden_sizes),
        "options": dict(options),
    }
    return model


def compatible_guides(model: PyroModule) -> list[str]:
    """Names of the guides that can be built for ``model``."""
    from pvae.models import LinearGaussian

    return [name for name in GUIDES if name != "exact" or isinstance(model, LinearGaussian)]


def build_guide(name: str, model: PyroModule, hidden_sizes=(256,), **options) -> PyroModule:
    """Build the guide called ``name`` (see :data:`GUIDES`) for ``model``."""
    check_choice(name, "guide", GUIDES)
    if name not in compatible_guides(model):
        raise ValueError(
            f"guide {name!r} does not fit a {type(model).__name__} model; "
            f"choose one of {compatible_guides(model)}"
        )
    hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
    guide = GUIDES[name][0](model, hidden_sizes, **options)
    options = dict(options)
    if isinstance(options.get("data"), torch.Tensor):  # the points travel in the state dict
        options["num_points"] = options.pop("data").shape[0]
    guide.pvae_spec = {"name": name, "hidden_sizes": list(hidden_sizes), "options": options}
    return guide
