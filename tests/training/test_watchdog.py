"""The well-posedness watchdog: fires on the unconstrained per-pixel variance, silent otherwise."""

import warnings

import pytest
import torch

import pvae
from pvae.training import IllPosedWarning, Watchdog


def short_run(name, data, **options):
    torch.manual_seed(0)
    model = pvae.build_model(name, 64, 4, (64,), **options)
    guide = pvae.build_guide("diag-normal", model, (64,))
    return pvae.fit(model, guide, data, epochs=10, batch_size=64, lr=1e-2, seed=0, progress=False)


@pytest.fixture(scope="module")
def raw_digits():
    return pvae.load_digits(dtype=torch.float64).train[:600]


def test_fires_once_on_the_unconstrained_per_pixel_variance(raw_digits):
    # Raw digits have pixels that are 0 in every image: an unconstrained per-pixel variance
    # collapses there within a few epochs (measured: below 1e-4 by epoch 3 at lr 1e-2).
    with pytest.warns(IllPosedWarning) as caught:
        history = short_run("normal-network", raw_digits)
    assert len(caught) == 1
    message = str(caught[0].message)
    record = next(r for r in history if r["min_variance"] < 1e-4)
    assert f"epoch {record['epoch']}: the decoder variance of pixel" in message
    assert "for training point" in message and "variance_floor" in message
    pixel = int(message.split("of pixel ")[1].split()[0])
    point = int(message.split("training point ")[1].split()[0])
    assert 0 <= pixel < 64 and 0 <= point < len(raw_digits)


@pytest.mark.parametrize(
    "name,binarize,options",
    # A floor ξ = 1e-5 sits below the variance threshold: the bound, not the threshold, keeps
    # the watchdog quiet. Validation data let the divergence rule fire if it were wrong.
    [("normal-floor", False, {"variance_floor": 1e-5}), ("bernoulli", True, {})],
)
def test_silent_on_floored_and_bernoulli(name, binarize, options):
    data = pvae.load_digits(binarize=binarize, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllPosedWarning)
        torch.manual_seed(0)
        model = pvae.build_model(name, 64, 4, (64,), **options)
        guide = pvae.build_guide("diag-normal", model, (64,))
        history = pvae.fit(
            model,
            guide,
            data.train[:600],
            epochs=10,
            batch_size=64,
            lr=1e-2,
            seed=0,
            validation_data=data.test,
            progress=False,
        )
    assert len(history) == 10
    if name == "normal-floor":
        assert history[-1]["min_variance"] < 1e-4  # the variance rule's condition did occur


def records(elbos, val_elbos):
    return [
        {
            "epoch": i + 1,
            "elbo": e,
            "val_elbo": v,
            "min_variance": 0.1,
            "min_variance_point": 0,
            "min_variance_pixel": 0,
        }
        for i, (e, v) in enumerate(zip(elbos, val_elbos, strict=True))
    ]


def test_divergence_rule_needs_patience_epochs_of_opposite_trends():
    watchdog = Watchdog(patience=3)
    history = records([1, 2, 3, 4], [5, 4, 3, 2])
    with pytest.warns(IllPosedWarning, match="for 3 epochs the training ELBO rose"):
        for end in range(1, 5):
            watchdog.check(history[:end])
    quiet = Watchdog(patience=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllPosedWarning)
        for history in (records([1, 2, 3, 4], [5, 4, 4.5, 2]), records([1, 2, 2, 4], [5, 4, 3, 2])):
            for end in range(1, 5):
                quiet.check(history[:end])
    with pytest.raises(ValueError, match="patience must be a positive integer, got 0"):
        Watchdog(patience=0)


def test_divergence_under_a_bounded_likelihood_is_overfitting_and_not_reported():
    # A Bernoulli or floored likelihood cannot grow without limit: opposite trends there are
    # plain overfitting, so the watchdog stays quiet; without a variance the message names none.
    history = records([1, 2, 3, 4], [5, 4, 3, 2])
    bounded = Watchdog(patience=3)
    bounded.reset(bounded=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllPosedWarning)
        for end in range(1, 5):
            bounded.check(history[:end])
    for record in history:
        record["min_variance"] = float("nan")
    unbounded = Watchdog(patience=3)
    with pytest.warns(IllPosedWarning) as caught:
        for end in range(1, 5):
            unbounded.check(history[:end])
    assert "decoder variance" not in str(caught[0].message)


def test_silent_on_a_small_fixed_variance_and_once_per_fit_call(raw_digits):
    # A fixed variance is bounded however small: only a variance that falls is a collapse.
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllPosedWarning)
        torch.manual_seed(0)
        model = pvae.build_model("normal-fixed", 64, 4, (16,), scale=1e-3)
        guide = pvae.build_guide("diag-normal", model, (16,))
        pvae.fit(model, guide, raw_digits, epochs=2, progress=False)
    watchdog = Watchdog()
    for _ in range(2):  # a reused Watchdog warns again in a new fit call
        torch.manual_seed(0)
        model = pvae.build_model("normal-network", 64, 4, (64,))
        guide = pvae.build_guide("diag-normal", model, (64,))
        with pytest.warns(IllPosedWarning):
            pvae.fit(
                model,
                guide,
                raw_digits,
                epochs=10,
                lr=1e-2,
                seed=0,
                watchdog=watchdog,
                progress=False,
            )


def test_variance_rule_maps_rows_to_data_points_and_needs_a_fall():
    def record(epoch, variance):
        return {
            "epoch": epoch,
            "elbo": 0.0,
            "min_variance": variance,
            "min_variance_point": 1,
            "min_variance_pixel": 7,
        }

    watchdog = Watchdog()
    watchdog.reset(initial_variance=1.0)
    with pytest.warns(IllPosedWarning, match="epoch 1: .* pixel 7 for training point 42 fell"):
        watchdog.check([record(1, 1e-7)], point_index=torch.tensor([5, 42, 9]))
    steady = Watchdog()
    steady.reset(initial_variance=1e-7)  # that small from the start: not a collapse
    bounded = Watchdog()
    bounded.reset(initial_variance=1.0, bounded=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IllPosedWarning)
        steady.check([record(1, 1e-7)])
        bounded.check([record(1, 1e-7)])
