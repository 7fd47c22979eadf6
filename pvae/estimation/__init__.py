"""Estimation: per-point importance-sampled log p(x), ELBO and IWAE bounds, k̂."""

from pvae.estimation.common_noise import PARTICLE_PLATE, SAMPLE_BLOCK, CommonNoise
from pvae.estimation.estimators import PROPOSALS, elbo_per_point, iwae_bound, log_marginal
from pvae.estimation.memory import parse_memory, peak_memory
from pvae.estimation.passes import CPU_PASS_BYTES, DEFAULT_MAX_MEMORY, iter_log_weights
from pvae.estimation.psis import psis_khat
from pvae.estimation.result import ImportanceEstimate
from pvae.estimation.terms import elbo_terms, min_variance
from pvae.estimation.units import bits_per_dim

__all__ = [
    "CPU_PASS_BYTES",
    "DEFAULT_MAX_MEMORY",
    "PARTICLE_PLATE",
    "PROPOSALS",
    "SAMPLE_BLOCK",
    "CommonNoise",
    "ImportanceEstimate",
    "bits_per_dim",
    "elbo_per_point",
    "elbo_terms",
    "iter_log_weights",
    "iwae_bound",
    "log_marginal",
    "min_variance",
    "parse_memory",
    "peak_memory",
    "psis_khat",
]
