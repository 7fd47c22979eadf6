"""Estimation: per-point log p(x) by importance sampling, AIS, BDMC and quadrature; ELBO and
IWAE bounds, k̂."""

from pvae.estimation.ais import AISEstimate, BDMCResult, ais, bdmc
from pvae.estimation.compare import paired_difference, unpaired_difference
from pvae.estimation.estimators import elbo_per_point, iwae_bound, log_marginal
from pvae.estimation.kcurve import KCurve, k_curve
from pvae.estimation.meanfield import MeanFieldWarning, mean_field_bias
from pvae.estimation.memory import parse_memory, peak_memory
from pvae.estimation.psis import psis_khat
from pvae.estimation.quadrature import QuadratureEstimate, log_marginal_quadrature
from pvae.estimation.result import ImportanceEstimate
from pvae.estimation.sharded import UnkeyedDrawsWarning, sharded_log_marginal
from pvae.estimation.terms import elbo_terms
from pvae.estimation.units import bits_per_dim

__all__ = [
    "AISEstimate",
    "BDMCResult",
    "ImportanceEstimate",
    "KCurve",
    "MeanFieldWarning",
    "QuadratureEstimate",
    "UnkeyedDrawsWarning",
    "ais",
    "bdmc",
    "bits_per_dim",
    "elbo_per_point",
    "elbo_terms",
    "iwae_bound",
    "k_curve",
    "log_marginal",
    "log_marginal_quadrature",
    "mean_field_bias",
    "paired_difference",
    "parse_memory",
    "peak_memory",
    "psis_khat",
    "sharded_log_marginal",
    "unpaired_difference",
]
