"""The Mattei–Frellsen construction and the one-dimensional example against their closed forms."""

import math

import pytest
import torch

import pvae
from pvae.distributions import NormalLogVariance
from pvae.guides import OneDimensionalGuide
from pvae.models import MatteiFrellsen, OneDimensional


@pytest.fixture
def digits():
    return pvae.load_digits(dequantize=True).train[:40]


def estimate(model, x, num_samples=4000):
    # The decoder is piecewise constant in z: with the prior as proposal every weight is one of
    # two values, so K = 4000 pins the mixture weight ½ to ±1.6% (one sd) and log p̂ to ±0.02.
    return pvae.log_marginal(
        model, None, x, num_samples=num_samples, proposal="prior", progress=False
    )


def test_log_marginal_matches_the_exact_mixture_for_any_sharpness(digits):
    for sharpness in (0.0, 10.0, 40.0, 1000.0):
        model = MatteiFrellsen(digits, sharpness=sharpness)
        result = estimate(model, digits)
        exact = model.log_prob(digits)
        assert torch.isfinite(result.estimate).all()
        # 4 × 40 = 160 comparisons: 5 se keeps the family-wise false alarm near 1e-4.
        assert (result.estimate - exact).abs().le(5 * result.stderr + 1e-9).all(), sharpness


def test_log_likelihood_grows_linearly_in_sharpness_with_slope_d_over_2(digits):
    # Derived in MatteiFrellsen's docstring: d/dk log p_k(X) → d/2 = 32 for 64 pixels.
    low, high = (
        estimate(MatteiFrellsen(digits, sharpness=k), digits).estimate.sum() for k in (20.0, 40.0)
    )
    slope = (high - low).item() / 20.0
    assert slope == pytest.approx(64 / 2, rel=0.02)
    at_1000 = estimate(MatteiFrellsen(digits, sharpness=1000.0), digits).estimate.sum()
    assert (at_1000 - high).item() / 960.0 == pytest.approx(32, rel=0.02)


def test_floored_sequence_never_exceeds_the_bound(digits):
    floor = 1e-3
    n, d = digits.shape
    bound = -(n * d / 2) * math.log(2 * math.pi * floor)
    for sharpness in (0.0, 5.0, -math.log(floor), 50.0, 1000.0):
        model = MatteiFrellsen(digits, sharpness=sharpness, variance_floor=floor)
        result = estimate(model, digits)
        assert (result.estimate <= model.log_density_bound()).all()
        assert result.estimate.sum() <= bound
        assert model.log_prob(digits).sum() <= bound


def test_normal_log_variance_is_exact_where_the_variance_underflows():
    loc = torch.tensor([0.5, -1.0])
    density = NormalLogVariance(loc, torch.tensor(-1000.0))
    at_mean = density.log_prob(loc)
    torch.testing.assert_close(at_mean, torch.full((2,), -0.5 * (math.log(2 * math.pi) - 1000)))
    assert (density.log_prob(loc + 1e-3) == -math.inf).all()
    moderate = NormalLogVariance(loc, torch.tensor(-2.0))
    reference = torch.distributions.Normal(loc, math.exp(-1.0))
    value = torch.tensor([0.1, 0.2])
    torch.testing.assert_close(moderate.log_prob(value), reference.log_prob(value))


@pytest.mark.parametrize("precision", [1.0, 100.0, 1e4])
def test_one_dimensional_closed_forms_match_log_marginal(precision):
    x = torch.zeros(1, 1)
    model = OneDimensional(weight=1.0, bias=0.0, precision=precision)
    guide = OneDimensionalGuide(loc=0.3, scale=0.5)
    result = pvae.log_marginal(
        model, guide, x, num_samples=100_000, return_log_weights=True, progress=False
    )
    assert abs(result.estimate - model.log_prob(x)) <= 4 * result.stderr
    elbo_se = result.log_weights.std() / math.sqrt(100_000)
    assert abs(result.elbo - model.elbo(x, 0.3, 0.5)) <= 4 * elbo_se
    loc, scale = model.posterior(x)
    exact_guide = OneDimensionalGuide(loc=loc.item(), scale=scale)
    tight = pvae.log_marginal(model, exact_guide, x, num_samples=10, progress=False)
    torch.testing.assert_close(tight.elbo, model.log_prob(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(model.elbo(x, loc.item(), scale), model.log_prob(x))


def test_identity_decoder_stays_bounded_while_ignoring_z_is_unbounded():
    x = torch.zeros(1, 1)
    bound = -0.5 * math.log(2 * math.pi)
    previous = -math.inf
    for precision in (1.0, 1e2, 1e4, 1e8):
        identity = OneDimensional(weight=1.0, bias=0.0, precision=precision)
        assert identity.log_prob(x).item() < bound
        ignoring = OneDimensional(weight=0.0, bias=0.0, precision=precision)
        exact = ignoring.log_prob(x).item()
        assert exact == pytest.approx(0.5 * math.log(precision / (2 * math.pi)))
        assert exact > previous
        previous = exact
        # q = p(z): KL = 0, and the ELBO is log p(x) itself: the KL term cannot stop the growth.
        prior = OneDimensionalGuide(loc=0.0, scale=1.0)
        assert ignoring.elbo(x, 0.0, 1.0).item() == pytest.approx(exact)
        result = pvae.log_marginal(ignoring, prior, x, num_samples=50, progress=False)
        assert result.estimate.item() == pytest.approx(exact, abs=1e-9)
    assert previous > 8  # ½ log(1e8 / 2π) ≈ 8.3: unbounded in λ


def test_one_dimensional_posterior_off_the_origin():
    # x ≠ 0, b ≠ 0, w ≠ 1: the exact posterior guide makes every weight log p(x) exactly, which
    # checks the posterior mean λw(x − b)/(1 + λw²) and variance 1/(1 + λw²) together.
    x = torch.tensor([[0.7]])
    model = OneDimensional(weight=2.0, bias=-0.3, precision=5.0)
    loc, scale = model.posterior(x)
    assert loc.item() == pytest.approx(5 * 2 * 1.0 / (1 + 5 * 4))
    guide = OneDimensionalGuide(loc=loc.item(), scale=scale)
    result = pvae.log_marginal(model, guide, x, num_samples=20, progress=False)
    torch.testing.assert_close(result.estimate, model.log_prob(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(result.elbo, model.log_prob(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(model.elbo(x, loc.item(), scale), model.log_prob(x))


def test_normal_log_variance_gradients_are_finite_at_the_mean():
    log_variance = torch.tensor([-1000.0, -800.0, -2.0], requires_grad=True)
    loc = torch.tensor([0.5, 0.5, 0.5])
    NormalLogVariance(loc, log_variance).log_prob(loc).sum().backward()
    torch.testing.assert_close(log_variance.grad, torch.full((3,), -0.5))
