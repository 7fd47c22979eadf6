"""Decoder likelihoods: the variance floor and its bound, σ-VAE's γ*, Bernoulli ≤ 0, the
continuous Bernoulli's normaliser."""

import itertools
import math

import pyro.distributions as dist
import pytest
import torch

from pvae.distributions import BernoulliLogits, SharedScaleNormal
from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder


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


def _continuous_bernoulli_decoder(logits: torch.Tensor) -> ContinuousBernoulliDecoder:
    """An affine decoder whose output is ``logits`` whatever z (weights 0)."""
    decoder = ContinuousBernoulliDecoder(1, logits.shape[-1], ())
    with torch.no_grad():
        decoder.net[-1].weight.zero_()
        decoder.net[-1].bias.copy_(logits)
    return decoder


def test_continuous_bernoulli_matches_its_closed_form():
    # Loaiza-Ganem & Cunningham (2019), eq. (1)-(2): log p = log C(λ) + x log λ + (1 − x) log(1 − λ)
    # with C(λ) = 2 atanh(1 − 2λ) / (1 − 2λ); λ away from ½, where torch uses a Taylor form.
    logits = torch.tensor([-3.0, -0.7, 0.4, 2.5])
    decoder = _continuous_bernoulli_decoder(logits)
    x = torch.tensor([[0.0, 0.25, 0.9, 1.0], [0.5, 1.0, 0.0, 0.3]])
    lam = torch.sigmoid(logits)
    log_c = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = (log_c + x * lam.log() + (1 - x) * (1 - lam).log()).sum(-1)
    got = decoder.x_dist(torch.zeros(2, 1), x).log_prob(x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("logit", [-6.0, -1.0, 0.0, 1e-4, 3.0])
def test_continuous_bernoulli_density_integrates_to_one(logit):
    # Simpson's rule on [0, 1] with 2001 nodes: error far below 1e-6 for these smooth densities.
    decoder = _continuous_bernoulli_decoder(torch.tensor([logit]))
    grid = torch.linspace(0, 1, 2001).unsqueeze(-1)
    density = decoder.x_dist(torch.zeros(2001, 1)).log_prob(grid).exp()
    weights = torch.ones(2001)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    integral = (weights * density).sum() / (3 * 2000)
    assert integral.item() == pytest.approx(1.0, abs=1e-6)


def test_continuous_bernoulli_is_unbounded_only_at_zero_and_one():
    # log p(0 | λ) = log(C(λ)(1 − λ)) ≈ log log(1/λ) grows without bound as λ → 0, until torch
    # clamps λ at the dtype's epsilon; inside (0, 1) the density falls instead.
    logits = torch.tensor([-5.0, -10.0, -20.0, -40.0])
    at_zero, inside = [], []
    for logit in logits:
        x_dist = _continuous_bernoulli_decoder(logit.reshape(1)).x_dist(torch.zeros(1, 1))
        at_zero.append(x_dist.log_prob(torch.zeros(1, 1)).item())
        inside.append(x_dist.log_prob(torch.full((1, 1), 0.3)).item())
    assert all(b > a for a, b in itertools.pairwise(at_zero))
    assert all(b < a for a, b in itertools.pairwise(inside))
    lam = torch.sigmoid(logits[0])
    expected = torch.log(2 * torch.atanh(1 - 2 * lam) / (1 - 2 * lam) * (1 - lam))
    assert at_zero[0] == pytest.approx(expected.item(), rel=1e-10)
    # the clamp: λ ≥ ε = 2.2e-16 in float64 caps a pixel at log(2 atanh(1 − 2ε)) ≈ 3.58 nats
    assert at_zero[-1] == pytest.approx(3.5847, abs=1e-3)
    assert ContinuousBernoulliDecoder(2, 5, ()).log_density_bound() == math.inf


def test_continuous_bernoulli_takes_grey_levels_and_refuses_values_outside_the_unit_interval():
    decoder = ContinuousBernoulliDecoder(2, 3, ())
    grey = torch.tensor([[0.0, 0.5, 1.0]])
    decoder.check_data(grey)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*x\[0, 2\] = 1.5"):
        decoder.x_dist(torch.zeros(1, 2), torch.tensor([[0.0, 0.5, 1.5]]))
    with pytest.raises(ValueError, match=r"data must lie in \[0, 1\].*data\[1, 0\] = -0.1"):
        decoder.check_data(torch.tensor([[0.0, 0.5, 1.0], [-0.1, 0.0, 0.0]]), "data")
    with pytest.raises(ValueError, match="must be binary"):
        BernoulliDecoder(2, 3, ()).check_data(grey)


def test_continuous_bernoulli_refuses_nan_naming_its_index():
    decoder = ContinuousBernoulliDecoder(2, 3, ())
    with pytest.raises(ValueError, match=r"x\[0, 1\] = nan"):
        decoder.check_data(torch.tensor([[0.5, math.nan, 0.2]]))


@pytest.mark.parametrize("scale_shape", [(), (4, 1), (3,)])
def test_shared_scale_normal_is_the_independent_normal(scale_shape):
    # The same density, sample path and gradients as Normal(loc, scale).to_event(1), for a
    # 0-d scale and for one scale per event, with the value broadcast against loc.
    loc = torch.randn(4, 3, 6, requires_grad=True)
    scale = (torch.rand(scale_shape) + 0.1).requires_grad_()
    value = torch.randn(3, 6)
    fast = SharedScaleNormal(loc, scale)
    plain = dist.Normal(loc, scale.unsqueeze(-1)).to_event(1)
    assert (fast.batch_shape, fast.event_shape) == (plain.batch_shape, plain.event_shape)
    got, expected = fast.log_prob(value), plain.log_prob(value)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(got.sum(), (loc, scale))
    for grad, other in zip(grads, torch.autograd.grad(expected.sum(), (loc, scale)), strict=True):
        torch.testing.assert_close(grad, other, rtol=1e-12, atol=1e-12)
    with torch.inference_mode():  # the in-place path
        torch.testing.assert_close(fast.log_prob(value), expected.detach(), rtol=1e-12, atol=0)
    expanded = fast.expand((2, 4, 3))
    assert isinstance(expanded, SharedScaleNormal) and expanded.batch_shape == (2, 4, 3)
    torch.testing.assert_close(
        expanded.log_prob(value), plain.expand((2, 4, 3)).log_prob(value), rtol=1e-12, atol=0
    )
    torch.manual_seed(3)
    draw = fast.rsample()
    torch.manual_seed(3)
    torch.testing.assert_close(draw, plain.rsample())


@pytest.mark.parametrize(
    ("logits_shape", "value_shape"),
    [((1000, 1, 12), (1, 12)), ((7, 12), (7, 12)), ((3, 5, 12), (5, 12)), ((4, 1, 6), (1, 1, 6)),
     ((1, 6), (5, 1, 6)), ((6,), (6,)), ((6,), (1, 6)), ((6,), (3, 6))],
)  # fmt: skip
def test_bernoulli_logits_is_the_independent_bernoulli(logits_shape, value_shape):
    # The same density and gradients as Bernoulli(logits=...).to_event(1), on binary values
    # broadcast every way the passes meet (K rows of one point: the matrix-vector path), and
    # large logits, where softplus must not overflow.
    logits = (torch.randn(logits_shape) * 30).requires_grad_()
    value = (torch.rand(value_shape) > 0.5).double()
    fast = BernoulliLogits(logits)
    plain = dist.Bernoulli(logits=logits).to_event(1)
    assert (fast.batch_shape, fast.event_shape) == (plain.batch_shape, plain.event_shape)
    got, expected = fast.log_prob(value), plain.log_prob(value)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    grad, other = (torch.autograd.grad(v.sum(), logits)[0] for v in (got, expected))
    torch.testing.assert_close(grad, other, rtol=1e-12, atol=1e-12)
    expanded, plain_expanded = (d.expand((2, *d.batch_shape)) for d in (fast, plain))
    assert isinstance(expanded, BernoulliLogits)
    draws = plain_expanded.sample()
    torch.testing.assert_close(expanded.log_prob(draws), plain_expanded.log_prob(draws))
    torch.manual_seed(3)
    draw = fast.sample()
    torch.manual_seed(3)
    torch.testing.assert_close(draw, plain.sample())
    with pytest.raises(ValueError, match="support"):  # validation still checks the support
        BernoulliLogits(logits.detach(), validate_args=True).log_prob(value * 0.5 + 0.25)


def test_bernoulli_decoder_uses_the_fast_density():
    decoder = BernoulliDecoder(2, 5, (4,))
    assert isinstance(decoder.x_dist(torch.randn(3, 2)), BernoulliLogits)


def test_shared_variance_decoders_use_the_fast_density():
    for variance in ("fixed", "shared", "optimal"):
        decoder = NormalDecoder(2, 5, (4,), variance=variance).eval()
        assert isinstance(decoder.x_dist(torch.randn(3, 2)), SharedScaleNormal)
    network = NormalDecoder(2, 5, (4,), variance="network")
    assert not isinstance(network.x_dist(torch.randn(3, 2)), SharedScaleNormal)
