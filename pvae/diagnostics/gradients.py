"""The variance of stochastic ELBO gradients: Trace_ELBO against TraceMeanField_ELBO."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pyro import poutine
from tqdm.auto import tqdm

from pvae.contract import evaluating
from pvae.display import Displayed
from pvae.validation import check_bool, check_choice, check_pair_data, check_positive_int

__all__ = ["GradientMoments", "gradient_variance"]


@dataclass(repr=False)
class GradientMoments(Displayed):
    """What :func:`gradient_variance` returns: per Pyro parameter name, the mean and the
    variance over draws of each element of the gradient of the loss (−ELBO) with respect to the
    parameter's unconstrained value (what the optimizer steps).

    :ivar mean: name → mean gradient, the parameter's shape.
    :ivar variance: name → variance of each element over the draws (unbiased), the same shape.
    :ivar num_draws: the number of independent gradient draws.
    """

    mean: dict[str, torch.Tensor]
    variance: dict[str, torch.Tensor]
    num_draws: int

    def _display(self):
        title = (
            f"GradientMoments: SVI's gradient of the loss over {self.num_draws} independent draws, "
            f"{len(self.variance)} parameters"
        )
        rows = [("total variance", f"{self.total_variance():.4g} (summed over every element)")]
        for name, variance in self.summary().items():
            size = self.variance[name].numel()
            rows.append((name, f"variance {variance:.4g} (summed over {size} element(s))"))
        return title, rows

    def total_variance(self) -> float:
        """The trace of the gradient's covariance: the variance summed over every element of
        every parameter (the expected squared distance of one draw from the mean gradient)."""
        return sum(value.sum().item() for value in self.variance.values())

    def summary(self) -> dict[str, float]:
        """Per parameter, the variance summed over its elements."""
        return {name: value.sum().item() for name, value in self.variance.items()}


def gradient_variance(
    model: Callable,
    guide: Callable,
    x: torch.Tensor,
    *,
    elbo: str = "meanfield",
    num_draws: int = 100,
    num_particles: int = 1,
    progress: bool = True,
) -> GradientMoments:
    r"""Mean and variance of the stochastic gradient of the loss :math:`-\mathrm{ELBO}(x)`
    that SVI steps with, over ``num_draws`` independent draws at the current parameters.

    Both estimators are unbiased for the same gradient. ``Trace_ELBO`` (``elbo="trace"``)
    estimates the whole ELBO from the sampled :math:`z = \mu + \sigma\varepsilon`,

    .. math:: \log p(x \mid z) + \log p(z) - \log q(z \mid x),

    ``TraceMeanField_ELBO`` (``"meanfield"``) uses the analytic
    :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z))` where torch has it [1], which removes the
    KL term's share of the variance. For :math:`x \sim \mathcal{N}(z, 1)`,
    :math:`z \sim \mathcal{N}(0, 1)` and :math:`q = \mathcal{N}(m, s^2)`, the gradient in
    :math:`m` has variance :math:`4 s^2` with ``Trace_ELBO`` and :math:`s^2` with the analytic
    KL (tested).

    The pair runs in eval mode (buffers such as σ-VAE's running γ* are not updated); no
    parameter changes and no ``.grad`` is written. The gradient is that of the loss summed over
    the rows of ``x`` (Pyro's convention; divide the variance by ``len(x)²`` for a per-point
    scale).

    :param model: a model keeping the site contract of :mod:`pvae.models`.
    :param guide: its guide.
    :param torch.Tensor x: the batch, shape ``(n, d)``.
    :param str elbo: ``"meanfield"`` (default) or ``"trace"``.
    :param int num_draws: independent gradient draws (default 100).
    :param int num_particles: samples of z per point within one draw (default 1).
    :param bool progress: show a tqdm progress bar (default ``True``).
    :rtype: GradientMoments

    [1] Kingma, D. P. & Welling, M. (2014). Auto-Encoding Variational Bayes. ICLR (eq. 7 and
        eq. 10: the estimator with the KL in closed form "typically has less variance").
    """
    from pvae.training.objectives import ELBOS

    check_pair_data(model, guide, x, "x")
    check_choice(elbo, "elbo", ELBOS)
    num_draws = check_positive_int(num_draws, "num_draws")
    if num_draws < 2:
        raise ValueError(f"num_draws must be at least 2 to estimate a variance, got {num_draws}")
    num_particles = check_positive_int(num_particles, "num_particles")
    check_bool(progress, "progress")
    loss_fn = ELBOS[elbo](num_particles=num_particles, vectorize_particles=num_particles > 1)
    # Welford's running mean and sum of squared deviations, per parameter element.
    means: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    with evaluating(model, guide), torch.enable_grad():
        for draw in tqdm(range(num_draws), disable=not progress, desc="gradients", unit="draw"):
            with poutine.trace(param_only=True) as params:
                loss = loss_fn.differentiable_loss(model, guide, x)
            values = {
                name: site["value"].unconstrained() for name, site in params.trace.nodes.items()
            }
            values = {name: value for name, value in values.items() if value.requires_grad}
            if not values:
                raise ValueError("the model and guide have no parameters to differentiate")
            grads = torch.autograd.grad(loss, list(values.values()), allow_unused=True)
            for (name, value), grad in zip(values.items(), grads, strict=True):
                grad = torch.zeros_like(value) if grad is None else grad.detach()
                if draw == 0:
                    means[name], squares[name] = grad.clone(), torch.zeros_like(grad)
                    continue
                delta = grad - means[name]
                means[name] += delta / (draw + 1)
                squares[name] += delta * (grad - means[name])
    variances = {name: value / (num_draws - 1) for name, value in squares.items()}
    for name, value in variances.items():
        if not math.isfinite(value.sum().item()):
            raise FloatingPointError(f"a gradient draw for parameter {name!r} was not finite")
    return GradientMoments(mean=means, variance=variances, num_draws=num_draws)
