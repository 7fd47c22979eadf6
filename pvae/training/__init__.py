"""Training: SVI over minibatches with a guard against non-finite steps, resumable."""

from pvae.training.fit import fit
from pvae.training.nonfinite import (
    LR_FACTOR,
    MAX_HALVINGS,
    NONFINITE,
    Failure,
    NonFiniteError,
    all_finite,
    first_bad_site,
    nonfinite_entries,
)
from pvae.training.objectives import ELBOS, KLWeight
from pvae.training.optim import JointOptim, adam_args, default_optimizer
from pvae.training.rng import forked_rng
from pvae.training.schedules import kl_cyclical, kl_warmup
from pvae.training.snapshot import LastGood, give_up
from pvae.training.state import FitState, History
from pvae.training.step import GuardedStep
from pvae.training.watchdog import FIX, IllPosedWarning, Watchdog

__all__ = [
    "ELBOS",
    "FIX",
    "LR_FACTOR",
    "MAX_HALVINGS",
    "NONFINITE",
    "Failure",
    "FitState",
    "GuardedStep",
    "History",
    "IllPosedWarning",
    "JointOptim",
    "KLWeight",
    "LastGood",
    "NonFiniteError",
    "Watchdog",
    "adam_args",
    "all_finite",
    "default_optimizer",
    "first_bad_site",
    "fit",
    "forked_rng",
    "give_up",
    "kl_cyclical",
    "kl_warmup",
    "nonfinite_entries",
]
