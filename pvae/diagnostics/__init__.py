"""Diagnostics of a trained pair: latent use, the decoder, collapse categories, gradients."""

from pvae.diagnostics.decoder import (
    decode_at,
    decode_at_posterior_mean,
    decoder_variance,
    mean_error,
    reconstruction_error,
)
from pvae.diagnostics.gradients import GradientMoments, gradient_variance
from pvae.diagnostics.latent import ACTIVE_UNIT_THRESHOLD, diagnose
from pvae.diagnostics.likelihood import Likelihood, read_likelihood
from pvae.diagnostics.taxonomy import (
    CATEGORIES,
    DEGENERATE_VARIANCE_RATIO,
    CollapseReport,
    LatentDiagnostics,
    collapse_report,
)

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "CATEGORIES",
    "DEGENERATE_VARIANCE_RATIO",
    "CollapseReport",
    "GradientMoments",
    "LatentDiagnostics",
    "Likelihood",
    "collapse_report",
    "decode_at",
    "decode_at_posterior_mean",
    "decoder_variance",
    "diagnose",
    "gradient_variance",
    "mean_error",
    "read_likelihood",
    "reconstruction_error",
]
