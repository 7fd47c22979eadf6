"""Closed forms of Dai et al. (2020): probabilistic PCA's active dimensions, Proposition 1."""

from pvae.theory.ppca import active_dimensions
from pvae.theory.proposition1 import (
    Proposition1,
    collapsed_log_likelihood,
    expected_elbo,
    proposition1,
)

__all__ = [
    "Proposition1",
    "active_dimensions",
    "collapsed_log_likelihood",
    "expected_elbo",
    "proposition1",
]
