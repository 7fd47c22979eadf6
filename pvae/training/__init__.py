"""Training: SVI over minibatches with a guard against non-finite steps, resumable."""

from pvae.training.fit import fit
from pvae.training.iwae import IWAE
from pvae.training.nonfinite import (
    LR_FACTOR,
    MAX_HALVINGS,
    NONFINITE,
    NonFiniteError,
)
from pvae.training.objectives import ELBOS, KLWeight
from pvae.training.optim import JointOptim, default_optimizer
from pvae.training.schedules import kl_cyclical, kl_warmup
from pvae.training.state import FitState, History
from pvae.training.step import UnusedParameterWarning
from pvae.training.tune import tune_trainable
from pvae.training.watchdog import IllPosedWarning, Watchdog

__all__ = [
    "ELBOS",
    "IWAE",
    "LR_FACTOR",
    "MAX_HALVINGS",
    "NONFINITE",
    "FitState",
    "History",
    "IllPosedWarning",
    "JointOptim",
    "KLWeight",
    "NonFiniteError",
    "UnusedParameterWarning",
    "Watchdog",
    "default_optimizer",
    "fit",
    "kl_cyclical",
    "kl_warmup",
    "tune_trainable",
]
