"""Named model and guide builders: what the CLI offers and what checkpoints rebuild."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import torch
from pyro.nn import PyroModule

from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder
from pvae.validation import (
    check_bool,
    check_choice,
    check_data,
    check_positive_float,
    check_positive_int,
    check_sizes,
)

__all__ = [
    "GUIDES",
    "GUIDE_OPTIONS",
    "MODELS",
    "MODEL_OPTIONS",
    "build_guide",
    "build_model",
    "compatible_guides",
]


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
    if "learn_variance" in options:
        check_bool(options["learn_variance"], "learn_variance")
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

#: name → the keyword options its builder takes (anything else is refused by name).
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "normal-fixed": ("scale",),
    "normal-shared": ("init_variance", "variance_floor"),
    "normal-optimal": ("variance_floor",),
    "normal-network": (),
    "normal-floor": ("variance_floor",),
    "bernoulli": (),
    "continuous-bernoulli": (),
    "linear-gaussian": ("variance", "learn_variance", "init_scale"),
}

#: Why an option that a model does not take is refused, where a neighbour takes it.
_OPTION_HINTS = {
    ("normal-network", "variance_floor"): "normal-network is the unconstrained per-pixel "
    "variance; for a floor ξ use normal-floor",
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
    else:  # the user's points (the placeholder needs no check, and may be on the meta device)
        check_data(data, "data", dim=model.data_dim)
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

#: name → the keyword options its builder takes.
GUIDE_OPTIONS: dict[str, tuple[str, ...]] = {
    "diag-normal": ("scale_floor",),
    "delta": (),
    "per-point": ("data", "num_points", "init_scale"),
    "exact": (),
}


def _check_options(kind: str, name: str, options: dict, allowed: tuple[str, ...]) -> None:
    for key in options:
        if key not in allowed:
            hint = _OPTION_HINTS.get((name, key))
            takes = f"its options are {list(allowed)}" if allowed else "it takes no options"
            raise ValueError(f"{kind} {name!r} has no option {key!r}; " + (hint or takes))


def build_model(
    name: str, data_dim: int, latent_dim: int, hidden_sizes=(256,), **options
) -> PyroModule:
    """Build the model called ``name`` (see :data:`MODELS`), e.g.
    ``build_model("normal-floor", 64, 8, (256,), variance_floor=1e-2)``.

    The returned module carries ``pvae_spec``, what :func:`pvae.checkpoint.load` needs to build
    it again.

    :param str name: a key of :data:`MODELS`.
    :param int data_dim: d ≥ 1.
    :param int latent_dim: q ≥ 1.
    :param hidden_sizes: decoder MLP hidden widths (``()`` for an affine decoder).
    :param options: the model's options, :data:`MODEL_OPTIONS` (e.g. ``scale`` for
        ``normal-fixed``, ``variance_floor`` ξ > 0 for ``normal-floor``).
    :raises ValueError: naming the argument, for an unknown name or option or a bad value.
    """
    check_choice(name, "model", MODELS)
    check_positive_int(data_dim, "data_dim")
    check_positive_int(latent_dim, "latent_dim")
    hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
    _check_options("model", name, options, MODEL_OPTIONS[name])
    if name == "normal-floor" and "variance_floor" in options:
        # A zero floor is normal-network under another name: the ill-posed model.
        check_positive_float(options["variance_floor"], "variance_floor")
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
    """Build the guide called ``name`` (see :data:`GUIDES`) for ``model``.

    :param str name: a key of :data:`GUIDES`.
    :param model: the model it is for, which states its ``data_dim`` and ``latent_dim`` (as
        every model of :func:`build_model` does).
    :param hidden_sizes: encoder MLP hidden widths (``()`` for ``per-point`` and ``exact``).
    :param options: the guide's options, :data:`GUIDE_OPTIONS` (``scale_floor`` for
        ``diag-normal``; ``data`` for ``per-point``).
    :raises TypeError: if ``model`` does not state an integer ``data_dim`` and ``latent_dim``.
    :raises ValueError: naming the argument, for an unknown name or option, a bad value, or a
        guide that does not fit ``model``.
    """
    check_choice(name, "guide", GUIDES)
    for attribute in ("data_dim", "latent_dim"):
        value = getattr(model, attribute, None)
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(
                f"model must state its {attribute} (an integer), as the models of "
                f"pvae.build_model do; got a {type(model).__name__} without one"
            )
    _check_options("guide", name, options, GUIDE_OPTIONS[name])
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
