"""Linear-Gaussian VAE (probabilistic PCA): a deep latent model with an exact log p(x)."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pvae.distributions import standard_normal
from pvae.networks import unique_name
from pvae.validation import check_data, check_positive_int, check_representable

__all__ = ["LinearGaussian"]


class LinearGaussian(PyroModule):
    r"""Probabilistic PCA [1] written as a VAE with an affine decoder:

    .. math::

        z &\sim \mathcal{N}(0, I_q), \\
        x &\sim \mathcal{N}(W z + b, \sigma^2 I_d),

    so that, exactly,

    .. math::

        p(x) = \mathcal{N}(x \mid b, W W^\top + \sigma^2 I_d), \qquad
        p(z \mid x) = \mathcal{N}\big(M^{-1} W^\top (x - b), \sigma^2 M^{-1}\big),
        \quad M = W^\top W + \sigma^2 I_q.

    :meth:`log_prob` and :meth:`posterior` return these closed forms; they are the oracle the
    importance-sampling estimators are tested against. With :math:`\sigma^2` fixed, latent
    directions whose data-covariance eigenvalue is below :math:`\sigma^2` collapse at the
    maximum-likelihood solution [2, 3].

    :param int data_dim: ``d``.
    :param int latent_dim: ``q``.
    :param float variance: initial (or, with ``learn_variance=False``, fixed) :math:`\sigma^2`.
    :param bool learn_variance: learn :math:`\sigma^2` (default) or keep it fixed.
    :param float init_scale: standard deviation of the random initial entries of ``W``.

    References

    [1] Tipping, M. E. & Bishop, C. M. (1999). Probabilistic Principal Component Analysis.
        JRSS B 61(3).
    [2] Lucas, J., Tucker, G., Grosse, R. & Norouzi, M. (2019). Don't Blame the ELBO! A Linear
        VAE Perspective on Posterior Collapse. NeurIPS.
    [3] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        *,
        variance: float = 1.0,
        learn_variance: bool = True,
        init_scale: float = 0.1,
    ):
        super().__init__(name=unique_name("LinearGaussian"))
        self.data_dim = check_positive_int(data_dim, "data_dim")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        check_representable(variance, "variance")
        check_representable(init_scale, "init_scale", power=2)
        self.weight = nn.Parameter(init_scale * torch.randn(data_dim, latent_dim))
        self.bias = nn.Parameter(torch.zeros(data_dim))
        log_variance = torch.tensor(math.log(variance), dtype=torch.get_default_dtype())
        if learn_variance:
            self.log_variance = nn.Parameter(log_variance)
        else:
            self.register_buffer("log_variance", log_variance)

    @classmethod
    def maximum_likelihood(
        cls, data: torch.Tensor, latent_dim: int, *, variance: float | None = None
    ) -> LinearGaussian:
        r"""The closed-form maximum-likelihood fit of Tipping & Bishop [1]:

        :math:`b = \bar x` and :math:`W = U_q (\Lambda_q - \sigma^2 I)_+^{1/2}` (``R = I``), with
        :math:`\Lambda_q, U_q` the ``latent_dim`` largest eigenvalues of the sample covariance
        and their eigenvectors, and

        - ``variance=None``: :math:`\sigma^2` learned too, the mean of the :math:`d - q`
          smallest eigenvalues (needs ``latent_dim < d``);
        - ``variance=γ``: :math:`\sigma^2 = \gamma` fixed (``learn_variance=False``). Then every
          direction whose eigenvalue is at most γ gets a zero column of W: its latent dimension
          is switched off exactly, the posterior there is the prior (Dai et al. [3,
          Sec. 4], category (ii) collapse; Lucas et al. [2]).

        :param torch.Tensor data: shape ``(n, d)`` with ``n ≥ 2``.
        :param int latent_dim: q.
        :param float variance: a fixed σ² > 0, or ``None`` to fit it.
        """
        check_data(data, "data")
        n, d = data.shape
        check_positive_int(latent_dim, "latent_dim")
        if variance is None and latent_dim >= d:
            raise ValueError(f"latent_dim must be < data_dim={d}, got {latent_dim}")
        if latent_dim > d:
            raise ValueError(f"latent_dim must be <= data_dim={d}, got {latent_dim}")
        if variance is not None:
            check_representable(variance, "variance", dtype=data.dtype)
        if n < 2:
            raise ValueError(f"data needs at least 2 points for a covariance, got {n}")
        mean = data.mean(0)
        cov = torch.cov(data.T, correction=0)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        if variance is None:
            fitted = eigenvalues[latent_dim:].mean().clamp(min=torch.finfo(data.dtype).tiny)
        else:
            fitted = torch.tensor(float(variance), dtype=data.dtype)
        weight = (
            eigenvectors[:, :latent_dim] * (eigenvalues[:latent_dim] - fitted).clamp(min=0).sqrt()
        )
        model = cls(d, latent_dim, variance=float(fitted), learn_variance=variance is None).to(
            data.dtype
        )
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.copy_(mean)
        return model

    @property
    def variance(self) -> torch.Tensor:
        """The noise variance σ² (a scalar tensor)."""
        return self.log_variance.exp()

    @property
    def variance_learned(self) -> bool:
        """Whether σ² is learned (``learn_variance=True``) or fixed."""
        return isinstance(self.log_variance, nn.Parameter)

    def z_dist(self, x: torch.Tensor) -> dist.Independent:
        return standard_normal(x, self.latent_dim)

    def x_dist(self, z: torch.Tensor) -> dist.Independent:
        loc = z @ self.weight.T + self.bias
        return dist.Normal(loc, torch.exp(0.5 * self.log_variance)).to_event(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.z_dist(x))
            return pyro.sample("x", self.x_dist(z), obs=x)

    def marginal(self) -> dist.LowRankMultivariateNormal:
        """The exact marginal p(x) = N(b, W Wᵀ + σ² I) as a torch distribution."""
        cov_diag = self.variance.expand(self.data_dim)
        return dist.LowRankMultivariateNormal(self.bias, self.weight, cov_diag)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` per data point, shape ``(n,)``."""
        check_data(x, "x", dim=self.data_dim)
        return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """The exact posterior p(z | x) per data point: batch shape ``(n,)``, event ``(q,)``."""
        check_data(x, "x", dim=self.data_dim)
        weight, variance = self.weight, self.variance
        eye = torch.eye(self.latent_dim, dtype=x.dtype, device=x.device)
        m = weight.T @ weight + variance * eye
        m_chol = torch.linalg.cholesky(m)
        loc = torch.cholesky_solve(((x - self.bias) @ weight).unsqueeze(-1), m_chol).squeeze(-1)
        precision = m / variance  # posterior covariance is σ² M⁻¹
        return dist.MultivariateNormal(loc, precision_matrix=precision)

    def conditional(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The exact conditional :math:`p(x^m \mid x^o)` of each point's missing entries
        given its observed ones, the oracle of :func:`pvae.impute`.

        Write :math:`W_o, b_o` for the rows of the observed entries and :math:`W_m, b_m` for the
        missing ones. Since :math:`x^o = W_o z + b_o + \varepsilon_o` is a pPCA model of its
        own, its posterior is the one of :meth:`posterior` with :math:`W_o`:

        .. math:: p(z \mid x^o) = \mathcal N\big(M_o^{-1} W_o^\top (x^o - b_o),
            \sigma^2 M_o^{-1}\big), \qquad M_o = W_o^\top W_o + \sigma^2 I_q,

        and :math:`x^m = W_m z + b_m + \varepsilon_m`, with :math:`\varepsilon_m` independent
        of :math:`z` and :math:`x^o`, so

        .. math:: p(x^m \mid x^o) = \mathcal N\big(b_m + W_m M_o^{-1} W_o^\top (x^o - b_o),
            \; \sigma^2 W_m M_o^{-1} W_m^\top + \sigma^2 I\big).

        This is the Gaussian conditional of :math:`p(x) = \mathcal N(b, C)`,
        :math:`C = W W^\top + \sigma^2 I`, i.e. :math:`b_m + C_{mo} C_{oo}^{-1} (x^o - b_o)` and
        :math:`C_{mm} - C_{mo} C_{oo}^{-1} C_{om}` (the push-through identity
        :math:`W_o^\top (W_o W_o^\top + \sigma^2 I)^{-1} = M_o^{-1} W_o^\top` turns one into the
        other), computed with q × q solves instead of d × d ones.

        :param torch.Tensor x: data, shape ``(n, d)``; the missing entries are ignored (they
            may be NaN).
        :param torch.Tensor mask: booleans of ``x``'s shape, ``True`` where observed.
        :returns: ``(loc, covariance)`` of shapes ``(n, d)`` and ``(n, d, d)``: the mean of
            :math:`x` given :math:`x^o` (equal to ``x`` at the observed entries) and its
            covariance (zero in every row and column of an observed entry).
        """
        if not isinstance(x, torch.Tensor) or not isinstance(mask, torch.Tensor):
            raise TypeError("x and mask must be torch.Tensors")
        if mask.dtype != torch.bool or mask.shape != x.shape:
            raise ValueError(
                f"mask must be a bool tensor of x's shape {tuple(x.shape)}, got dtype "
                f"{mask.dtype} and shape {tuple(mask.shape)}"
            )
        check_data(torch.where(mask, x, 0.0), "x", dim=self.data_dim)
        weight, variance = self.weight, self.variance
        observed = mask.to(x.dtype)
        centred = torch.where(mask, x - self.bias, 0.0)
        weight_o = weight * observed.unsqueeze(-1)  # (n, d, q): the missing rows zeroed
        eye = torch.eye(self.latent_dim, dtype=x.dtype, device=x.device)
        m_o = weight_o.transpose(-1, -2) @ weight_o + variance * eye
        m_chol = torch.linalg.cholesky(m_o)
        z_loc = torch.cholesky_solve((centred.unsqueeze(-2) @ weight_o).mT, m_chol).squeeze(-1)
        loc = torch.where(mask, x, z_loc @ weight.T + self.bias)
        missing = (~mask).to(x.dtype)
        weight_m = weight * missing.unsqueeze(-1)
        covariance = variance * (
            weight_m @ torch.cholesky_solve(weight_m.mT, m_chol) + torch.diag_embed(missing)
        )
        return loc, covariance
