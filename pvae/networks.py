"""Neural-network building blocks: the MLP behind every encoder and decoder."""

from __future__ import annotations

import itertools

import torch
from pyro.nn import PyroModule
from torch import nn

from pvae.validation import check_positive_int, check_representable, check_sizes

__all__ = ["MLP", "NormalEncoder", "unique_name"]

_counter = itertools.count()


def unique_name(prefix: str) -> str:
    """A Pyro name no other module in this process has.

    Top-level :class:`~pyro.nn.PyroModule` s register their parameters in Pyro's global param
    store under ``<name>.<attribute path>``. Two unnamed modules of the same class would share
    entries there (the second silently reusing the first's weights), so every pvae model and
    guide takes a fresh name.
    """
    return f"{prefix}_{next(_counter)}"


class MLP(nn.Sequential):
    """A multilayer perceptron ``in_features → hidden_sizes... → out_features``.

    With ``hidden_sizes=()`` it is a single affine (linear) map.

    :param int in_features: input width.
    :param int out_features: output width.
    :param hidden_sizes: widths of the hidden layers, each followed by ``activation``.
    :param activation: an :class:`torch.nn.Module` class, default :class:`torch.nn.ReLU`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes=(256,),
        activation: type[nn.Module] = nn.ReLU,
    ):
        check_positive_int(in_features, "in_features")
        check_positive_int(out_features, "out_features")
        hidden_sizes = check_sizes(hidden_sizes, "hidden_sizes")
        layers: list[nn.Module] = []
        widths = (in_features, *hidden_sizes)
        for width_in, width_out in itertools.pairwise(widths):
            # ReLU in place spares a copy of every hidden activation; it is safe for autograd
            # here, as the linear layer before it does not keep its output for backward.
            act = activation(inplace=True) if activation is nn.ReLU else activation()
            layers += [nn.Linear(width_in, width_out), act]
        layers.append(nn.Linear(widths[-1], out_features))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features
        self.hidden_sizes = hidden_sizes


class NormalEncoder(PyroModule):
    """Amortized encoder ``x ↦ (loc, scale)`` of a diagonal Normal over ``latent_dim`` dims.

    .. math:: \\sigma(x) = \\mathrm{softplus}(h(x)) + \\sigma_{\\min} > 0

    :param int data_dim: input width ``d``.
    :param int latent_dim: latent width ``q``.
    :param hidden_sizes: MLP hidden widths (``()`` for an affine encoder).
    :param float scale_floor: the smallest scale σ_min the encoder can output (keeps the
        log-density of the guide finite).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_sizes=(256,), scale_floor=1e-4):
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.net = MLP(data_dim, 2 * latent_dim, hidden_sizes)
        self.scale_floor = check_representable(scale_floor, "scale_floor", power=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(x).split(self.latent_dim, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + self.scale_floor
