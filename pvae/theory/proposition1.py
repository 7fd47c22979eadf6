"""Dai et al.'s Proposition 1: the collapsed local minimum of a soft-threshold VAE."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from pyro.nn import PyroModule
from torch.distributions import Normal, kl_divergence
from torch.nn import functional

from pvae.likelihoods import SoftThresholdDecoder
from pvae.validation import check_data, check_nonnegative_float, check_positive_float

__all__ = ["Proposition1", "collapsed_log_likelihood", "expected_elbo", "proposition1"]


def _soft_threshold_moments(mean, variance, alpha: float):
    """E[π_α(u)] and E[π_α(u)²] for u ~ N(mean, variance), elementwise, in closed form.

    π_α(u) = (u − α)_+ − (−u − α)_+, two rectified Gaussians with disjoint supports. Where the
    variance is 0, u = mean exactly; that branch is written separately so that derivatives at
    W = 0 are exact (all of them vanish for α > 0: the tails are O(exp(−α²/2σ²))).
    """
    if alpha == 0:  # the affine decoder
        return mean, mean**2 + variance
    spread = variance > 0
    scale = torch.where(spread, variance, torch.ones_like(variance)).sqrt()
    standard = Normal(torch.zeros_like(mean), torch.ones_like(mean))

    def rectified(shift):  # E[(v − α)_+] and E[(v − α)_+²] for v ~ N(shift, scale²)
        margin = shift - alpha
        t = margin / scale
        cdf, pdf = torch.special.ndtr(t), standard.log_prob(t).exp()
        return margin * cdf + scale * pdf, (margin**2 + scale**2) * cdf + margin * scale * pdf

    upper_first, upper_second = rectified(mean)
    lower_first, lower_second = rectified(-mean)
    point = functional.softshrink(mean, alpha)
    first = torch.where(spread, upper_first - lower_first, point)
    second = torch.where(spread, upper_second + lower_second, point**2)
    return first, second


def _expected_elbo(x, loc, log_scale, weight, bias, log_variance, alpha: float):
    # z_i ~ N(loc_i, diag exp(2 log_scale_i)) ⇒ (W z_i)_j ~ N((W loc_i)_j, Σ_k W_jk² s_ik²).
    first, second = _soft_threshold_moments(
        loc @ weight.T, torch.exp(2 * log_scale) @ (weight**2).T, alpha
    )
    residual = x - bias
    squared_error = (residual**2 - 2 * residual * first + second).sum(-1)
    data_dim = x.shape[-1]
    recon = (
        -0.5 * data_dim * (math.log(2 * math.pi) + log_variance)
        - 0.5 * squared_error * (-log_variance).exp()
    )
    prior = Normal(torch.zeros_like(loc), torch.ones_like(loc))
    kl = kl_divergence(Normal(loc, log_scale.exp()), prior).sum(-1)
    return recon - kl


def expected_elbo(model, guide, data: torch.Tensor) -> torch.Tensor:
    r"""The ELBO of every point of ``data`` for Proposition 1's pair, exactly (no sampling):

    .. math:: \mathrm{ELBO}_i = -\frac d2 \log 2\pi\gamma
        - \frac{1}{2\gamma} \mathbb{E}_{q(z|x_i)} \|x_i - \pi_\alpha(W z) - b\|^2
        - \mathrm{KL}\big(q(z \mid x_i) \,\|\, \mathcal{N}(0, I)\big),

    with the expectation from the first two moments of a soft-thresholded Gaussian and the KL
    from ``torch.distributions.kl_divergence``. Differentiable in every parameter, so its
    gradient and Hessian are exact. Dai et al.'s energy (their eq. 4) is :math:`-2\sum_i
    \mathrm{ELBO}_i` up to a constant.

    :param model: a :class:`~pvae.models.VAE` with a :class:`SoftThresholdDecoder`.
    :param guide: a :class:`~pvae.guides.PerPointNormalGuide` built with ``data``.
    :returns: shape ``(n,)``.
    """
    decoder = model.decoder
    index = guide.index(data)
    return _expected_elbo(
        data,
        guide.loc[index],
        guide.log_scale[index],
        decoder.weight,
        decoder.bias,
        decoder.log_variance,
        decoder.alpha,
    )


def collapsed_log_likelihood(data: torch.Tensor) -> float:
    r"""log p(X) at the collapsed point of Proposition 1 [1], eq. (7): with q(z | x) the prior and
    the decoder ignoring z, p(x) = N(x̄, γ̄ I) with γ̄ the mean squared deviation per dimension,

    .. math:: \log p(X) = -\frac{n d}{2}\big(1 + \log 2\pi\bar\gamma\big),
        \qquad \bar\gamma = \frac{1}{n d} \sum_i \|x_i - \bar x\|^2.

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? ICML.
    """
    check_data(data, "data")
    num_points, data_dim = data.shape
    variance = _check_spread(data, "data")
    return -0.5 * num_points * data_dim * (1 + math.log(2 * math.pi * variance))


def _check_spread(data: torch.Tensor, name: str) -> float:
    """γ̄, the mean squared deviation per dimension of ``data``, refusing 0: then every point is
    the mean, log p(X) at the collapsed point is +∞ and the collapsed γ is 0."""
    variance = float(((data - data.mean(0)) ** 2).mean())
    if not variance > 0:
        raise ValueError(
            f"{name} must have points that differ (a positive variance about their mean), got "
            f"{data.shape[0]} point(s) all equal to {data[0].tolist()}"
        )
    return variance


@dataclass
class Proposition1:
    r"""Proposition 1 of Dai et al. [1], set up: the data, the soft-threshold VAE and its
    per-point guide, with methods that move the parameters and differentiate the exact energy
    :math:`E(\theta) = -\sum_i \mathrm{ELBO}_i` (nats).

    Build it with :func:`proposition1`.

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? ICML.
    """

    data: torch.Tensor
    model: PyroModule
    guide: PyroModule

    @property
    def alpha(self) -> float:
        return self.model.decoder.alpha

    def parameters(self) -> dict[str, torch.Tensor]:
        """The parameters θ the energy depends on, by name."""
        decoder = self.model.decoder
        return {
            "loc": self.guide.loc,
            "log_scale": self.guide.log_scale,
            "weight": decoder.weight,
            "bias": decoder.bias,
            "log_variance": decoder.log_variance,
        }

    def flat(self) -> torch.Tensor:
        """θ as one vector (in the order of :meth:`parameters`, row-major)."""
        return torch.cat([p.detach().reshape(-1) for p in self.parameters().values()])

    def names(self) -> list[str]:
        """A name per entry of :meth:`flat`, e.g. ``"weight[1, 0]"``."""
        names = []
        for name, parameter in self.parameters().items():
            for index in itertools.product(*(range(size) for size in parameter.shape)):
                names.append(f"{name}[{', '.join(map(str, index))}]" if index else name)
        return names

    def _check_theta(self, theta: torch.Tensor) -> None:
        size = sum(p.numel() for p in self.parameters().values())
        if not isinstance(theta, torch.Tensor) or theta.shape != (size,):
            shape = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
            raise ValueError(f"theta must be a vector of shape ({size},) like flat(), got {shape}")
        finite = torch.isfinite(theta.detach())
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise ValueError(
                f"theta must be finite, but theta[{first}] ({self.names()[first]}) = "
                f"{theta[first].item()}"
            )

    def load(self, theta: torch.Tensor) -> None:
        """Set every parameter from a vector like :meth:`flat`."""
        self._check_theta(theta)
        with torch.no_grad():
            offset = 0
            for parameter in self.parameters().values():
                size = parameter.numel()
                parameter.copy_(theta[offset : offset + size].reshape(parameter.shape))
                offset += size

    def energy(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """E(θ) = −Σ_i ELBO_i in closed form (nats), at ``theta`` (default: the current θ)."""
        if theta is None:
            theta = self.flat()
        self._check_theta(theta)
        values, offset = {}, 0
        for name, parameter in self.parameters().items():
            values[name] = theta[offset : offset + parameter.numel()].reshape(parameter.shape)
            offset += parameter.numel()
        index = self.guide.index(self.data)
        return -_expected_elbo(
            self.data,
            values["loc"][index],
            values["log_scale"][index],
            values["weight"],
            values["bias"],
            values["log_variance"],
            self.alpha,
        ).sum()

    def derivatives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact gradient and Hessian of :meth:`energy` at the current θ."""
        theta = self.flat()
        gradient = torch.autograd.functional.jacobian(self.energy, theta)
        hessian = torch.autograd.functional.hessian(self.energy, theta)
        return gradient, hessian

    def set_collapsed(self) -> None:
        r"""Move to the collapsed point, eq. (7): q(z | x_i) = N(0, I) for every point, W = 0,
        b = x̄, γ = γ̄. There the decoder ignores z, the guide is the exact posterior, every
        importance weight equals p(x_i), and log p(X) = :func:`collapsed_log_likelihood`."""
        centred = self.data - self.data.mean(0)
        with torch.no_grad():
            self.guide.loc.zero_()
            self.guide.log_scale.zero_()
            self.model.decoder.weight.zero_()
            self.model.decoder.bias.copy_(self.data.mean(0))
            self.model.decoder.log_variance.fill_(math.log(float((centred**2).mean())))

    def set_reconstructing(self, delta: float) -> None:
        r"""Move to a member of a family whose energy tends to −∞ as δ → 0, of the kind of
        Dai et al.'s Appendix B.1 (this family is pvae's own, written out here and tested):
        with κ = 1,

        - q(z | x_i) = N(c_i, δ²), c_i = ±1 the sign of the projection of x_i − x̄ on the
          data's first principal direction u;
        - :math:`W_j = \operatorname{sign}(u_j)(r|u_j| + \alpha)`, with r the largest
          :math:`|u^\top(x_i - \bar x)|`, so that :math:`\pi_\alpha(W c_i) = c_i r u`
          exactly: the two points :math:`\bar x \pm r u` are reconstructed (for two points
          symmetric about their mean, like Proposition 1's, every point);
        - b = x̄ and :math:`\gamma = \|W\|^2 \delta^2 / d`, the expected squared error
          per dimension to first order in δ.

        Per point the energy then behaves as :math:`(d - \kappa)\log\delta + O(1)`: the
        decoder's :math:`\frac d2 \log\gamma` falls faster than the encoder's entropy
        :math:`-\log\delta` rises, so for d > κ = 1 the ELBO, and with it log p(X), is
        unbounded above on such data.
        """
        check_positive_float(delta, "delta")
        if self.guide.latent_dim != 1:
            raise ValueError(
                f"the reconstructing family is for one latent dimension, got "
                f"{self.guide.latent_dim}"
            )
        mean = self.data.mean(0)
        centred = self.data - mean
        _, _, right = torch.linalg.svd(centred, full_matrices=False)
        direction = right[0]
        projection = centred @ direction
        radius = float(projection.abs().max())
        weight = torch.sign(direction) * (radius * direction.abs() + self.alpha)
        index = self.guide.index(self.data)
        with torch.no_grad():
            self.guide.loc[index] = torch.sign(projection).unsqueeze(-1)
            self.guide.log_scale.fill_(math.log(delta))
            self.model.decoder.weight.copy_(weight.unsqueeze(-1))
            self.model.decoder.bias.copy_(mean)
            self.model.decoder.log_variance.fill_(
                math.log(float(weight.pow(2).sum()) * delta**2 / self.data.shape[1])
            )


def proposition1(alpha: float = 0.5, *, data: torch.Tensor | None = None) -> Proposition1:
    r"""Dai et al.'s Proposition 1 [1]: data :math:`x^{(1)} = (1, 1)`, :math:`x^{(2)} = (-1,
    -1)` (or ``data``), a :class:`SoftThresholdDecoder` with threshold ``alpha`` and κ = 1
    latent dimension, a learned γ, and a :class:`~pvae.guides.PerPointNormalGuide` (the
    paper's arbitrarily flexible encoder), placed at the collapsed point (7).

    The proposition: for α > 0 the collapsed point is a local minimum of the VAE energy,
    although the energy is unbounded below elsewhere (:meth:`Proposition1.set_reconstructing`);
    for α = 0 (affine decoder) it is a saddle.

    :param float alpha: the threshold α ≥ 0 (default 0.5).
    :param data: ``(n, d)`` data (default the two points above, in torch's default dtype).
    """
    from pvae.guides import PerPointNormalGuide
    from pvae.models import VAE

    check_nonnegative_float(alpha, "alpha")
    if data is None:
        data = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    check_data(data, "data")
    _check_spread(data, "data")
    decoder = SoftThresholdDecoder(1, data.shape[1], alpha=alpha).to(data.device, data.dtype)
    setup = Proposition1(data, VAE(decoder), PerPointNormalGuide(data, 1))
    setup.set_collapsed()
    return setup
