"""Gradient variance of Trace_ELBO and TraceMeanField_ELBO against closed forms."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

from pvae.diagnostics import gradient_variance

X, LOC, SCALE = 1.2, 0.3, 0.7


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def guide(x):
    loc = pyro.param("loc", torch.tensor(LOC))
    scale = pyro.param("scale", torch.tensor(SCALE), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(loc.expand(1), scale).to_event(1))


# z ~ N(0, 1), x ~ N(z, 1), q = N(m, s²), z = m + sε. Per draw, the gradient of the ELBO is
#   Trace_ELBO:     ∂m = x − 2m − 2sε,        ∂log s = s(x − 2m)ε − 2s²ε² + 1
#   analytic KL:    ∂m = x − 2m − sε,         ∂log s = s(x − m)ε − s²ε² − s² + 1
# so (Var ε² = 2) the variances are 4s² and s²(x − 2m)² + 8s⁴ against s² and s²(x − m)² + 2s⁴,
# and both means are (x − 2m, 1 − 2s²).
EXPECTED = {
    "trace": (4 * SCALE**2, SCALE**2 * (X - 2 * LOC) ** 2 + 8 * SCALE**4),
    "meanfield": (SCALE**2, SCALE**2 * (X - LOC) ** 2 + 2 * SCALE**4),
}


@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
def test_gradient_variance_matches_the_closed_form(elbo):
    # 10 particles per draw: a draw's variance is a tenth of one particle's, and the average of
    # 10 draws is close to Gaussian, so the sample variance over 2000 draws has a relative
    # standard error of about sqrt(2/2000) = 3.2% (a little more from the ε² terms); 15%
    # allows over 4 standard errors.
    x = torch.tensor([[X]])
    moments = gradient_variance(
        model, guide, x, elbo=elbo, num_draws=2000, num_particles=10, progress=False
    )
    loc_variance, log_scale_variance = EXPECTED[elbo]
    assert 10 * moments.variance["loc"].item() == pytest.approx(loc_variance, rel=0.15)
    assert 10 * moments.variance["scale"].item() == pytest.approx(log_scale_variance, rel=0.15)
    # the loss is −ELBO; its mean gradient has standard error sqrt(variance / 2000)
    loc_se = (moments.variance["loc"].item() / 2000) ** 0.5
    assert moments.mean["loc"].item() == pytest.approx(-(X - 2 * LOC), abs=5 * loc_se)
    scale_se = (moments.variance["scale"].item() / 2000) ** 0.5
    assert moments.mean["scale"].item() == pytest.approx(-(1 - 2 * SCALE**2), abs=5 * scale_se)
    assert moments.total_variance() == pytest.approx(sum(moments.summary().values()))


def test_gradient_variance_changes_no_parameter_and_names_bad_arguments():
    x = torch.tensor([[X]])
    gradient_variance(model, guide, x, num_draws=3, progress=False)
    assert pyro.param("loc").item() == LOC and pyro.param("loc").grad is None
    with pytest.raises(ValueError, match="num_draws must be at least 2"):
        gradient_variance(model, guide, x, num_draws=1, progress=False)
    with pytest.raises(ValueError, match="elbo must be one of"):
        gradient_variance(model, guide, x, elbo="tracegraph", progress=False)
