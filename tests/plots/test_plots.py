"""pvae.plots: each figure shows its inputs (values read back from the artists), and bad input
is refused with an error naming the argument."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import pvae
from pvae.estimation import ImportanceEstimate
from pvae.plots import (
    latent_grid_codes,
    plot_collapse_depth,
    plot_construction,
    plot_demo,
    plot_history,
    plot_interpolation,
    plot_iwae_vs_elbo,
    plot_khat,
    plot_latent_grid,
    plot_latent_scatter,
    plot_log_marginal,
    plot_reconstructions,
    plot_samples,
    plot_scale_histograms,
)


def estimate(log_marginal, stderr, elbo, proposal="guide") -> ImportanceEstimate:
    """An ImportanceEstimate over three points whose summary is known by hand."""
    estimate = torch.tensor(log_marginal) + torch.tensor([-1.0, 0.0, 1.0])
    # summary()'s stderr is sqrt(Σ stderr_i²) / n: three equal stderr_i = s·√3 give s.
    per_point = torch.full((3,), stderr * math.sqrt(3))
    return ImportanceEstimate(
        estimate=estimate,
        stderr=per_point,
        ess=torch.full((3,), 10.0),
        khat=torch.zeros(3),
        elbo=torch.full((3,), elbo),
        num_samples=100,
        proposal=proposal,
    )


def line_labelled(axis, label):
    (line,) = [line for line in axis.lines if line.get_label() == label]
    return line


def image_array(axis) -> np.ndarray:
    (image,) = axis.images
    return np.asarray(image.get_array())


# log p̂ with error bars


def test_log_marginal_points_are_the_means_and_bars_two_standard_errors():
    results = {
        "model A": estimate(-90.0, 0.25, -95.0),
        "model B": estimate(-80.0, 0.5, -82.0).summary(),
        "prior": estimate(-85.0, 1.0, -120.0, proposal="prior"),
    }
    figure = plot_log_marginal(results, title="three")
    (axis,) = figure.axes
    (container,) = axis.containers
    data_line, _, (bars,) = container.lines
    np.testing.assert_allclose(data_line.get_ydata(), [-90.0, -80.0, -85.0])
    segments = np.array(bars.get_segments())  # (label, end, (x, y))
    np.testing.assert_allclose(segments[:, 0, 1], [-90.5, -81.0, -87.0])
    np.testing.assert_allclose(segments[:, 1, 1], [-89.5, -79.0, -83.0])
    # ELBO markers for the guide proposals; the prior's mean log-weight marked apart
    np.testing.assert_allclose(line_labelled(axis, "ELBO").get_ydata(), [-95.0, -82.0])
    prior = line_labelled(axis, "mean log-weight (prior proposal)")
    np.testing.assert_allclose(prior.get_ydata(), [-120.0])
    assert [t.get_text() for t in axis.get_xticklabels()] == list(results)
    assert [t.get_text() for t in axis.texts] == ["gap 5", "gap 2", "gap 35"]
    assert axis.get_title() == "three"
    legend = [t.get_text() for t in axis.get_legend().get_texts()]
    assert legend[0] == "log p̂(x) ± 2 s.e." and "ELBO" in legend


def test_log_marginal_without_a_standard_error_draws_no_bar():
    # K = 1: the standard error is nan; the point is drawn, its bar has length 0
    figure = plot_log_marginal({"K=1": {"log_marginal": -3.0, "stderr": math.nan}})
    (axis,) = figure.axes
    (bars,) = axis.containers[0].lines[2]
    np.testing.assert_allclose(np.array(bars.get_segments())[0, :, 1], [-3.0, -3.0])
    assert not axis.texts  # no ELBO, no gap


@pytest.mark.parametrize(
    ("results", "error", "message"),
    [
        ({}, ValueError, "results is empty"),
        ({"a": {"stderr": 0.1}}, ValueError, r"results\['a'\] has no 'log_marginal'"),
        ({"a": {"log_marginal": math.inf, "stderr": 0.1}}, ValueError, "must be finite"),
        ({"a": {"log_marginal": -1.0, "stderr": -0.1}}, ValueError, "finite and >= 0"),
        ({"a": {"log_marginal": "x", "stderr": 0.1}}, ValueError, "must be a number, got 'x'"),
        ({"a": -1.0}, TypeError, r"results\['a'\] must be an ImportanceEstimate"),
        ([-1.0], TypeError, "results must be a dict"),
    ],
)
def test_log_marginal_refuses_bad_results(results, error, message):
    with pytest.raises(error, match=message):
        plot_log_marginal(results)


# k̂


def test_khat_thresholds_and_non_finite_values_left_out_and_counted():
    khat = torch.tensor([0.1, 0.9, math.inf, math.nan, 0.6, 0.75])
    figure = plot_khat(khat, labels="held-out")
    (axis,) = figure.axes
    thresholds = {float(line.get_ydata()[0]) for line in axis.lines}
    assert thresholds == {0.5, 0.7}
    assert all(np.ptp(line.get_ydata()) == 0 for line in axis.lines)  # horizontal
    (points,) = axis.collections
    np.testing.assert_allclose(points.get_offsets(), [[0, 0.1], [1, 0.9], [4, 0.6], [5, 0.75]])
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    # above 0.7: 0.9, 0.75 and inf (as summary()'s khat_above_0.7), of 6
    assert legend[0] == (
        "held-out: 50% of 6 above 0.7; 1 inf (K too small) not shown; "
        "1 nan (equal weights) not shown"
    )
    assert "good < 0.5" in legend and "unreliable > 0.7" in legend


def test_khat_of_several_series():
    figure = plot_khat({"train": np.array([0.2, 0.8]), "test": torch.tensor([0.3, 0.4, 0.9])})
    (axis,) = figure.axes
    assert [len(c.get_offsets()) for c in axis.collections] == [2, 3]
    np.testing.assert_allclose(axis.collections[1].get_offsets()[:, 1], [0.3, 0.4, 0.9])
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[:2] == ["train: 50% of 2 above 0.7", "test: 33% of 3 above 0.7"]
    rows = plot_khat(np.array([[0.1, 0.2], [0.8, 0.9]]), labels=["K=10", "K=1000"])
    assert [t.get_text() for t in rows.legends[0].get_texts()][:2] == [
        "K=10: 0% of 2 above 0.7",
        "K=1000: 100% of 2 above 0.7",
    ]


def test_khat_all_non_finite_draws_nothing_and_says_so():
    figure = plot_khat(torch.full((4,), math.inf))
    assert len(figure.axes[0].collections[0].get_offsets()) == 0
    legend = figure.legends[0].get_texts()[0].get_text()
    assert legend == "100% of 4 above 0.7; 4 inf (K too small) not shown"


@pytest.mark.parametrize(
    ("khat", "labels", "message"),
    [
        (torch.tensor([]), None, "khat is empty"),
        (torch.zeros(2, 2, 2), None, r"khat must have shape \(n,\) or \(series, n\)"),
        ({}, None, "khat is empty"),
        ({"a": torch.zeros(2)}, ["a"], "labels must be None when khat is a dict"),
        ({"a": torch.zeros(2, 2)}, None, r"khat\['a'\] must have shape \(n,\)"),
        (torch.zeros(2, 3), ["only one"], "labels must name each of the 2 series"),
    ],
)
def test_khat_refuses_bad_input(khat, labels, message):
    with pytest.raises(ValueError, match=message):
        plot_khat(khat, labels=labels)


# images


def test_reconstructions_show_the_data_above_their_reconstructions():
    x = torch.rand(5, 12, requires_grad=True)  # detached by the plot
    reconstructions = np.random.default_rng(0).random((5, 12))
    figure = plot_reconstructions(x, reconstructions, image_shape=(3, 4), num_images=3)
    assert len(figure.axes) == 6
    top, bottom = figure.axes[:3], figure.axes[3:]
    for i in range(3):
        np.testing.assert_allclose(image_array(top[i]), x[i].detach().reshape(3, 4).numpy())
        np.testing.assert_allclose(image_array(bottom[i]), reconstructions[i].reshape(3, 4))
    assert [top[0].get_ylabel(), bottom[0].get_ylabel()] == ["data", "reconstruction"]
    # one grey scale for every image, [0, 1] here
    assert {axis.images[0].get_clim() for axis in figure.axes} == {(0.0, 1.0)}
    # at most n columns
    assert len(plot_reconstructions(x, reconstructions, image_shape=(3, 4)).axes) == 10


def test_grey_scale_widens_to_values_outside_zero_one():
    images = torch.tensor([[-0.5, 0.0, 1.0, 2.0]])
    figure = plot_samples(images, image_shape=(2, 2))
    assert figure.axes[0].images[0].get_clim() == (-0.5, 2.0)


@pytest.mark.parametrize(
    ("x", "reconstructions", "options", "message"),
    [
        (torch.rand(4, 12), torch.rand(4, 12), {"image_shape": (3, 3)}, "image_shape"),
        (torch.rand(4, 12), torch.rand(4, 12), {"image_shape": (3, 4, 1)}, "image_shape"),
        (torch.rand(4, 12), torch.rand(4, 12), {"image_shape": (0, 12)}, "image_shape"),
        (torch.rand(4, 12), torch.rand(3, 12), {"image_shape": (3, 4)}, "reconstructions must"),
        (torch.rand(12), torch.rand(12), {"image_shape": (3, 4)}, r"x must have shape \(n, d\)"),
        (torch.rand(0, 12), torch.rand(0, 12), {"image_shape": (3, 4)}, "x is empty"),
        (torch.rand(2, 4), torch.rand(2, 4), {"image_shape": (2, 2), "num_images": 0}, "num_"),
    ],
)
def test_reconstructions_refuse_bad_input(x, reconstructions, options, message):
    with pytest.raises(ValueError, match=message):
        plot_reconstructions(x, reconstructions, **options)


def test_reconstructions_name_a_non_finite_pixel():
    x = torch.rand(2, 4)
    reconstructions = x.clone()
    reconstructions[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"reconstructions contains a non-finite value .*\[1, 2\]"):
        plot_reconstructions(x, reconstructions, image_shape=(2, 2))


def test_samples_fill_a_grid_row_by_row():
    images = np.random.default_rng(1).random((7, 6)).astype(np.float32)
    figure = plot_samples(images, image_shape=(2, 3), num_columns=3, title="seven")
    assert len(figure.axes) == 9  # 3 rows of 3, the last two empty and hidden
    for i, axis in enumerate(figure.axes[:7]):
        np.testing.assert_allclose(image_array(axis), images[i].reshape(2, 3), rtol=1e-6)
    assert [axis.axison for axis in figure.axes[7:]] == [False, False]
    assert not any(axis.images for axis in figure.axes[7:])
    assert figure.get_suptitle() == "seven"
    with pytest.raises(ValueError, match="images has 6 pixels per image"):
        plot_samples(images, image_shape=(2, 2))
    with pytest.raises(ValueError, match="num_columns must be a positive integer"):
        plot_samples(images, image_shape=(2, 3), num_columns=1.5)


def test_interpolation_one_row_or_several():
    line = torch.linspace(0, 1, 5)[:, None].expand(5, 4)  # step t: every pixel t
    figure = plot_interpolation(line, image_shape=(2, 2))
    assert len(figure.axes) == 5
    for t, axis in zip(torch.linspace(0, 1, 5), figure.axes, strict=True):
        np.testing.assert_allclose(image_array(axis), np.full((2, 2), t.item()))
    lines = torch.rand(3, 4, 6)
    figure = plot_interpolation(lines, image_shape=(3, 2))
    assert len(figure.axes) == 12
    np.testing.assert_allclose(image_array(figure.axes[4 + 2]), lines[1, 2].reshape(3, 2))
    with pytest.raises(ValueError, match=r"images must have shape \(steps, d\) or \(rows"):
        plot_interpolation(torch.rand(2, 3, 4, 6), image_shape=(3, 2))


# latent space


def test_latent_grid_codes_order():
    codes = latent_grid_codes(3, ((-1.0, 1.0), (10.0, 20.0)))
    expected = [
        [-1, 20], [0, 20], [1, 20],
        [-1, 15], [0, 15], [1, 15],
        [-1, 10], [0, 10], [1, 10],
    ]  # fmt: skip
    torch.testing.assert_close(codes, torch.tensor(expected, dtype=codes.dtype))
    assert codes.dtype == torch.get_default_dtype()


def test_latent_grid_draws_each_image_centred_on_its_code():
    grid_size, extent = 4, ((-2.0, 2.0), (0.0, 3.0))
    codes = latent_grid_codes(grid_size, extent)
    # a 2 × 2 image that shows its own code: (z₁, z₂) on top, (z₁ + 10, z₂ + 10) below
    images = torch.cat([codes, codes + 10], dim=1)
    figure = plot_latent_grid(images, image_shape=(2, 2), grid_size=grid_size, extent=extent)
    (axis,) = figure.axes
    (image,) = axis.images
    mosaic = np.asarray(image.get_array())
    assert mosaic.shape == (8, 8)
    left, right, bottom, top = image.get_extent()
    assert image.origin == "upper"  # the first row of the mosaic at the top, z₂ = high
    for row in range(grid_size):
        for column in range(grid_size):
            code = codes[row * grid_size + column].numpy()
            tile = mosaic[2 * row : 2 * row + 2, 2 * column : 2 * column + 2]
            np.testing.assert_allclose(tile, [code, code + 10])
            # the tile's centre in data coordinates is its code
            centre = (
                left + (column + 0.5) * (right - left) / grid_size,
                top - (row + 0.5) * (top - bottom) / grid_size,
            )
            np.testing.assert_allclose(centre, code, atol=1e-12)
    # thin borders between the tiles, halfway between neighbouring codes
    vertical = sorted(line.get_xdata()[0] for line in axis.lines if np.ptp(line.get_xdata()) == 0)
    horizontal = sorted(line.get_ydata()[0] for line in axis.lines if np.ptp(line.get_ydata()) == 0)
    np.testing.assert_allclose(vertical, [-4 / 3, 0.0, 4 / 3])
    np.testing.assert_allclose(horizontal, [0.5, 1.5, 2.5])
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("z₁", "z₂")


@pytest.mark.parametrize(
    ("images", "options", "message"),
    [
        (torch.rand(8, 4), {"grid_size": 3, "extent": (-1, 1)}, "grid_size \\*\\* 2 = 9 rows"),
        (torch.rand(1, 4), {"grid_size": 1, "extent": (-1, 1)}, "grid_size must be at least 2"),
        (torch.rand(4, 4), {"grid_size": 2, "extent": (1, -1)}, "extent must be"),
        (torch.rand(4, 4), {"grid_size": 2, "extent": (0, 1, 2)}, "extent must be"),
        (torch.rand(4, 4), {"grid_size": 2, "extent": "wide"}, "extent must be"),
        (torch.rand(4, 5), {"grid_size": 2, "extent": (-1, 1)}, "image_shape \\(2, 2\\) has 4"),
    ],
)
def test_latent_grid_refuses_bad_input(images, options, message):
    with pytest.raises(ValueError, match=message):
        plot_latent_grid(images, image_shape=(2, 2), **options)


def test_latent_scatter_points_are_the_codes_coloured_by_class():
    codes = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 2, 0, 1, 9])
    figure = plot_latent_scatter(codes, labels)
    (axis,) = figure.axes
    (points,) = axis.collections
    np.testing.assert_allclose(points.get_offsets(), codes.numpy())
    tab10 = matplotlib.colormaps["tab10"]
    expected = tab10([0, 1, 2, 0, 1, 3])  # the classes 0, 1, 2, 9 in sorted order
    np.testing.assert_allclose(points.get_facecolors()[:, :3], expected[:, :3])
    legend = axis.get_legend()
    assert legend.get_title().get_text() == "class"
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "9"]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("z₁", "z₂")


def test_latent_scatter_without_labels_and_with_many_classes():
    codes = np.random.default_rng(2).normal(size=(30, 2))
    (axis,) = plot_latent_scatter(codes).axes
    np.testing.assert_allclose(axis.collections[0].get_offsets(), codes)
    assert axis.get_legend() is None
    figure = plot_latent_scatter(codes, labels=np.arange(30) % 15)  # 15 classes: a colour bar
    assert len(figure.axes) == 2 and figure.axes[1].get_ylabel() == "class"
    np.testing.assert_allclose(figure.axes[0].collections[0].get_array(), np.arange(30) % 15)


@pytest.mark.parametrize(
    ("codes", "labels", "message"),
    [
        (torch.randn(5, 3), None, "with latent_dim 3, pass two columns"),
        (torch.randn(5), None, r"codes must have shape \(n, 2\)"),
        (torch.randn(0, 2), None, "codes is empty"),
        (torch.randn(5, 2), torch.tensor([0, 1, 2]), r"labels must have one entry per code"),
        (torch.randn(2, 2), torch.tensor([0.0, 1.5]), r"integer class labels.*labels\[1\] = 1.5"),
    ],
)
def test_latent_scatter_refuses_bad_input(codes, labels, message):
    with pytest.raises(ValueError, match=message):
        plot_latent_scatter(codes, labels)


# learning curves and σ_z


def test_history_of_fit_shows_training_and_held_out_elbo():
    x = pvae.load_digits().train[:60]
    model = pvae.build_model("normal-shared", 64, 2, (8,))
    guide = pvae.build_guide("diag-normal", model, (8,))
    history = pvae.fit(model, guide, x[:40], epochs=3, validation_data=x[40:], progress=False)
    figure = plot_history(history, title="digits")
    elbo_axis, variance_axis = figure.axes
    training = line_labelled(elbo_axis, "training (monitored points)")
    held_out = line_labelled(elbo_axis, "held-out")
    np.testing.assert_allclose(training.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(training.get_ydata(), history.column("elbo"))
    np.testing.assert_allclose(held_out.get_ydata(), history.column("val_elbo"))
    objective = line_labelled(elbo_axis, "−loss (KL weight β)")
    np.testing.assert_allclose(objective.get_ydata(), -history.column("loss"))
    np.testing.assert_allclose(
        line_labelled(variance_axis, "held-out").get_ydata(), history.column("val_min_variance")
    )
    assert variance_axis.get_yscale() == "log" and figure.get_suptitle() == "digits"


def test_history_without_a_decoder_variance_says_so():
    records = [{"epoch": 1, "loss": 3.0, "elbo": -3.0, "min_variance": math.nan}]
    elbo_axis, variance_axis = plot_history(records).axes
    assert not variance_axis.lines
    assert "no decoder variance" in variance_axis.texts[0].get_text()
    assert "held-out" not in [line.get_label() for line in elbo_axis.lines]
    with pytest.raises(ValueError, match="history is empty"):
        plot_history([])
    with pytest.raises(ValueError, match="with 'epoch' and 'loss'"):
        plot_history([{"elbo": -3.0}])


def test_scale_histograms_are_densities_of_every_scale():
    scales = {"depth 1": torch.rand(50, 4), "depth 2": np.full((10, 3), 0.5)}
    figure = plot_scale_histograms(scales, bins=10)
    assert [axis.get_title() for axis in figure.axes] == ["depth 1", "depth 2"]
    for axis in figure.axes:
        bars = axis.patches
        assert len(bars) == 10
        area = sum(bar.get_height() * bar.get_width() for bar in bars)
        assert area == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scales is empty"):
        plot_scale_histograms({})
    with pytest.raises(ValueError, match=r"scales\['a'\] must be ≥ 0"):
        plot_scale_histograms({"a": torch.tensor([0.5, -0.1])})
    with pytest.raises(ValueError, match=r"scales\['a'\] contains a non-finite value"):
        plot_scale_histograms({"a": torch.tensor([0.5, math.nan])})


# the experiments' figures


def test_demo_figure_draws_every_variant_in_the_given_order():
    def run(offset, low=0.0):
        return {
            "history": [
                {"epoch": e, "train_log_px": offset + e, "test_log_px": low, "min_variance": v}
                for e, v in ((1, 0.1), (2, 0.01))
            ],
            "noise_variance": 3e-4,
        }

    runs = {
        ("n=10", "b"): run(10.0, low=-5000.0),
        ("n=10", "a"): run(20.0),
        ("n=99", "a"): run(30.0),
    }
    figure = plot_demo(runs)
    assert len(figure.axes) == 6
    small_train, small_test, small_variance, large_train, large_test = figure.axes[:5]
    assert [line.get_label() for line in small_train.lines] == ["b", "a"]
    np.testing.assert_allclose(small_train.lines[1].get_ydata(), [21.0, 22.0])
    np.testing.assert_allclose(small_test.lines[0].get_ydata(), [-5000.0, -5000.0])
    np.testing.assert_allclose(small_variance.lines[0].get_ydata(), [0.1, 0.01])
    np.testing.assert_allclose(large_train.lines[0].get_ydata(), [31.0, 32.0])
    assert small_train.get_title() == "n=10: tracked training points"
    # One colour per variant in every row: "a" is the second colour in both.
    assert small_train.lines[1].get_color() == large_train.lines[0].get_color() == "C1"
    # A collapse by thousands of nats gets a logarithmic tail; a healthy row stays linear.
    assert small_test.get_yscale() == "symlog" and large_test.get_yscale() == "linear"
    # The noise level is drawn where the runs state it.
    assert any(line.get_ydata()[0] == 3e-4 for line in small_variance.lines[2:])
    with pytest.raises(ValueError, match="runs is empty"):
        plot_demo({})
    # A final AIS estimate is an open circle at the last epoch, in the variant's colour.
    runs["n=10", "b"]["ais"] = {"train": {"ran": False}, "test": {"ran": True, "log_px": -900.0}}
    figure = plot_demo(runs)
    small_test = figure.axes[1]
    (circle,) = [line for line in small_test.lines if line.get_marker() == "o"]
    assert (circle.get_xdata(), circle.get_ydata(), circle.get_color()) == ([2], [-900.0], "C0")
    assert not [line for line in figure.axes[0].lines if line.get_marker() == "o"]
    assert "AIS at the end" in [text.get_text() for text in figure.legends[0].get_texts()]


def test_construction_figure_shows_free_and_floored_values_and_the_bound():
    rows = [
        {"k": k, "free_log_px": 10.0 * k, "floored_log_px": 5.0, "bound": 7.0} for k in (0, 1, 2)
    ]
    (axis,) = plot_construction(rows).axes
    np.testing.assert_allclose(
        line_labelled(axis, "per-pixel σ², no floor").get_ydata(), [0, 10, 20]
    )
    np.testing.assert_allclose(line_labelled(axis, "floor ξ").get_ydata(), [5.0] * 3)
    np.testing.assert_allclose(line_labelled(axis, "bound −(nd/2) log 2πξ").get_ydata(), [7, 7])
    with pytest.raises(ValueError, match="rows is empty"):
        plot_construction([])


def test_collapse_depth_figure_shows_the_rows():
    rows = [
        {
            "variant": variant,
            "depth": depth,
            "train_recon_error": scale / depth,
            "test_recon_error": 2 * scale / depth,
            "gamma": 0.1 * depth,
            "active_units": None if variant == "ae" else 4 - depth,
        }
        for variant, scale in (("ae", 1.0), ("vae", 3.0))
        for depth in (1, 2)
    ]
    scales = {("vae", 1): np.full((5, 2), 0.5), ("vae", 2): np.full((5, 2), 1.0)}
    figure = plot_collapse_depth(rows, scales, baseline=9.0)
    error_axis, gamma_axis, active_axis, first, second = figure.axes
    np.testing.assert_allclose(line_labelled(error_axis, "vae").get_ydata(), [3.0, 1.5])
    np.testing.assert_allclose(line_labelled(error_axis, "data mean").get_ydata(), [9.0, 9.0])
    np.testing.assert_allclose(line_labelled(gamma_axis, "ae").get_ydata(), [0.1, 0.2])
    np.testing.assert_allclose(line_labelled(active_axis, "vae").get_ydata(), [3, 2])
    # each depth's histogram (a step outline) puts its 10 scales in the bin holding their value
    for axis, value in ((first, 0.5), (second, 1.0)):
        (outline,) = axis.patches
        vertices = outline.get_path().vertices
        assert vertices[:, 1].max() == 10
        tallest = vertices[vertices[:, 1] == 10, 0]
        assert tallest.min() <= value <= tallest.max()
    assert (first.get_title(), second.get_title()) == ("1 hidden layer", "2 hidden layers")


def test_iwae_vs_elbo_figure_shows_the_rows_and_differences():
    rows = [
        {
            "variant": variant,
            "seed": seed,
            "test_log_px": -20.0 - i - seed,
            "test_stderr_points": 0.1,
            "test_elbo": -22.0 - i - seed,
        }
        for i, variant in enumerate(("elbo", "iwae"))
        for seed in (0, 1)
    ]
    comparisons = [
        {
            "first": "iwae",
            "second": "elbo",
            "per_seed": [{"difference": -1.0, "stderr_points": 0.2}] * 2,
        }
    ]
    histories = {
        (variant, 0): [{"epoch": 1, "val_elbo": -30.0}, {"epoch": 2, "val_elbo": v}]
        for variant, v in (("elbo", -25.0), ("iwae", -26.0))
    }
    figure = plot_iwae_vs_elbo(rows, comparisons, histories)
    left, middle, right = figure.axes
    drawn = sorted(float(y) for line in left.lines for y in line.get_ydata())
    assert drawn == sorted([row["test_log_px"] for row in rows] + [r["test_elbo"] for r in rows])
    differences = [float(y) for line in middle.lines for y in line.get_ydata()]
    assert differences.count(-1.0) == 2
    np.testing.assert_allclose(line_labelled(right, "iwae").get_ydata(), [-30.0, -26.0])
    assert len(plot_iwae_vs_elbo(rows, comparisons).axes) == 2  # no histories, no third panel
    with pytest.raises(ValueError, match="lacks"):
        plot_iwae_vs_elbo([{"variant": "elbo"}], comparisons)


# every figure renders


def test_every_figure_renders_to_png(tmp_path):
    images = torch.rand(9, 4)
    figures = {
        "log_marginal": plot_log_marginal({"a": estimate(-3.0, 0.1, -3.5)}),
        "khat": plot_khat(torch.tensor([0.2, 0.8, math.inf, math.nan])),
        "reconstructions": plot_reconstructions(images, images, image_shape=(2, 2)),
        "samples": plot_samples(images, image_shape=(2, 2), title="samples"),
        "latent_grid": plot_latent_grid(images, image_shape=(2, 2), grid_size=3, extent=(-2, 2)),
        "interpolation": plot_interpolation(images, image_shape=(2, 2)),
        "latent_scatter": plot_latent_scatter(torch.randn(9, 2), torch.arange(9) % 3),
        "history": plot_history([{"epoch": 1, "loss": 2.0, "elbo": -2.0, "min_variance": 0.1}]),
        "scales": plot_scale_histograms({"a": torch.rand(9)}),
    }
    for name, figure in figures.items():
        assert isinstance(figure, Figure), name
        path = tmp_path / f"{name}.png"
        figure.savefig(path, dpi=50)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
