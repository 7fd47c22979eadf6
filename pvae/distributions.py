"""Distributions shared by pvae's programs: the N(0, I) prior and fast Normal densities."""

from __future__ import annotations

import math
from typing import ClassVar

import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = [
    "BernoulliLogits",
    "NormalLogVariance",
    "SharedScaleNormal",
    "normal_variance",
    "standard_normal",
]


def standard_normal(x: torch.Tensor, latent_dim: int) -> dist.Independent:
    """:math:`\\mathcal{N}(0, I_q)` of one latent code, on ``x``'s dtype and device; event shape
    ``(latent_dim,)``, batch shape ``()`` (the data plate broadcasts it)."""
    zero = x.new_zeros(())
    return dist.Normal(zero, zero + 1).expand([latent_dim]).to_event(1)


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class SharedScaleNormal(dist.Independent):
    r"""``Normal(loc, scale).to_event(1)`` for a scale shared by the d entries of each event
    (one variance γ for every pixel), with the same density computed in fewer passes:

    .. math:: \log p(x) = -\frac{\lVert x - \mu \rVert^2}{2\sigma^2} - d \log \sigma
        - \frac{d}{2} \log 2\pi.

    ``torch.distributions.Normal`` broadcasts the scale to the shape of ``loc`` and takes its
    square and logarithm entry by entry; over K importance samples of a 784-pixel image that
    costs as much as the decoder's matrix products. Here they are taken once per event.
    Everything else (``base_dist``, sampling, ``mean``, masking, KL) is the plain
    ``Independent(Normal)``.

    :param torch.Tensor loc: means, shape ``(..., d)``.
    :param torch.Tensor scale: standard deviations, broadcastable to ``loc.shape[:-1]`` (no
        event dimension), e.g. a 0-d tensor.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        self.shared_scale = scale
        super().__init__(dist.Normal(loc, scale.unsqueeze(-1)), 1, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SharedScaleNormal, _instance)
        new.shared_scale = self.shared_scale
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        squares = value - self.base_dist.loc
        squares = squares.square() if squares.requires_grad else squares.square_()
        scale = self.shared_scale
        return -0.5 * squares.sum(-1) / scale.square() - self.event_shape[0] * (
            scale.log() + _LOG_SQRT_2PI
        )


class BernoulliLogits(dist.Independent):
    r"""``Bernoulli(logits=logits).to_event(1)`` with its density computed in fewer passes:

    .. math:: \log p(x) = \sum_j x_j \ell_j - \operatorname{softplus}(\ell_j),

    which is torch's ``binary_cross_entropy_with_logits`` (negated) written out; the sum
    :math:`\sum_j x_j \ell_j` is one matrix product with the data where the logits hold K
    samples of each point. Everything else (``base_dist``, sampling, ``mean``, masking, KL,
    the support check under validation) is the plain ``Independent(Bernoulli)``.

    :param torch.Tensor logits: shape ``(..., d)``.
    """

    def __init__(self, logits: torch.Tensor, validate_args=None):
        super().__init__(dist.Bernoulli(logits=logits), 1, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BernoulliLogits, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits = self.base_dist.logits
        if logits.dim() >= 2 and value.dim() >= 2 and value.shape[-2] == 1:
            # one point's value against its rows of logits: a matrix-vector product
            agree = (logits @ value.squeeze(-2).unsqueeze(-1)).squeeze(-1)
        else:
            agree = (logits * value).sum(-1)
        # softplus(l) = l where log1p(exp(-l)) is below half an ulp of l (torch's default
        # threshold, 20, is that for float32 but drops 2e-9 per entry in float64)
        threshold = 1 - math.log(torch.finfo(logits.dtype).eps)
        return agree - torch.nn.functional.softplus(logits, threshold=threshold).sum(-1)


class NormalLogVariance(TorchDistribution):
    r"""Diagonal Normal parameterized by its log-variance, exact for any log-variance.

    .. math:: \log \mathcal{N}(x \mid \mu, e^{v}) = -\tfrac12 \big(\log 2\pi + v
        + (x - \mu)^2 e^{-v}\big),

    with :math:`(x - \mu)^2 e^{-v} = 0` where :math:`x = \mu` exactly, so a log-variance of
    −1000 (a variance that underflows to 0) still gives the finite log-density
    :math:`-\tfrac12(\log 2\pi - 1000)` at the mean and :math:`-\infty` elsewhere.
    Batch shape is the broadcast shape of ``loc`` and ``log_variance``; no event dims (use
    ``.to_event``).
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "log_variance": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: torch.Tensor, log_variance: torch.Tensor, validate_args=None):
        self.loc, self.log_variance = torch.broadcast_tensors(loc, log_variance)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NormalLogVariance, _instance)
        new.loc = self.loc.expand(batch_shape)
        new.log_variance = self.log_variance.expand(batch_shape)
        super(NormalLogVariance, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + torch.exp(0.5 * self.log_variance) * noise

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        difference = value - self.loc
        exact = difference == 0
        # Both branches of a where are differentiated: keep 0·inf out of the unused one too.
        safe_log_variance = torch.where(
            exact, torch.zeros_like(self.log_variance), self.log_variance
        )
        scaled = difference.pow(2) * torch.exp(-safe_log_variance)
        scaled = torch.where(exact, torch.zeros_like(scaled), scaled)
        return -0.5 * (math.log(2 * math.pi) + self.log_variance + scaled)


def normal_variance(fn, like: torch.Tensor) -> torch.Tensor | None:
    """The variance of a Normal likelihood ``fn`` (``Normal``, :class:`SharedScaleNormal`, or
    one parametrized by a ``log_variance`` such as :class:`NormalLogVariance`; also inside
    ``Independent`` or masked), entry by entry and broadcast to ``like``'s shape; ``None`` for
    any other family (which has no variance to collapse). The one place pvae reads a
    decoder's variance."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    if isinstance(fn, torch.distributions.Normal):
        return fn.scale.expand_as(like).pow(2)
    if hasattr(fn, "log_variance"):
        return fn.log_variance.expand_as(like).exp()
    return None
