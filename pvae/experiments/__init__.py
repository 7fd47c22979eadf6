"""The experiments behind ``pvae demo`` and ``pvae experiment``."""

from pvae.experiments.collapse_depth import CollapseDepthSettings, run_collapse_depth
from pvae.experiments.demo import DemoSettings, run_demo
from pvae.experiments.gamma_sweep import gamma_sweep

__all__ = ["CollapseDepthSettings", "DemoSettings", "gamma_sweep", "run_collapse_depth", "run_demo"]
