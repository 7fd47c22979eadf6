"""Finite inputs whose numbers overflow: refused with the reason, never a NaN or -inf returned.

The issue's cases are float32 (torch's default dtype, which the models are built in), so the
tests here build and evaluate in float32; docs/bad_inputs.md holds the float64 ones. Each
case returned NaN or -inf, or raised a raw OverflowError or a LinAlgError, before.
"""

from __future__ import annotations

import math
import re

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
from pvae.diagnostics import diagnose
from pvae.finite import NonFiniteDensityError
from pvae.validation import largest_entry


@pytest.fixture
def float32():
    torch.set_default_dtype(torch.float32)  # the conftest puts float64 back after the test


def digits_like(n: int = 32, d: int = 64) -> torch.Tensor:
    """Grey levels 0..16 like sklearn's digits, in float32."""
    return torch.randint(0, 17, (n, d), generator=torch.Generator().manual_seed(0)).float()


def pair(name: str, d: int = 64):
    model = pvae.build_model(name, d, 2, () if name == "linear-gaussian" else (16,))
    return model, pvae.build_guide("diag-normal", model, (16,))


ESTIMATORS = {
    "log_marginal": lambda m, g, x: pvae.log_marginal(m, g, x, num_samples=10, progress=False),
    "iwae_bound": lambda m, g, x: pvae.iwae_bound(m, g, x, num_samples=10),
    "elbo_per_point": lambda m, g, x: pvae.elbo_per_point(m, g, x, num_samples=10),
    "fit": lambda m, g, x: pvae.fit(m, g, x, epochs=1, progress=False),
    "diagnose": lambda m, g, x: diagnose(m, g, x),
}


@pytest.mark.parametrize("scale", [1e30, 1e18])
@pytest.mark.parametrize("name", ["normal-fixed", "normal-shared", "linear-gaussian"])
@pytest.mark.parametrize("entry", ESTIMATORS)
def test_data_whose_squares_overflow_float32_are_refused_naming_the_range(
    float32, entry, name, scale
):
    """Digits ×1e30 gave NaN and ×1e18 an ELBO of -inf; the limit √(max/d) is where a point's
    squared norm overflows (an oracle: float32's largest number)."""
    x = digits_like() * scale
    limit = math.sqrt(torch.finfo(torch.float32).max / 64)
    assert largest_entry(x) == pytest.approx(limit)
    assert float(x.max()) > limit  # 16e18 and 16e30 both past 2.3e18
    with pytest.raises(ValueError, match=r"is too large for torch\.float32") as caught:
        ESTIMATORS[entry](*pair(name), x)
    assert f"entries up to {limit:.3g} in magnitude work" in str(caught.value)


def test_data_just_below_the_limit_give_finite_estimates(float32):
    """The refusal is not too eager: entries of a tenth of the limit still give finite
    numbers (a fixed unit variance, whose log-density is -½‖x − μ‖² − const)."""
    x = digits_like()
    x = x / x.max() * 0.1 * largest_entry(x)
    model, guide = pair("normal-fixed")
    estimate = pvae.log_marginal(model, guide, x, num_samples=10, progress=False)
    assert bool(torch.isfinite(estimate.estimate).all())


def test_the_closed_form_refuses_them_too(float32):
    model = pvae.build_model("linear-gaussian", 64, 2, ())
    with pytest.raises(ValueError, match=r"x\[0, 0\] = 7e\+30 is too large for torch\.float32"):
        model.log_prob(digits_like() * 1e30)


@pytest.mark.parametrize(
    ("name", "options", "where"),
    [
        ("normal-fixed", {"scale": 1e308}, "scale"),
        ("normal-fixed", {"scale": 1e-30}, "scale"),
        ("normal-shared", {"init_variance": 1e308}, "init_variance"),
        ("normal-shared", {"variance_floor": 1e308}, "variance_floor"),
        ("normal-floor", {"variance_floor": 1e308}, "variance_floor"),
    ],
)
def test_model_options_past_float32_are_refused_naming_the_range(float32, name, options, where):
    """σ and σ² must have finite squares and reciprocals: in float32 σ ∈ [1.1e-19, 9.2e18],
    σ² ∈ [1.2e-38, 8.5e37] (the oracle: finfo.tiny and its reciprocal)."""
    tiny = torch.finfo(torch.float32).tiny
    power = 2 if where == "scale" else 1
    low, high = tiny ** (1 / power), (1 / tiny) ** (1 / power)
    with pytest.raises(ValueError, match=re.escape(f"{where} must lie in [{low:.2g}, {high:.2g}]")):
        pvae.build_model(name, 8, 2, (16,), **options)


def test_the_guide_scale_floor_past_float32_is_refused(float32):
    model = pvae.build_model("normal-fixed", 8, 2, (16,))
    with pytest.raises(ValueError, match=r"scale_floor must lie in \[1\.1e-19, 9\.2e\+18\]"):
        pvae.build_guide("diag-normal", model, (16,), scale_floor=1e30)


def test_float64_widens_the_range():
    """Under float64 (the tests' default) the float32-refused scale is accepted and trains."""
    model = pvae.build_model("normal-fixed", 8, 2, (16,), scale=1e-30)
    guide = pvae.build_guide("diag-normal", model, (16,))
    history = pvae.fit(model, guide, torch.rand(16, 8), epochs=1, progress=False)
    assert math.isfinite(history[-1]["elbo"])


def test_a_point_whose_weights_overflow_is_named_with_its_site():
    """A per-pixel variance network overflows on one large point, not on the others: the
    passes refuse that point by index (3) and name the site where the numbers went bad,
    instead of returning NaN for it."""
    x = torch.rand(8, 4)
    x[3] = 1e100  # finite, below float64's limit (6.7e153 for 4 entries), but exp() overflows
    model, guide = pair("normal-network", d=4)
    with pytest.raises(NonFiniteDensityError) as caught:
        pvae.log_marginal(model, guide, x, num_samples=10, progress=False)
    error = caught.value
    assert (error.point, error.site, error.program) == (3, "x", "model")
    assert "distribution parameter 'scale' of Normal" in error.detail
    assert str(error).startswith("the log importance weights are not finite")
    assert "on x[3], a finite point" in str(error)


def uniform_prior_model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Uniform(-torch.ones(1), torch.ones(1)).to_event(1))
        pyro.sample("x", dist.Normal(z.expand(x.shape), 1.0).to_event(1), obs=x)


def wide_guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))


def test_a_weight_of_zero_is_not_an_error():
    """A guide drawing outside the prior's support gives log-weights of -inf for those draws:
    the estimate counts them as zero (finite), the ELBO of the point is -inf, as documented.
    (Pyro's support checks would refuse the draws; they are off here, as a user may run.)"""
    x = torch.randn(5, 3)
    with pyro.validation_enabled(False):
        estimate = pvae.log_marginal(
            uniform_prior_model,
            wide_guide,
            x,
            num_samples=200,
            progress=False,
            return_log_weights=True,
        )
        elbo, _ = pvae.elbo_per_point(uniform_prior_model, wide_guide, x, num_samples=200)
    assert bool((estimate.log_weights == -math.inf).any(-1).all())  # each point had some
    assert bool(torch.isfinite(estimate.estimate).all())
    assert bool((elbo == -math.inf).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.complex64])
def test_all_finite_agrees_with_the_entrywise_check(dtype):
    # The oracle: isfinite entry by entry. The cases include sums that overflow although every
    # entry is finite (the fast check must fall back, not report inf), +inf beside -inf (a NaN
    # sum) and single NaN or inf entries in one of several tensors.
    from pvae.finite import all_finite

    big = torch.finfo(dtype).max if dtype.is_floating_point else torch.finfo(torch.float32).max
    generator = torch.Generator().manual_seed(0)
    for case in range(200):
        tensors = [torch.randn(s, generator=generator).to(dtype) for s in ((7, 3), (5,), ())]
        which = case % 6
        target = tensors[case % 3].view(-1)
        if which == 1:
            target[0] = float("nan")
        elif which == 2:
            target[-1] = float("inf")
        elif which == 3 and target.numel() > 1:
            target[0], target[1] = float("inf"), float("-inf")
        elif which == 4:
            target.fill_(big)  # finite entries, an infinite sum
        elif which == 5:
            target[0] = -float("inf")
        expected = all(bool(t.isfinite().all()) for t in tensors)
        assert all_finite(tensors) is expected, (case, tensors)
    assert all_finite([]) and all_finite([torch.tensor([1, 2])])  # integers are finite
