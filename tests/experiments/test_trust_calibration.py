"""The trust status keeps its promises on cases with exact log p(x) it was not chosen on."""

import json

import pytest

from pvae.estimation.trust import TRUST_RULE
from pvae.experiments.trust_calibration import (
    CHOICE_CASES,
    HELD_OUT_CASES,
    choose_rule,
    run_calibration,
    run_cases,
    score,
)


@pytest.fixture(scope="module")
def choice_rows():
    return run_cases(CHOICE_CASES, progress=False)


@pytest.mark.slow
def test_the_shipped_rule_is_the_one_the_calibration_chooses(choice_rows):
    assert choose_rule(choice_rows) == TRUST_RULE


@pytest.mark.slow
def test_on_held_out_cases_reliable_means_covered_and_misses_are_caught():
    # Other families (a Bernoulli decoder), variances, guides and K than the choice saw: among
    # points called reliable, ±2 se covers the exact value at least 90% of the time, and at
    # least 90% of the points off by more than 3 se are not called reliable.
    result = score(TRUST_RULE, run_cases(HELD_OUT_CASES, progress=False))
    assert result["coverage"] >= 0.9, result
    assert result["caught"] >= 0.9, result
    assert result["num_reliable"] >= 300 and result["num_bad"] >= 100, result  # not vacuous


@pytest.mark.slow
def test_the_usual_threshold_alone_does_not_keep_the_promise(choice_rows):
    # The shipped rule is needed: k̂ < 0.7 alone (any K, no nested check) covers far less.
    from pvae.estimation.trust import TrustRule

    usual = TrustRule(max_khat=0.7, min_relative_ess=0.0, max_nested_gap=float("inf"),
                      min_samples=30)  # fmt: skip
    assert score(usual, choice_rows)["coverage"] < 0.9


@pytest.mark.slow
def test_run_calibration_writes_its_table_and_figure(tmp_path, monkeypatch):
    import pvae.experiments.trust_calibration as calibration

    monkeypatch.setattr(calibration, "CHOICE_CASES", CHOICE_CASES[::7])
    monkeypatch.setattr(calibration, "HELD_OUT_CASES", HELD_OUT_CASES[::9])
    monkeypatch.setattr(calibration, "choose_rule", lambda rows: TRUST_RULE)
    saved = run_calibration(tmp_path, num_points=5, progress=False)
    for name in ("trust_calibration.json", "trust_calibration.csv", "trust_calibration.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "trust_calibration.json").read_text()) == json.loads(
        json.dumps(saved)
    )
