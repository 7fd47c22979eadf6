"""Figures: each function returns a matplotlib Figure (no global state, no plt.show)."""

from pvae.plots.collapse import (
    plot_collapse_depth,
    plot_gamma_sweep,
    plot_proposition1,
    plot_scale_histograms,
)
from pvae.plots.demo import plot_construction, plot_demo
from pvae.plots.estimates import (
    KHAT_GOOD,
    KHAT_UNRELIABLE,
    plot_k_curve,
    plot_khat,
    plot_log_marginal,
)
from pvae.plots.images import (
    latent_grid_codes,
    plot_interpolation,
    plot_latent_grid,
    plot_latent_scatter,
    plot_reconstructions,
    plot_samples,
)
from pvae.plots.imputation import plot_imputations
from pvae.plots.objectives import plot_iwae_vs_elbo
from pvae.plots.training import plot_history
from pvae.plots.trust import plot_trust_calibration

__all__ = [
    "KHAT_GOOD",
    "KHAT_UNRELIABLE",
    "latent_grid_codes",
    "plot_collapse_depth",
    "plot_construction",
    "plot_demo",
    "plot_gamma_sweep",
    "plot_history",
    "plot_imputations",
    "plot_interpolation",
    "plot_iwae_vs_elbo",
    "plot_k_curve",
    "plot_khat",
    "plot_latent_grid",
    "plot_latent_scatter",
    "plot_log_marginal",
    "plot_proposition1",
    "plot_reconstructions",
    "plot_samples",
    "plot_scale_histograms",
    "plot_trust_calibration",
]
