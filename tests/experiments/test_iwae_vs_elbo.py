"""IWAE- against ELBO-trained models (pvae.experiments.iwae_vs_elbo) with tiny settings."""

import dataclasses
import json
import math

import pyro
import pytest
import torch

from pvae.data import Split
from pvae.experiments.iwae_vs_elbo import (
    COMPARISONS,
    DEFAULT,
    MIN_RELIABLE,
    VARIANTS,
    IWAEvsELBOSettings,
    comparison_verdict,
    format_comparisons,
    format_table,
    run_iwae_vs_elbo,
)

TINY = IWAEvsELBOSettings(
    num_particles=4,
    hidden_sizes=(16,),
    latent_dim=3,
    epochs=2,
    seeds=(0, 1),
    num_samples=64,
    ais_steps=5,
    ais_chains=2,
    max_points=60,
    diagnostic_points=60,
)


def _run(out, settings):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # a module fixture runs outside conftest's policy
    try:
        return run_iwae_vs_elbo(out, settings=settings, progress=False)
    finally:
        torch.set_default_dtype(previous)
        pyro.clear_param_store()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iwae_vs_elbo")
    return out, _run(out, TINY)


def test_run_writes_one_row_per_variant_and_seed(tiny_run):
    out, result = tiny_run
    for name in ("iwae_vs_elbo.csv", "iwae_vs_elbo.json", "iwae_vs_elbo.png"):
        assert (out / name).stat().st_size > 0, name
    rows = result["rows"]
    assert [(row["variant"], row["seed"]) for row in rows] == [
        (variant, seed) for variant in VARIANTS for seed in (0, 1)
    ]
    assert [row["particles"] for row in rows] == [1, 1] + [4] * 6
    saved = json.loads((out / "iwae_vs_elbo.json").read_text())
    assert saved["num_train"] == 60 and saved["num_test"] == 60 and saved["data_dim"] == 64
    assert saved["settings"]["seeds"] == [0, 1]
    history = saved["histories"]["iwae/1"]
    assert [record["epoch"] for record in history] == [1, 2] and "val_elbo" in history[0]
    csv_lines = (out / "iwae_vs_elbo.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,seed,particles,test_log_px") and len(csv_lines) == 9
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1


def test_rows_keep_the_bounds_they_must(tiny_run):
    # Bernoulli: log p(x) ≤ 0; the IS estimate at K samples is above the ELBO of its own draws
    # (Jensen: log of a mean ≥ mean of the logs), point by point and so on average.
    _, result = tiny_run
    for row in result["rows"]:
        assert row["test_log_px"] < 0 and row["train_log_px"] < 0, row
        assert row["test_elbo"] <= row["test_log_px"], row
        assert row["test_stderr_points"] > 0 and row["test_stderr_mc"] > 0, row
        assert 0 <= row["test_reliable"] <= 1 and row["kl"] >= 0, row
        assert 0 <= row["active_units"] <= TINY.latent_dim and math.isfinite(row["final_loss"])
        assert row["test_ais_log_px"] < 0 and row["ais_minus_is_stderr"] > 0, row
        assert row["ais_minus_is"] == pytest.approx(row["test_ais_log_px"] - row["test_log_px"])


def test_comparisons_are_paired_differences_of_the_rows(tiny_run):
    # On the same points the mean of the per-point differences is the difference of the means.
    _, result = tiny_run
    by_key = {(row["variant"], row["seed"]): row for row in result["rows"]}
    assert [(c["first"], c["second"]) for c in result["comparisons"]] == list(COMPARISONS)
    for comparison in result["comparisons"]:
        differences = []
        for entry in comparison["per_seed"]:
            first = by_key[comparison["first"], entry["seed"]]
            second = by_key[comparison["second"], entry["seed"]]
            expected = first["test_log_px"] - second["test_log_px"]
            assert entry["difference"] == pytest.approx(expected, abs=1e-10)
            assert entry["num_points"] == 60 and entry["stderr_points"] > 0
            assert entry["first_reliable"] == first["test_reliable"]
            ais_expected = first["test_ais_log_px"] - second["test_ais_log_px"]
            assert entry["ais_difference"] == pytest.approx(ais_expected, abs=1e-10)
            differences.append(expected)
        assert comparison["mean_difference"] == pytest.approx(sum(differences) / 2, abs=1e-10)
        spread = abs(differences[0] - differences[1]) / math.sqrt(2)  # sd of 2 values
        assert comparison["stderr_seeds"] == pytest.approx(spread / math.sqrt(2), abs=1e-10)
        assert comparison["verdict"] == comparison_verdict(
            comparison["first"], comparison["second"], comparison["per_seed"]
        )
    text = format_comparisons(result["comparisons"])
    assert text.count("seed 1:") == len(COMPARISONS)


def test_every_objective_starts_from_the_same_weights_and_is_scored_by_the_same_draws(tmp_path):
    # A construction: at a learning rate of 1e-12 no run moves its weights measurably, so if
    # each seed starts every objective from the same weights and the evaluation draws are the
    # same for every model, every paired difference is 0 up to the rate's effect.
    settings = dataclasses.replace(TINY, lr=1e-12, epochs=1)
    result = _run(tmp_path, settings)
    for comparison in result["comparisons"]:
        for entry in comparison["per_seed"]:
            assert abs(entry["difference"]) < 1e-6, (comparison["first"], entry)
            assert abs(entry["ais_difference"]) < 1e-6, (comparison["first"], entry)
    first, second = (r["test_log_px"] for r in result["rows"][:2])  # elbo, seeds 0 and 1
    assert abs(first - second) > 1e-3  # the seeds do start from different weights


def _entry(difference, stderr=0.1, reliable=1.0, ais=None):
    return {
        "difference": difference,
        "stderr_points": stderr,
        "first_reliable": reliable,
        "second_reliable": 1.0,
        "ais_difference": ais,
        "ais_stderr_points": None if ais is None else stderr,
    }


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([_entry(0.5), _entry(0.3)], "a higher than b in every seed"),
        ([_entry(-0.5)], "a lower than b in the one seed"),
        ([_entry(0.5), _entry(0.1)], "inconclusive: within 2 paired se in 1 of 2 seeds"),
        ([_entry(0.5), _entry(-0.5)], "inconclusive: higher in 1 seeds, lower in 1"),
        (
            [_entry(0.5), _entry(0.5, reliable=MIN_RELIABLE - 0.01)],
            "inconclusive: in 1 of 2 seeds fewer than 95%",
        ),
        # with AIS, IS's reliability is not needed: AIS must confirm the difference instead
        (
            [_entry(0.5, reliable=0.1, ais=0.4), _entry(0.3, reliable=0.1, ais=0.25)],
            "a higher than b in every seed (by IS and AIS",
        ),
        (
            [_entry(0.5, ais=0.4), _entry(0.3, ais=0.15)],
            "inconclusive: AIS does not confirm IS's difference beyond 2 paired se in 1 of 2",
        ),
        ([_entry(-0.5, ais=0.5)], "inconclusive: AIS does not confirm"),
        ([_entry(0.1, ais=0.5)], "inconclusive: within 2 paired se in 1 of 1 seeds"),
    ],
)
def test_the_verdict_is_read_from_the_numbers(entries, expected):
    assert comparison_verdict("a", "b", entries).startswith(expected)


def test_the_verdict_needs_more_than_two_se():
    # exactly 2 se is not "more than 2 se"
    assert comparison_verdict("a", "b", [_entry(0.2)]).startswith("inconclusive")
    assert comparison_verdict("a", "b", [_entry(0.2001)]).startswith("a higher")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_particles": 1}, "num_particles must be at least 2"),
        ({"seeds": (0, 0)}, "none twice"),
        ({"seeds": ()}, "at least one seed"),
        ({"seeds": 3}, "seeds must be a sequence"),
        ({"lr": 0.0}, "lr must be"),
        ({"hidden_sizes": (0,)}, "hidden_sizes"),
        ({"ais_steps": -1}, r"ais_steps must be a non-negative integer \(0: no AIS\)"),
        ({"ais_chains": 0}, "ais_chains must be a positive integer"),
        ({"max_points": 0}, "max_points must be a positive integer"),
    ],
)
def test_settings_refuse_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DEFAULT, **changes)


def test_run_refuses_a_held_out_set_of_one_point(tmp_path):
    train = torch.bernoulli(torch.full((10, 4), 0.5))
    data = Split(train=train, test=train[:1])
    with pytest.raises(ValueError, match="held-out data need at least 2 points"):
        run_iwae_vs_elbo(tmp_path, settings=TINY, data=data, progress=False)


def test_run_refuses_wrong_argument_types(tmp_path):
    with pytest.raises(TypeError, match="settings must be an IWAEvsELBOSettings"):
        run_iwae_vs_elbo(tmp_path, settings={"epochs": 1})
    with pytest.raises(TypeError, match=r"data must be a pvae\.data\.Split"):
        run_iwae_vs_elbo(tmp_path, settings=TINY, data=torch.zeros(4, 4))


def test_without_ais_the_rows_say_none_and_the_verdict_reads_the_status(tmp_path):
    settings = dataclasses.replace(TINY, ais_steps=0, seeds=(0,), epochs=1)
    result = _run(tmp_path, settings)
    assert all(row["test_ais_log_px"] is None for row in result["rows"])
    for comparison in result["comparisons"]:
        (entry,) = comparison["per_seed"]
        assert "ais_difference" not in entry
        assert math.isnan(comparison["stderr_seeds"])  # one seed: no spread
    table = format_table(result["rows"])
    assert "—" in table
    assert "AIS" not in format_comparisons(result["comparisons"]).split("\n")[0]
