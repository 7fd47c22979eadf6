"""The guide of :class:`~pvae.models.OneDimensional`."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from pvae.validation import check_finite_float, check_positive_float

__all__ = ["OneDimensionalGuide"]


class OneDimensionalGuide(pyro.nn.PyroModule):
    """The guide :math:`q(z) = \\mathcal{N}(\\text{loc}, \\text{scale}^2)` for
    :class:`OneDimensional` (the same for every data point)."""

    def __init__(self, loc: float, scale: float):
        super().__init__()
        self.loc = check_finite_float(loc, "loc")
        self.scale = check_positive_float(scale, "scale")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with pyro.plate("data", x.shape[0]):
            loc = x.new_full((1,), self.loc)
            return pyro.sample("z", dist.Normal(loc, self.scale).to_event(1))
