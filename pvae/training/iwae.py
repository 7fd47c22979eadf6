"""The IWAE objective (Burda et al. 2016) per data point, with doubly-reparameterized gradients
(Tucker et al. 2019) as an option: a loss with Pyro's ELBO interface for :func:`fit`."""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from pvae.contract import (
    ContractError,
    depends_on,
    observed_sites,
    sample_sites,
    site_log_prob,
)
from pvae.validation import check_bool, check_positive_int

__all__ = ["IWAE"]


def _latent_sites(guide_trace) -> list[dict]:
    sites = sample_sites(guide_trace)
    for site in sites:
        if not site["fn"].has_rsample:
            raise ContractError(
                f"the IWAE objective differentiates through the guide's draws, but guide site "
                f"{site['name']!r} ({type(site['fn']).__name__}) has no reparameterized sampler"
            )
    return sites


def _log_density(sites, shape: tuple[int, int]) -> torch.Tensor:
    """Σ of the sites' log-densities, one per (draw, point)."""
    return sum(site_log_prob(site, shape) for site in sites)


def _scale(model_trace, guide_trace) -> float:
    """The one scale of every site (``fit``'s N / B): the IWAE bound has no KL weight."""
    scales = {
        float(site["scale"]) for trace in (model_trace, guide_trace) for site in sample_sites(trace)
    }
    if len(scales) != 1:
        raise ValueError(
            "the IWAE objective scores each point's joint density as a whole and has no KL "
            f"weight: every site must have the same scale, got {sorted(scales)} (kl_weight "
            "must be 1)"
        )
    return scales.pop()


class IWAE:
    r"""The importance-weighted bound of every data point [1], summed over the points:

    .. math:: \mathcal{L}_K(x_i) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^K w_{ik}\Big],
        \qquad w_{ik} = \frac{p(x_i, z_{ik})}{q(z_{ik} \mid x_i)},\ z_{ik} \sim q(z \mid x_i),

    :math:`\mathrm{ELBO} = \mathcal{L}_1 \le \mathcal{L}_K \le \log p(x_i)`. The K draws are
    vectorized in a plate outside the pair's plates and the log-sum-exp is taken per point,
    over the K draws of that point alone. (Pyro's ``RenyiELBO(alpha=0)`` takes it over the
    log-weights summed over the whole minibatch: a bound on the minibatch's joint density,
    which for B points is the ELBO's plus at most log K, not the sum of the points' IWAE
    bounds.)

    Gradients: the reparameterized gradient of the bound by default; with ``dreg=True`` the
    doubly-reparameterized one [2] for the guide's parameters φ,

    .. math:: \nabla_\phi \mathcal{L}_K \approx \sum_k \tilde w_k^2\,
        \frac{\partial \log w_k}{\partial z_k}\frac{\partial z_k}{\partial \phi},
        \qquad \tilde w_k = w_k / \textstyle\sum_j w_j,

    unbiased for the same gradient with lower variance (its score-function term, whose
    variance grows with K, is gone), and the usual :math:`\sum_k \tilde w_k \nabla_\theta \log
    w_k` for the model's θ. One surrogate carries both: with :math:`\bar z` the draws
    detached,

    .. math:: \sum_k \tilde w_k \log p(x, \bar z_k) + \sum_k \tilde w_k^2 \big[\log p(x, z_k)
        - \log p(x, \bar z_k) - \log q(z_k) + \log q(\bar z_k)\big],

    whose bracket is 0 in value and has no θ gradient. It needs every guide site
    reparameterized and, with ``dreg=True``, each guide site's distribution free of the
    other latent sites' draws (checked on the first call): where :math:`q(z_2 \mid z_1)`
    depends on :math:`z_1`, the path through its parameters would be lost.

    The interface is that of Pyro's ELBOs (``loss``, ``differentiable_loss``,
    ``loss_and_grads``), so :func:`fit` (``elbo="iwae"`` / ``"iwae-dreg"``) and
    :func:`~pvae.diagnostics.gradient_variance` use it like them. Site scales
    (``poutine.scale``, fit's N / B) multiply the sum; a KL weight is refused.

    :param int num_particles: K ≥ 1 (K = 1 is the ELBO, with ``Trace_ELBO``'s estimator).
    :param bool vectorize_particles: must be ``True`` (the draws are always vectorized).
    :param int max_plate_nesting: plates in the pair; the draws' plate goes just outside.
    :param bool dreg: doubly-reparameterized gradients for the guide (default ``False``).

    [1] Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
    [2] Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly Reparameterized Gradient
        Estimators for Monte Carlo Objectives. ICLR.
    """

    def __init__(
        self,
        num_particles: int = 2,
        vectorize_particles: bool = True,
        max_plate_nesting: int = 1,
        dreg: bool = False,
    ):
        self.num_particles = check_positive_int(num_particles, "num_particles")
        if check_bool(vectorize_particles, "vectorize_particles") is not True:
            raise ValueError("the IWAE objective always vectorizes its draws")
        self.max_plate_nesting = check_positive_int(max_plate_nesting, "max_plate_nesting")
        self.dreg = check_bool(dreg, "dreg")
        self._structure_checked = False

    def _traces(self, model, guide, *args, **kwargs):
        particles = pyro.plate(
            "iwae_particles", self.num_particles, dim=-(self.max_plate_nesting + 1)
        )
        with particles:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            replayed = poutine.replay(model, trace=guide_trace)
            model_trace = poutine.trace(replayed).get_trace(*args, **kwargs)
        return model_trace, guide_trace, particles

    def _shape(self, model_trace) -> tuple[int, int]:
        observed = observed_sites(model_trace)[0]  # every one is inside the data plate
        frames = [f for f in observed["cond_indep_stack"] if f.name == "data"]
        return self.num_particles, frames[0].size

    def _surrogate(self, model, guide, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, surrogate): −Σᵢ scale · L̂_K(xᵢ), and what to differentiate."""
        model_trace, guide_trace, particles = self._traces(model, guide, *args, **kwargs)
        shape = self._shape(model_trace)
        latent = _latent_sites(guide_trace)
        scale = _scale(model_trace, guide_trace)
        log_p = _log_density(sample_sites(model_trace), shape)
        log_q = _log_density(latent, shape)
        log_w = log_p - log_q
        bound = torch.logsumexp(log_w, 0) - math.log(self.num_particles)
        loss = -scale * bound.sum()
        if not self.dreg:
            return loss, loss
        if not self._structure_checked:
            self._check_independent(latent)
            self._structure_checked = True
        detached = guide_trace.copy()
        for site in sample_sites(detached):
            detached.nodes[site["name"]] = {**site, "value": site["value"].detach()}
        with particles:
            fixed = poutine.trace(poutine.replay(model, trace=detached)).get_trace(*args, **kwargs)
        log_p_fixed = _log_density(sample_sites(fixed), shape)
        log_q_fixed = _log_density(sample_sites(detached), shape)
        weights = torch.softmax(log_w.detach(), 0)
        path = (log_p - log_p_fixed) - (log_q - log_q_fixed)
        surrogate = (weights * log_p_fixed).sum() + (weights.pow(2) * path).sum()
        return loss, -scale * surrogate

    @staticmethod
    def _check_independent(latent: list[dict]) -> None:
        for site in latent:
            others = [s for s in latent if s is not site]
            density = site["fn"].log_prob(site["value"].detach())
            found = depends_on(density, [s["value"] for s in others])
            names = [s["name"] for s, depends in zip(others, found, strict=True) if depends]
            if names:
                raise ContractError(
                    f"doubly-reparameterized gradients need each guide site's distribution free "
                    f"of the other latent draws, but guide site {site['name']!r} depends on "
                    f"{names}; use elbo='iwae' for this guide"
                )

    def loss(self, model, guide, *args, **kwargs) -> float:
        """−Σᵢ L̂_K(xᵢ) for one set of draws, as a float (no gradients)."""
        with torch.no_grad():
            loss, _ = self._surrogate(model, guide, *args, **kwargs)
        return loss.item()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """A scalar whose gradient is the estimator's (equal to the loss in value without
        ``dreg``)."""
        _, surrogate = self._surrogate(model, guide, *args, **kwargs)
        return surrogate

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The loss, with the estimator's gradients accumulated in the parameters' ``.grad``
        (as Pyro's ``ELBO.loss_and_grads``)."""
        loss, surrogate = self._surrogate(model, guide, *args, **kwargs)
        if surrogate.requires_grad:
            surrogate.backward()
        return loss.item()
