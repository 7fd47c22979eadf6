"""log_marginal results as xarray/arviz objects, and bits per dimension."""

import math
import warnings

import arviz as az
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import pvae
from pvae.estimation import bits_per_dim
from pvae.registry import build_guide

NUM_SAMPLES, NUM_POINTS = 400, 12


@pytest.fixture
def result(ppca):
    model, data = ppca
    guide = build_guide("diag-normal", model, (8,))  # untrained: uneven weights, k̂ of all kinds
    return pvae.log_marginal(
        model,
        guide,
        data[:NUM_POINTS],
        num_samples=NUM_SAMPLES,
        return_log_weights=True,
        progress=False,
    )


def test_dataset_holds_every_result_unchanged(result):
    dataset = result.to_dataset()
    assert dataset["log_weight"].dims == ("chain", "draw", "point")
    assert dataset["log_weight"].shape == (1, NUM_SAMPLES, NUM_POINTS)
    np.testing.assert_array_equal(dataset["log_weight"].values[0], result.log_weights.T.numpy())
    for name, field in [
        ("log_marginal", result.estimate),
        ("stderr", result.stderr),
        ("importance_ess", result.ess),
        ("pareto_k", result.khat),
        ("elbo", result.elbo),
    ]:
        assert dataset[name].dims == ("point",)
        np.testing.assert_array_equal(dataset[name].values, field.numpy())
    assert dataset.attrs == {"num_samples": NUM_SAMPLES, "proposal": "guide"}


def test_arviz_plot_khat_ess_and_psislw_run_on_the_inference_data(result):
    idata = result.to_inference_data()
    assert isinstance(idata, az.InferenceData)
    stats = idata.sample_stats

    # plot_khat draws one marker per point at our k̂ (arviz 0.23 warns that it will want its own
    # ELPDData instead of a DataArray, and trips a matplotlib deprecation).
    figure = Figure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = az.plot_khat(stats["pareto_k"], ax=figure.subplots())
    offsets = np.asarray(axes.collections[0].get_offsets())
    np.testing.assert_array_equal(offsets[:, 1], result.khat.numpy())

    # az.ess measures autocorrelation: importance draws are independent, so bulk ESS ≈ K for
    # every point, while the importance ESS (the spread of the weights) is far lower here.
    # Tolerance: the bulk-ESS estimate of K iid draws has a relative sd of about 5-10% at
    # K = 400; 0.6K-1.5K is well outside that.
    ess = az.ess(stats, var_names=["log_weight"])["log_weight"].values
    assert ess.shape == (NUM_POINTS,)
    assert np.all((0.6 * NUM_SAMPLES < ess) & (ess < 1.5 * NUM_SAMPLES))
    assert np.median(stats["importance_ess"].values) < 0.5 * NUM_SAMPLES

    # az.psislw on the stacked draws fits the same tail by the same method (pvae calls Pyro's
    # Zhang-Stephens fit, arviz its own): equal up to float rounding (seen: 1e-14).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns about k̂ > 0.7, which we report
        _, khat = az.psislw(stats["log_weight"].stack(__sample__=("chain", "draw")))
    np.testing.assert_allclose(khat.values, result.khat.numpy(), rtol=1e-10, atol=1e-12)


def test_conversion_needs_the_log_weights(ppca):
    model, data = ppca
    guide = build_guide("diag-normal", model, (8,))
    result = pvae.log_marginal(model, guide, data[:3], num_samples=10, progress=False)
    with pytest.raises(ValueError, match="return_log_weights=True"):
        result.to_inference_data()


def test_bits_per_dim_of_uniform_models():
    # A uniform density on [0, 1)^d has log p = 0: log2 L bits/dim on L-level data. A uniform
    # distribution on binary pixels has log p = −d log 2: 1 bit/dim.
    assert bits_per_dim(0.0, 64, num_levels=17) == pytest.approx(math.log2(17), rel=1e-15)
    assert bits_per_dim(-64 * math.log(2), 64) == pytest.approx(1.0, rel=1e-15)
    log_px = torch.tensor([-10.0, 0.0, 5.0])
    torch.testing.assert_close(
        bits_per_dim(log_px, 4, num_levels=256), -log_px / (4 * math.log(2)) + 8.0
    )
    with pytest.raises(ValueError, match="num_levels must be an integer >= 2, got 1"):
        bits_per_dim(0.0, 64, num_levels=1)
    with pytest.raises(ValueError, match="data_dim"):
        bits_per_dim(0.0, 0)


def test_ais_results_convert_to_arviz_with_every_field_unchanged(ppca):
    model, data = ppca
    x = data[:5]
    result = pvae.ais(
        model, None, x, num_steps=6, num_chains=3, proposal="prior", return_increments=True,
        seed=0, progress=False,
    )  # fmt: skip
    stats = result.to_inference_data().sample_stats
    assert stats["log_weight"].dims == ("chain", "draw", "point")
    np.testing.assert_array_equal(stats["log_weight"].values[:, 0].T, result.log_weights.numpy())
    # The increments along each chain add up to its log-weight.
    np.testing.assert_allclose(
        stats["increments"].sum("step").values, stats["log_weight"].values, rtol=1e-12
    )
    for name, field in [
        ("log_marginal", result.estimate),
        ("stderr", result.stderr),
        ("acceptance", result.acceptance),
    ]:
        np.testing.assert_array_equal(stats[name].values, field.numpy())
    np.testing.assert_array_equal(stats["step_size"].values, result.step_size.numpy())
    assert stats.attrs == {"estimator": "ais", "num_steps": 6, "num_chains": 3, "proposal": "prior"}


@pytest.mark.parametrize("num_samples", [10, 24, 25, 100, 1000, 5000])
def test_psis_khat_equals_arviz_psislw_on_light_and_heavy_tails(num_samples):
    """The oracle: arviz.psislw on the same rows (Normal log-weights of several spreads, some
    of thousands of nats, and Student-t ones with heavy tails); ``inf`` and ``nan`` on the same
    rows (tails of at most 4 draws; fits that fail in both)."""
    from pvae.estimation import psis_khat

    rng = np.random.default_rng(num_samples)
    rows = rng.standard_normal((40, num_samples)) * rng.uniform(0.1, 5, (40, 1))
    rows[:10] = rng.standard_t(1.5, (10, num_samples))
    rows[10:20] *= 2000  # spreads of thousands of nats: the fit's weights underflow
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, expected = az.psislw(rows.copy())
    np.testing.assert_allclose(
        psis_khat(torch.from_numpy(rows)).numpy(), expected, rtol=1e-10, atol=1e-12
    )
