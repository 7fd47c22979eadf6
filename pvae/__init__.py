"""pvae: is maximum-likelihood training of a Gaussian VAE well-posed? Pyro model/guide pairs,
SVI training, and per-point marginal-likelihood estimates you can trust."""

# First, before torch and Pyro load: a Ctrl-C while the pvae command starts reads as one line.
from pvae.startup import catch_interrupt_while_starting

catch_interrupt_while_starting()

from pvae.checkpoint import CheckpointError, load, save
from pvae.contract import ContractError
from pvae.data.images import load_digits
from pvae.diagnostics.gradients import gradient_variance
from pvae.estimation.ais import AISEstimate, BDMCResult, ais, bdmc
from pvae.estimation.compare import paired_difference, unpaired_difference
from pvae.estimation.estimators import elbo_per_point, iwae_bound, log_marginal
from pvae.estimation.kcurve import KCurve, k_curve
from pvae.estimation.quadrature import QuadratureEstimate, log_marginal_quadrature
from pvae.estimation.result import ImportanceEstimate
from pvae.estimation.sharded import sharded_log_marginal
from pvae.estimation.terms import elbo_terms
from pvae.estimation.units import bits_per_dim
from pvae.finite import NonFiniteDensityError
from pvae.imputation import Imputation, impute, make_mask
from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder
from pvae.registry import build_guide, build_model
from pvae.training.fit import fit
from pvae.training.nonfinite import NonFiniteError
from pvae.training.schedules import kl_cyclical, kl_warmup
from pvae.training.state import FitState, History
from pvae.training.tune import tune_trainable
from pvae.version import __version__ as __version__

__all__ = [
    "AISEstimate",
    "BDMCResult",
    "BernoulliDecoder",
    "CheckpointError",
    "ContinuousBernoulliDecoder",
    "ContractError",
    "FitState",
    "History",
    "ImportanceEstimate",
    "Imputation",
    "KCurve",
    "NonFiniteDensityError",
    "NonFiniteError",
    "NormalDecoder",
    "QuadratureEstimate",
    "ais",
    "bdmc",
    "bits_per_dim",
    "build_guide",
    "build_model",
    "elbo_per_point",
    "elbo_terms",
    "fit",
    "gradient_variance",
    "impute",
    "iwae_bound",
    "k_curve",
    "kl_cyclical",
    "kl_warmup",
    "load",
    "load_digits",
    "log_marginal",
    "log_marginal_quadrature",
    "make_mask",
    "paired_difference",
    "save",
    "sharded_log_marginal",
    "tune_trainable",
    "unpaired_difference",
]
