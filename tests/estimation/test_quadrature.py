"""The quadrature oracle against closed forms: pPCA (q = 1, 2), the one-dimensional example,
the Mattei–Frellsen construction; and against importance sampling for a nonlinear decoder."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
from pvae.data import linear_gaussian_data, load_digits
from pvae.estimation import log_marginal_quadrature
from pvae.models import MatteiFrellsen, OneDimensional


@pytest.mark.parametrize("latent_dim", [1, 2])
@pytest.mark.parametrize("noise_variance", [0.5, 0.01])
def test_ppca_closed_form_to_1e_8(latent_dim, noise_variance):
    # A Gaussian posterior, smooth: Simpson's rule converges fast (measured ~1e-13).
    data, model = linear_gaussian_data(12, 6, latent_dim, noise_variance=noise_variance, seed=1)
    result = log_marginal_quadrature(model, data, tol=1e-10)
    assert bool(result.converged.all())
    torch.testing.assert_close(result.estimate, model.log_prob(data), rtol=0, atol=1e-8)


@pytest.mark.parametrize("precision", [1.0, 1e2, 1e4, 1e8])
@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_one_dimensional_closed_form(precision, weight):
    # log N(0 | b, w² + 1/λ): bounded for the identity decoder, unbounded for w = 0.
    model = OneDimensional(weight=weight, bias=0.0, precision=precision)
    x = torch.zeros(1, 1)
    result = log_marginal_quadrature(model, x, tol=1e-10)
    torch.testing.assert_close(result.estimate, model.log_prob(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("sharpness", [0.0, 100.0, 1600.0])
def test_a_step_function_decoder_reports_its_own_error(sharpness):
    # The construction jumps in z: Simpson's rule converges only as O(h) there and stops at
    # max_nodes unconverged, but the error it reports is the size of the true error.
    x = load_digits(dequantize=True).train[:5]
    model = MatteiFrellsen(x, sharpness=sharpness)
    result = log_marginal_quadrature(model, x)
    gap = (result.estimate - model.log_prob(x)).abs()
    assert bool((gap <= 2 * result.error + 1e-9).all())
    assert float(gap.max()) < 1e-3


def test_a_nonlinear_decoder_agrees_with_importance_sampling():
    # An MLP decoder (kinks in z: O(h²)) against the prior-proposal IS estimate, K = 50,000,
    # within 4 of its standard errors at every point.
    pyro.set_rng_seed(3)
    x = load_digits(dequantize=True).train[:6]
    model = pvae.build_model("normal-shared", 64, 1, (16,), init_variance=0.05)
    result = log_marginal_quadrature(model, x)
    assert float(result.error.max()) < 1e-5
    sampled = pvae.log_marginal(
        model, None, x, num_samples=50_000, proposal="prior", progress=False, seed=0
    )
    assert bool(((result.estimate - sampled.estimate).abs() <= 4 * sampled.stderr).all())


class ThreeDimensional(torch.nn.Module):
    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)


def test_bad_input_is_named():
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="dimension 1 or 2; site 'z' has event shape"):
        log_marginal_quadrature(ThreeDimensional(), x)
    model = OneDimensional(weight=1.0, bias=0.0, precision=1.0)
    with pytest.raises(ValueError, match="bound must be a finite number > 0, got 0"):
        log_marginal_quadrature(model, x, bound=0)
    with pytest.raises(ValueError, match="coarse_nodes must be an odd integer ≥ 3, got 4"):
        log_marginal_quadrature(model, x, coarse_nodes=4)
    with pytest.raises(ValueError, match="tol must be a number > 0"):
        log_marginal_quadrature(model, x, tol=-1)
