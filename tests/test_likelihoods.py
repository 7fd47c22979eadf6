"""Decoder likelihoods: the variance floor and its bound, σ-VAE's γ*, Bernoulli ≤ 0."""

import math

import pytest
import torch

from pvae.likelihoods import BernoulliDecoder, NormalDecoder


def test_floor_bounds_every_variance_and_the_log_density():
    # Drive the raw log-variance to −1000: unfloored the variance underflows to 0; floored it
    # is ξ, and no point can have log-density above −(d/2) log(2πξ) (Mattei & Frellsen 2018).
    floor = 1e-3
    decoder = NormalDecoder(2, 5, (), variance="network", variance_floor=floor)
    with torch.no_grad():
        decoder.net[-1].bias[5:] = -1000.0
    z = torch.randn(7, 2)
    x_dist = decoder.x_dist(z)
    variance = x_dist.base_dist.scale.pow(2)
    assert (variance >= floor).all()
    torch.testing.assert_close(variance, torch.full_like(variance, floor), rtol=1e-12, atol=0)
    bound = -0.5 * 5 * math.log(2 * math.pi * floor)
    assert decoder.log_density_bound() == pytest.approx(bound)
    at_mean = x_dist.log_prob(x_dist.base_dist.loc)  # the density's maximum
    torch.testing.assert_close(at_mean, torch.full_like(at_mean, bound), rtol=1e-12, atol=0)

    unfloored = NormalDecoder(2, 5, (), variance="network")
    assert unfloored.log_density_bound() == math.inf


def test_fixed_and_bernoulli_bounds():
    fixed = NormalDecoder(2, 5, (), variance="fixed", scale=0.5)
    assert fixed.log_density_bound() == pytest.approx(-2.5 * math.log(2 * math.pi * 0.25))
    assert BernoulliDecoder(2, 5, ()).log_density_bound() == 0.0
    assert NormalDecoder(2, 5, (), variance="shared").log_density_bound() == math.inf


def test_optimal_variance_is_the_mean_squared_error_in_training_only():
    # σ-VAE: γ* = mean over points and pixels of (x − μ(z))², refitted per training batch.
    decoder = NormalDecoder(2, 5, (4,), variance="optimal")
    z, x = torch.randn(30, 2), torch.rand(30, 5)
    decoder.train()
    x_dist = decoder.x_dist(z, x)
    expected = (x - decoder.net(z)).pow(2).mean()
    variance = x_dist.base_dist.scale.pow(2)
    torch.testing.assert_close(variance, expected.detach().expand_as(variance))
    decoder.eval()
    other = decoder.x_dist(z, x + 10.0)  # eval: the stored γ*, not this batch's
    torch.testing.assert_close(other.base_dist.scale.pow(2), expected.detach().expand_as(variance))


def test_shared_variance_is_one_learned_scalar():
    decoder = NormalDecoder(2, 5, (4,), variance="shared", init_variance=0.3)
    scale = decoder.x_dist(torch.randn(6, 2)).base_dist.scale
    torch.testing.assert_close(scale.pow(2), torch.full_like(scale, 0.3))
    assert [name for name, _ in decoder.named_parameters() if "variance" in name] == [
        "raw_log_variance"
    ]


def test_optimal_variance_for_evaluation_is_the_running_average_of_batch_optima():
    # Eval mode must not depend on which batch came last: it uses the mean of the batches' γ*
    # (the first ten; an exponential average after that).
    decoder = NormalDecoder(2, 5, (4,), variance="optimal")
    decoder.train()
    z = torch.randn(8, 2)
    optima = []
    for shift in (0.0, 1.0, 3.0):
        x = torch.rand(8, 5) + shift
        decoder.x_dist(z, x)
        optima.append((x - decoder.net(z)).pow(2).mean().item())
    decoder.eval()
    variance = decoder.x_dist(z).base_dist.scale.pow(2)
    torch.testing.assert_close(variance, torch.full_like(variance, sum(optima) / 3))
