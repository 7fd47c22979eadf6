"""The experiments behind ``pvae demo`` and ``pvae experiment``."""

from pvae.experiments.collapse_depth import CollapseDepthSettings, run_collapse_depth
from pvae.experiments.demo import DemoSettings, run_demo
from pvae.experiments.gamma_sweep import gamma_sweep
from pvae.experiments.iwae_vs_elbo import IWAEvsELBOSettings, run_iwae_vs_elbo

__all__ = [
    "CollapseDepthSettings",
    "DemoSettings",
    "IWAEvsELBOSettings",
    "gamma_sweep",
    "run_collapse_depth",
    "run_demo",
    "run_iwae_vs_elbo",
]
