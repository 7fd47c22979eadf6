"""Posterior-collapse diagnostics against constructed cases with known answers."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pvae.diagnostics import diagnose


def model_ignoring_z(x):
    # The decoder ignores z: the data are N(0, I) whatever z is.
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0).to_event(1), obs=x)


def fixed_guide(loc, scale):
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample(
                "z",
                dist.Normal(x.new_tensor(loc), x.new_tensor(scale))
                .expand([x.shape[0], 2])
                .to_event(1),
            )

    return guide


def test_prior_as_posterior_gives_zero_kl_no_active_unit_and_no_information():
    # The optimum for a decoder that ignores z: q(z|x) = p(z) for every x.
    x = torch.randn(300, 3)
    result = diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x)
    torch.testing.assert_close(result.kl_per_dim, torch.zeros(2), rtol=0, atol=1e-12)
    assert result.num_active == 0
    assert abs(result.mutual_information) < 1e-9


def test_known_kl_per_dimension_for_a_fixed_guide():
    # KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − log σ² − 1): (1, 0.5) gives ½(1.25 − log 0.25 − 1).
    x = torch.randn(50, 3)
    result = diagnose(model_ignoring_z, fixed_guide([1.0, 0.0], [0.5, 1.0]), x)
    expected = torch.tensor([0.5 * (1 + 0.25 - math.log(0.25) - 1), 0.0])
    torch.testing.assert_close(result.kl_per_dim, expected, rtol=1e-12, atol=1e-12)
    assert result.num_active == 0  # the same q for every x: nothing about x gets through
    assert abs(result.mutual_information) < 1e-9


def test_activity_is_the_variance_of_the_posterior_means_and_information_tends_to_log_n():
    # q(z|x) = N((x₀, x₁ / 20), 1e-4): the activity is the variance of those columns over the
    # data, so dimension 0 (variance ≈ 1) is active and dimension 1 (≈ 1/400 = 0.0025) not.
    # Tight, well-separated posteriors identify each point: I(x; z) → log n (its maximum for n
    # points), here within 1e-3 nats.
    x = torch.randn(400, 3)

    def encoder(x):
        with pyro.plate("data", x.shape[0]):
            loc = torch.stack([x[:, 0], x[:, 1] / 20], -1)
            pyro.sample("z", dist.Normal(loc, 1e-4).to_event(1))

    result = diagnose(model_ignoring_z, encoder, x, chunk_size=128)
    expected = torch.stack([x[:, 0], x[:, 1] / 20], -1).var(0, correction=0)
    torch.testing.assert_close(result.activity, expected)
    assert result.active.tolist() == [True, False]
    assert result.mutual_information == pytest.approx(math.log(400), abs=1e-3)
    assert result.scales.shape == (400, 2)


def test_diagnose_rejects_what_it_cannot_read():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="site must be a latent site of the pair, got 'w'"):
        diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x, site="w")
    with pytest.raises(ValueError, match="threshold must be > 0, got 0"):
        diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x, threshold=0)
