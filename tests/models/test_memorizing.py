"""The ladder's unbounded rungs, in pvae's own decoder classes: a per-pixel variance network
that reproduces one point (slope d/2) and a shared-γ MLP that reproduces every point (slope
nd/2), checked against the quadrature oracle; their floored versions stay under the bound."""

import math

import pytest
import torch

import pvae
from pvae.data import load_digits
from pvae.likelihoods import NormalDecoder
from pvae.models import every_point_shared, one_point_network


@pytest.fixture(scope="module")
def points():
    torch.set_default_dtype(torch.float64)  # the module fixture runs outside conftest's policy
    try:
        return load_digits(dequantize=True).train[:10]
    finally:
        torch.set_default_dtype(torch.float32)


def exact(model, x):
    return pvae.log_marginal_quadrature(model, x)


def bound(x, floor):
    return -(x.numel() / 2) * math.log(2 * math.pi * floor)


def test_both_are_members_of_the_trained_family(points):
    one = one_point_network(points, sharpness=10.0)
    every = every_point_shared(points, sharpness=10.0)
    for model, variance, hidden in ((one, "network", (2,)), (every, "shared", (18,))):
        assert isinstance(model.decoder, NormalDecoder)
        assert model.decoder.variance == variance
        assert model.decoder.net.hidden_sizes == hidden


def test_one_point_network_puts_its_mean_on_the_point(points):
    model = one_point_network(points, sharpness=50.0, index=3)
    z = torch.linspace(-3, 3, 13).unsqueeze(-1)
    fn = model.decoder.x_dist(z)
    torch.testing.assert_close(fn.mean, points[3].expand(13, -1))
    variance = fn.base_dist.scale.pow(2)[:, 0]
    torch.testing.assert_close(variance[z[:, 0] >= 1], torch.full((5,), math.exp(-50.0)))
    torch.testing.assert_close(variance[z[:, 0] <= 0], torch.ones(7))


def test_every_point_shared_reproduces_each_point_on_a_plateau(points):
    model = every_point_shared(points, sharpness=5.0)
    n = len(points)
    normal = torch.distributions.Normal(0.0, 1.0)
    centres = normal.icdf((torch.arange(n) + 0.5) / n).unsqueeze(-1)  # mid-mass of each step
    torch.testing.assert_close(model.decoder.x_dist(centres).mean, points)


@pytest.mark.parametrize(
    "build, per_unit, sharpness",
    [
        # log p(X) gains d/2 per unit of k = -log σ² (one point), n d/2 per unit of -log γ.
        (one_point_network, lambda x: x.shape[1] / 2, (200.0, 400.0)),
        (every_point_shared, lambda x: x.numel() / 2, (10.0, 20.0)),
    ],
)
def test_the_slope_is_the_derived_one_within_2_percent(points, build, per_unit, sharpness):
    low, high = (exact(build(points, sharpness=k), points).estimate.sum() for k in sharpness)
    slope = float(high - low) / (sharpness[1] - sharpness[0])
    assert slope == pytest.approx(per_unit(points), rel=0.02)


@pytest.mark.parametrize(
    "build, sharpness",
    [(one_point_network, k) for k in (50.0, 200.0, 400.0)]
    + [(every_point_shared, k) for k in (0.0, 10.0, 40.0)],
)
def test_importance_sampling_matches_the_oracle(points, build, sharpness):
    # Prior proposal, K = 20,000, a fixed seed: within 4 of its standard errors plus twice the
    # quadrature's own error estimate, at every point (measured: at most 2.4 se).
    model = build(points, sharpness=sharpness)
    oracle = exact(model, points)
    sampled = pvae.log_marginal(
        model, None, points, num_samples=20_000, proposal="prior", progress=False, seed=0
    )
    gap = (oracle.estimate - sampled.estimate).abs()
    assert bool((gap <= 4 * sampled.stderr + 2 * oracle.error).all())


@pytest.mark.parametrize("build", [one_point_network, every_point_shared])
def test_the_floored_versions_stay_under_the_bound(points, build):
    floor = 1e-3
    values = [
        float(exact(build(points, sharpness=k, variance_floor=floor), points).estimate.sum())
        for k in (0.0, 10.0, 100.0, 1000.0)
    ]
    assert max(values) <= bound(points, floor)
    assert build(points, sharpness=0.0, variance_floor=floor).log_density_bound() * len(
        points
    ) == pytest.approx(bound(points, floor))


def test_bad_input_is_named(points):
    with pytest.raises(ValueError, match=r"index must be an integer in \[0, 9\], got 10"):
        one_point_network(points, sharpness=1.0, index=10)
    with pytest.raises(ValueError, match="sharpness must be >= 0"):
        one_point_network(points, sharpness=-1.0)
    with pytest.raises(ValueError, match="points must hold at least 2 points, got 1"):
        every_point_shared(points[:1], sharpness=1.0)
    with pytest.raises(ValueError, match=r"ramp_share must be in \(0, 1\), got 1.5"):
        every_point_shared(points, sharpness=1.0, ramp_share=1.5)
