"""pvae: is maximum-likelihood training of a Gaussian VAE well-posed? Pyro model/guide pairs,
SVI training, and per-point marginal-likelihood estimates you can trust."""

from pvae.checkpoint import CheckpointError, load, save
from pvae.data import load_digits
from pvae.gradients import gradient_variance
from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder
from pvae.marginal import (
    ContractError,
    ImportanceEstimate,
    bits_per_dim,
    elbo_per_point,
    elbo_terms,
    iwae_bound,
    log_marginal,
)
from pvae.registry import build_guide, build_model
from pvae.training import FitState, History, NonFiniteError, fit, kl_cyclical, kl_warmup

__version__ = "0.1.0"

__all__ = [
    "BernoulliDecoder",
    "CheckpointError",
    "ContinuousBernoulliDecoder",
    "ContractError",
    "FitState",
    "History",
    "ImportanceEstimate",
    "NonFiniteError",
    "NormalDecoder",
    "bits_per_dim",
    "build_guide",
    "build_model",
    "elbo_per_point",
    "elbo_terms",
    "fit",
    "gradient_variance",
    "iwae_bound",
    "kl_cyclical",
    "kl_warmup",
    "load",
    "load_digits",
    "log_marginal",
    "save",
]
