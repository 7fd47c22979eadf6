"""The likelihood read from the trace (pvae.diagnostics.read_likelihood), checked against what
pvae's own models state about themselves."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pvae.diagnostics import read_likelihood
from pvae.guides import DiagNormalGuide
from pvae.registry import build_model


def _plain(module):
    """The same model behind a plain function: it states nothing, so the trace is read."""

    def model(x):
        return module(x)

    return model


@pytest.mark.parametrize(
    ("name", "options", "learned", "depends", "bounded"),
    [
        ("normal-fixed", {"scale": 0.5}, False, False, True),
        ("normal-shared", {}, True, False, False),
        ("normal-network", {}, True, True, False),
        ("normal-floor", {}, True, True, False),  # the floor is in the code, not in the trace
        ("bernoulli", {}, None, None, True),
    ],
)
def test_what_the_trace_shows_matches_what_the_model_states(
    name, options, learned, depends, bounded
):
    model = build_model(name, 6, 2, (8,), **options)
    guide = DiagNormalGuide(6, 2, (8,))
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    read = read_likelihood(_plain(model), guide, x)
    assert read.stated == ()
    assert (read.variance_learned, read.variance_depends_on_z) == (learned, depends)
    if learned is not None:
        assert read.variance_learned == model.variance_learned  # the model's own statement
    assert read.bounded is bounded
    if bounded:
        # the oracle: the bound the model computes for itself (Normal: −(d/2) log 2πσ²)
        assert read.log_density_bound == pytest.approx(model.log_density_bound(), abs=1e-12)
    else:
        assert math.isnan(read.log_density_bound)  # unknown, never read as bounded
    stated = read_likelihood(model, guide, x)
    assert set(stated.stated) >= {"log_density_bound"}
    assert stated.log_density_bound == model.log_density_bound()


def test_a_fixed_variance_bound_by_hand():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
            scale = torch.tensor([0.1, 1.0, 2.0])
            pyro.sample("obs", dist.Normal(z.expand(-1, 3), scale).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, :1], 1.0).to_event(1))

    read = read_likelihood(model, guide, torch.zeros(2, 3))
    expected = -0.5 * sum(math.log(2 * math.pi * s**2) for s in (0.1, 1.0, 2.0))
    assert read.family == "Normal" and read.site == "obs"
    assert read.log_density_bound == pytest.approx(expected, abs=1e-12)
    assert "nats per point (read from the trace)" in repr(read)


def test_a_laplace_likelihood_is_unknown_not_bounded():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.0).to_event(1))
            pyro.sample("obs", dist.Laplace(z.expand(-1, 3), 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, :1], 1.0).to_event(1))

    read = read_likelihood(model, guide, torch.zeros(2, 3))
    assert read.family == "Laplace" and read.variance_learned is None
    assert math.isnan(read.log_density_bound) and not read.bounded
    assert "unknown (never read as bounded)" in repr(read)
