"""The verdict on a run, read from its numbers: constructed histories with known trends."""

import inspect
import math

import numpy as np
import pytest
import torch

from pvae.diagnostics.verdict import (
    MIN_TREND_POINTS,
    Rung,
    collapsed_points,
    ladder_rung,
    point_variance,
    read_verdict,
    trend,
)
from pvae.likelihoods import BernoulliDecoder, NormalDecoder
from pvae.models import VAE

EPOCHS = np.arange(10, 110, 10)
UNBOUNDED = Rung("one point", math.inf, "constructed")


def test_a_clear_rise_is_rising_with_its_slope():
    values = 2.0 * EPOCHS + np.random.default_rng(0).normal(0, 0.1, len(EPOCHS))
    result = trend(EPOCHS, values)
    assert result.direction == "rising"
    # The noise is 0.1 on values spread over 90 epochs: the slope is 2 within a few 1e-3.
    assert result.slope == pytest.approx(2.0, abs=0.01)
    assert result.stderr < 0.01
    assert "99% interval excludes 0" in result.reason


def test_noise_alone_is_rising_at_most_at_its_level():
    # Flat histories with Monte Carlo noise of known size: "rising" is a one-sided false
    # alarm at level alpha / 2 = 0.5%; in 2,000 runs, a binomial count above 2% (40) has
    # probability below 1e-9.
    rng = np.random.default_rng(1)
    rising = sum(
        trend(EPOCHS, rng.normal(0, 1, len(EPOCHS)), np.ones(len(EPOCHS))).direction == "rising"
        for _ in range(2000)
    )
    assert rising <= 40


def test_a_rise_smaller_than_its_error_is_not_rising():
    # A slope of 0.01 per epoch (0.9 over the window) under noise of standard error 1: the
    # interval is several nats wide, so it is neither rising nor flat.
    values = 0.01 * EPOCHS + np.random.default_rng(2).normal(0, 1, len(EPOCHS))
    result = trend(EPOCHS, values, np.ones(len(EPOCHS)))
    assert result.direction == "inconclusive"
    assert "includes 0 but is too wide to call it flat" in result.reason


def test_the_monte_carlo_error_counts_even_when_the_values_look_smooth():
    # Exactly linear values (no residual scatter) with large stated standard errors: the
    # slope's error is the Monte Carlo one, so a small rise is not called rising.
    values = 0.01 * EPOCHS
    assert trend(EPOCHS, values).direction == "rising"
    assert trend(EPOCHS, values, np.full(len(EPOCHS), 5.0)).direction == "inconclusive"


def test_flat_only_within_the_tolerance():
    values = 50 + np.random.default_rng(3).normal(0, 0.01, len(EPOCHS))
    assert trend(EPOCHS, values).direction == "flat"
    # A rise of 0.09 over the window, far beyond its error but within the tolerance, is flat;
    # with a smaller tolerance it is rising.
    assert trend(EPOCHS, 50 + 0.001 * EPOCHS).direction == "flat"
    assert trend(EPOCHS, 50 + 0.001 * EPOCHS, tolerance=0.01).direction == "rising"
    # The same values with a tolerance below their resolution are not flat.
    assert trend(EPOCHS, values, tolerance=1e-4).direction == "inconclusive"


def test_too_few_values_are_inconclusive():
    result = trend(EPOCHS[: MIN_TREND_POINTS - 1], EPOCHS[: MIN_TREND_POINTS - 1] * 100.0)
    assert result.direction == "inconclusive"
    assert f"a trend needs {MIN_TREND_POINTS}" in result.reason
    assert math.isnan(result.slope)


def test_a_non_finite_value_is_inconclusive():
    values = EPOCHS * 1.0
    values[-1] = math.nan
    assert trend(EPOCHS, values).direction == "inconclusive"


def test_only_the_window_counts():
    # A rise that stopped: over the last 5 epochs it is flat.
    values = np.minimum(EPOCHS, 50).astype(float)
    assert trend(EPOCHS, values, window=10).direction == "rising"
    assert trend(EPOCHS, values, window=5).direction == "flat"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"window": 3}, "window must be at least 5, got 3"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"alpha": 1.5}, "alpha must be in (0, 1), got 1.5"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        trend(EPOCHS, EPOCHS * 1.0, **arguments)


def test_epochs_must_increase_and_match():
    with pytest.raises(ValueError, match="epochs must be increasing"):
        trend(EPOCHS[::-1], EPOCHS * 1.0)
    with pytest.raises(ValueError, match="one length"):
        trend(EPOCHS, EPOCHS[:-1] * 1.0)


def _model(variance, **options):
    return VAE(NormalDecoder(2, 4, (8,), variance=variance, **options))


def test_ladder_rung_reads_the_bound_and_the_measured_variance():
    fixed = ladder_rung(_model("fixed"))
    assert fixed.name == "bounded"
    # −(d/2) log 2π for σ² = 1 and d = 4.
    assert fixed.bound == pytest.approx(-2 * math.log(2 * math.pi))
    assert ladder_rung(VAE(BernoulliDecoder(2, 4, (8,)))).bound == 0.0
    assert ladder_rung(_model("network", variance_floor=1e-3)).name == "bounded"
    varies = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0]])
    same = torch.full((2, 4), 0.3)
    model = _model("network")
    assert ladder_rung(model, varies).name == "one point"
    # The rung follows the measurement, not the decoder's setting: one variance for every z is
    # the shared-γ rung, whatever produced it.
    assert ladder_rung(model, same).name == "every point"
    assert ladder_rung(_model("shared"), same).name == "every point"
    assert ladder_rung(model).name == "unknown"
    assert ladder_rung(object()).name == "unknown"


def test_point_variance_and_collapsed_points():
    variance = torch.tensor([[1e-6, 1.0], [1e-6, 1e-6], [1e-2, 1e-2]])
    # Geometric means 1e-3, 1e-6, 1e-2: one pixel's tiny variance is not a collapsed point.
    assert torch.allclose(point_variance(variance), torch.tensor([1e-3, 1e-6, 1e-2]))
    # Point 2's error is small but its variance is not; point 1 is small in both.
    squared_error = torch.tensor([1e-9, 2 * 1e-5, 1e-9])
    assert collapsed_points(variance, squared_error, 1e-4) == [1]
    # Point 1 with an error of 1e-3 per pixel: its variance is small, its mean misses it.
    assert collapsed_points(variance, torch.tensor([1e-9, 2e-3, 1e-9]), 1e-4) == []
    with pytest.raises(ValueError, match="squared_error must have shape"):
        collapsed_points(variance, torch.zeros(2), 1e-4)
    with pytest.raises(ValueError, match="positive"):
        point_variance(torch.zeros(2, 2))


def _diverging(**overrides):
    arguments = {
        "epochs": EPOCHS,
        "train": 1.0 * EPOCHS,
        "train_stderr": np.full(len(EPOCHS), 0.1),
        "held_out": -1.0 * EPOCHS,
        "min_variance": 10.0 ** (-2 - EPOCHS / 30),
        "noise_variance": 3e-4,
        "rung": UNBOUNDED,
        "collapsed": [3, 7],
        "num_tracked": 10,
    }
    return read_verdict(**{**arguments, **overrides})


def test_diverging_needs_the_rise_and_the_variance_below_the_noise():
    verdict = _diverging()
    assert verdict.status == "diverging"
    assert verdict.summary == "diverging; unbounded once it reproduces one point"
    assert any(r.startswith("held-out log p̂: falling") for r in verdict.reasons)
    named = _diverging(estimator="IS, K = 100").reasons
    assert named[0].startswith("training log p̂ (IS, K = 100; nats per point): rising")
    assert named[1].startswith("held-out log p̂ (IS, K = 100): falling")
    assert any("2 of 10 tracked training points (e.g. #3, #7)" in r for r in verdict.reasons)
    # The same rise with the variance above the data's noise: rising, not a divergence.
    assert _diverging(noise_variance=1e-9).status == "rising"
    # ... with the variance flat at a floor: rising, never diverging.
    at_floor = _diverging(min_variance=np.full(len(EPOCHS), 1e-3), variance_floor=1e-3)
    assert at_floor.status == "rising"
    assert any("at its floor" in r for r in at_floor.reasons)
    # ... with no noise level known: the variance cannot be judged.
    assert _diverging(noise_variance=None).status == "rising"


def test_histories_that_show_nothing_are_inconclusive():
    rng = np.random.default_rng(4)
    noisy = 50 + rng.normal(0, 5, len(EPOCHS))
    verdict = _diverging(train=noisy, train_stderr=np.full(len(EPOCHS), 5.0))
    assert verdict.status == "inconclusive"
    assert verdict.summary.startswith("inconclusive: ")
    short = read_verdict(EPOCHS[:3], [1.0, 2.0, 3.0], rung=UNBOUNDED)
    assert short.status == "inconclusive"
    assert "a trend needs 5" in short.summary


def test_a_bounded_run_states_its_gap_and_an_excess_is_an_error():
    bounded = Rung("bounded", 130.0, "constructed")
    verdict = _diverging(train=120 + 0.05 * EPOCHS, rung=bounded)
    assert verdict.status == "rising"
    assert verdict.summary == "rising, 5.0 under its bound"
    excess = _diverging(train=100 + 0.5 * EPOCHS, rung=bounded)
    assert excess.status == "bound exceeded"


def test_the_verdict_takes_no_name():
    # Only numbers and the rung enter: there is no argument through which a label could.
    parameters = set(inspect.signature(read_verdict).parameters)
    assert not parameters & {"name", "label", "variant", "model"}
