"""The two standard errors of a mean log p̂, paired and unpaired differences, the K-curve."""

import math

import pytest
import torch

import pvae
from pvae.data import linear_gaussian_data
from pvae.estimation import k_curve, paired_difference, unpaired_difference
from pvae.estimation.result import point_summary


class _Result:
    def __init__(self, estimate, stderr):
        self.estimate, self.stderr = torch.tensor(estimate), torch.tensor(stderr)


def test_point_summary_separates_monte_carlo_from_spread_over_points():
    summary = point_summary(torch.tensor([1.0, 3.0, 5.0, 7.0]), torch.tensor([0.3, 0.4, 0.0, 0.0]))
    assert summary["log_marginal"] == 4.0
    assert summary["stderr_mc"] == pytest.approx(0.5 / 4)  # √(0.09 + 0.16) / n
    # sd of (1, 3, 5, 7) is √(20/3); over √4:
    assert summary["stderr_points"] == pytest.approx(math.sqrt(20 / 3) / 2)


def test_paired_difference_uses_the_per_point_differences():
    first = _Result([10.0, 20.0, 30.0], [0.1, 0.1, 0.1])
    second = _Result([9.0, 19.5, 28.5], [0.2, 0.2, 0.2])
    result = paired_difference(first, second)
    # Differences 1, 0.5, 1.5: mean 1, sd 0.5.
    assert result["difference"] == pytest.approx(1.0)
    assert result["stderr_points"] == pytest.approx(0.5 / math.sqrt(3))
    assert result["stderr_mc"] == pytest.approx(math.sqrt(3 * 0.05) / 3)
    # Unpaired, the spread over points (sd 10 on each side) swamps the same difference.
    unpaired = unpaired_difference(first, second)
    assert unpaired["difference"] == pytest.approx(1.0)
    assert unpaired["stderr_points"] > 10 * result["stderr_points"]
    with pytest.raises(ValueError, match="must score the same points: got 3 and 2"):
        paired_difference(first, _Result([1.0, 2.0], [0.1, 0.1]))
    with pytest.raises(TypeError, match="second must be a per-point result"):
        paired_difference(first, [1.0])


def test_the_k_curve_is_the_estimate_on_nested_draws():
    data, model = linear_gaussian_data(10, 4, 2, seed=0)
    guide = pvae.build_guide("diag-normal", model, (8,))
    result = pvae.log_marginal(
        model, guide, data, num_samples=64, return_log_weights=True, seed=0, progress=False
    )
    curve = k_curve(result)
    assert curve.num_samples.tolist() == [1, 2, 4, 8, 16, 32, 64]
    # The last column is the estimate itself; the first is the first draw's log-weight.
    torch.testing.assert_close(curve.per_point[:, -1], result.estimate)
    torch.testing.assert_close(curve.per_point[:, 0], result.log_weights[:, 0])
    torch.testing.assert_close(curve.mean, curve.per_point.mean(0))
    assert math.isnan(curve.stderr_mc[0]) and curve.stderr_mc[-1] == pytest.approx(
        result.summary()["stderr_mc"]
    )
    assert k_curve(result, [3, 10]).num_samples.tolist() == [3, 10]
    with pytest.raises(ValueError, match="at most K = 64, got 65"):
        k_curve(result, [65])
    without = pvae.log_marginal(model, guide, data, num_samples=4, progress=False)
    with pytest.raises(ValueError, match="return_log_weights=True"):
        k_curve(without)


def test_the_k_curve_figure_draws_each_curve():
    from pvae.plots.estimates import plot_k_curve

    log_weights = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    figure = plot_k_curve({"train": k_curve(log_weights), "held-out": k_curve(log_weights - 1)})
    axis = figure.axes[0]
    assert [line.get_label() for line in axis.lines] == ["train", "held-out"]
    assert axis.get_xscale() == "log"
    with pytest.raises(TypeError, match=r"curves\['a'\] must be a KCurve"):
        plot_k_curve({"a": log_weights})
    # Another estimator's mean as a dashed line, kept in view however far above the curve.
    figure = plot_k_curve({"is": k_curve(log_weights)}, references={"ais": 50.0})
    axis = figure.axes[0]
    (line,) = [line for line in axis.lines if line.get_label() == "ais"]
    assert list(line.get_ydata()) == [50.0, 50.0] and line.get_linestyle() == "--"
    assert axis.get_ylim()[1] > 50.0
    with pytest.raises(ValueError, match=r"references\['ais'\] must be a finite number"):
        plot_k_curve({"is": k_curve(log_weights)}, references={"ais": math.nan})
