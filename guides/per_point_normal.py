"""Non-amortized diagonal-Normal guide: free parameters (loc, scale) for every training point."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pvae.models.linear_gaussian import LinearGaussian
from pvae.networks import unique_name
from pvae.validation import check_data, check_dtypes, check_positive_int, check_representable

__all__ = ["PerPointNormalGuide", "exact_posterior_guide"]


class PerPointNormalGuide(PyroModule):
    r"""Per-data-point (non-amortized) mean-field guide:

    .. math:: q(z \mid x_i) = \mathcal{N}\big(z \mid m_i, \operatorname{diag} s_i^2\big),
        \qquad s_i = \exp(\ell_i),

    with free parameters :math:`(m_i, \ell_i)` for each of the ``n`` points of ``data``. This is
    the guide of Dai et al.'s analysis [1], which takes the encoder to be arbitrarily flexible so
    that no amortization gap [2] blurs what the objective itself prefers. Samples ``"z"`` inside
    the plate ``"data"`` like :class:`~pvae.guides.DiagNormalGuide`.

    Called as ``guide(x)`` (the site contract), it recognises every row of ``x`` as one of the
    training points by its exact values (identical rows share one posterior, as they would at
    any optimum) and refuses rows it was not built with. ``data`` is kept as a buffer, so it
    travels with ``state_dict`` and checkpoints.

    :param torch.Tensor data: the training points, shape ``(n, d)``.
    :param int latent_dim: ``q``.
    :param float init_scale: the initial :math:`s_i` (default 1, the prior's); the initial
        means are 0, so the guide starts at the prior.

    References

    [1] Dai, B., Wang, Z. & Wipf, D. (2020). The Usual Suspects? Reassessing Blame for VAE
        Posterior Collapse. ICML.
    [2] Cremer, C., Li, X. & Duvenaud, D. (2018). Inference Suboptimality in Variational
        Autoencoders. ICML.
    """

    def __init__(self, data: torch.Tensor, latent_dim: int, *, init_scale: float = 1.0):
        super().__init__(name=unique_name("PerPointNormalGuide"))
        check_data(data, "data")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        check_representable(init_scale, "init_scale", power=2, dtype=data.dtype)
        num_points, self.data_dim = data.shape
        self.register_buffer("data", data.detach().clone())
        self.loc = nn.Parameter(data.new_zeros(num_points, latent_dim))
        self.log_scale = nn.Parameter(data.new_full((num_points, latent_dim), math.log(init_scale)))
        self._index: dict[bytes, int] = {}
        self._indexed: tuple | None = None

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """The index into ``data`` of every row of ``x``, shape ``(batch,)``.

        :raises ValueError: naming the first row of ``x`` that is not a training point.
        """
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (batch, {self.data_dim}), got {tuple(x.shape)}")
        if x.dtype != self.data.dtype:
            raise ValueError(
                f"x has dtype {x.dtype}, but this per-point guide's points are {self.data.dtype}"
            )
        # Built lazily, and again whenever the points change (load_state_dict copies into them).
        version = (self.data.data_ptr(), self.data._version, self.data.dtype)
        if self._indexed != version:
            rows = self.data.detach().cpu().numpy() + 0.0  # + 0.0 turns −0.0 into 0.0
            self._index = {row.tobytes(): i for i, row in reversed(list(enumerate(rows)))}
            self._indexed = version
        # Look up each distinct row once: importance sampling stacks K copies of every point.
        unique, inverse = torch.unique(x.detach(), dim=0, return_inverse=True)
        found = []
        for row in unique.cpu().numpy() + 0.0:
            position = self._index.get(row.tobytes())
            if position is None:
                match = (x.detach() == torch.as_tensor(row, device=x.device)).all(-1)
                first = int(match.nonzero()[0])
                raise ValueError(
                    f"x[{first}] is not one of the {self.data.shape[0]} points this "
                    "per-point guide was built with; a non-amortized guide has no posterior "
                    "for new data (use an amortized guide such as DiagNormalGuide)"
                )
            found.append(position)
        return torch.as_tensor(found, device=x.device)[inverse]

    def z_dist(self, x: torch.Tensor) -> dist.Independent:
        index = self.index(x)
        return dist.Normal(self.loc[index], self.log_scale[index].exp()).to_event(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.z_dist(x))


def exact_posterior_guide(model, data: torch.Tensor):
    r"""A :class:`~pvae.guides.PerPointNormalGuide` set to the exact posterior of a
    :class:`~pvae.models.LinearGaussian` ``model`` at every point of ``data``.

    The exact posterior :math:`\mathcal N(M^{-1}W^\top(x - b), \sigma^2 M^{-1})` is a diagonal
    Normal when :math:`W^\top W` is diagonal, as for
    :meth:`~pvae.models.LinearGaussian.maximum_likelihood`; so that
    :func:`pvae.diagnostics.diagnose` can read off the closed-form solution's active units.

    :raises TypeError: if ``model`` is not a :class:`~pvae.models.LinearGaussian`.
    :raises ValueError: if ``data`` does not fit the model, or the posterior covariance is not
        diagonal.
    """
    if not isinstance(model, LinearGaussian):
        raise TypeError(f"model must be a pvae.models.LinearGaussian, got {type(model).__name__}")
    check_data(data, "data", dim=model.data_dim)
    check_dtypes(model, None, data, "data")
    with torch.no_grad():
        posterior = model.posterior(data)
        covariance = posterior.covariance_matrix[0]
        off_diagonal = covariance - torch.diag(covariance.diagonal())
        if (
            off_diagonal.abs().max()
            > 100 * torch.finfo(covariance.dtype).eps * covariance.diagonal().max()
        ):
            raise ValueError(
                "the model's posterior covariance is not diagonal (W has non-orthogonal "
                "columns), so no diagonal guide equals it"
            )
        guide = PerPointNormalGuide(data, model.latent_dim)
        guide.loc.copy_(posterior.mean)
        guide.log_scale.copy_(0.5 * covariance.diagonal().log().expand_as(guide.log_scale))
    return guide
