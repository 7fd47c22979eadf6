"""pvae demo in smoke mode: every output written, every bound respected."""

import json
import math

import pytest

from pvae.experiments.demo import DemoSettings, run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rows = run_demo(
        out, settings=DemoSettings(epochs=3, num_points=20, num_samples=20), progress=False
    )
    return out, rows


@pytest.mark.slow
def test_demo_writes_its_table_and_figures(demo):
    out, rows = demo
    for name in ("demo.png", "construction.png", "demo.csv", "demo.json", "history.json"):
        assert (out / name).stat().st_size > 0, name
    assert [row["data"] for row in rows] == ["raw"] * 5 + ["dequantized"] * 5
    saved = json.loads((out / "demo.json").read_text())
    assert saved["settings"]["epochs"] == 3 and len(saved["rows"]) == 10
    history = json.loads((out / "history.json").read_text())
    assert len(history["raw/per-pixel σ²(z)"]["history"]) == 3


@pytest.mark.slow
def test_demo_bounds_hold(demo):
    _, rows = demo
    for row in rows:
        if math.isfinite(row["bound"]):
            assert row["train_log_px"] <= row["bound"], row
            assert row["test_log_px"] <= row["bound"], row
    bernoulli = [row for row in rows if row["variant"] == "Bernoulli"]
    assert all(row["train_log_px"] <= 0 and row["test_log_px"] <= 0 for row in bernoulli)
    floored = [row for row in rows if row["variant"] == "per-pixel, floor ξ"]
    assert all(row["min_variance"] >= 1e-3 * (1 - 1e-6) for row in floored)


@pytest.mark.slow
def test_demo_construction_grows_with_slope_d_over_2_and_floored_stays_bounded(demo):
    out, _ = demo
    rows = {row["k"]: row for row in json.loads((out / "construction.json").read_text())}
    slope = (rows[400]["free_log_px"] - rows[200]["free_log_px"]) / 200
    assert slope == pytest.approx(32, rel=0.02)
    assert all(row["floored_log_px"] <= row["bound"] for row in rows.values())
    assert rows[1600]["free_log_px"] > rows[1600]["bound"]  # past what any floored model reaches
