"""pvae experiment missing-data: every output of a seconds-long run, and its settings' checks."""

import dataclasses
import json

import pytest

from pvae.cli import main
from pvae.experiments.missing_data import MissingDataSettings, format_table, run_missing_data

QUICK = MissingDataSettings(
    epochs=2, num_points=12, hidden_sizes=(16,), num_steps=4, num_samples=3, num_particles=10
)


def test_the_run_writes_its_table_json_and_figure(tmp_path):
    rows = run_missing_data(tmp_path, settings=QUICK, progress=False)
    assert len(rows) == 2 * 3 * 4  # likelihoods × patterns × methods
    for row in rows:
        assert row["measure"] == ("F1" if row["likelihood"] == "bernoulli" else "RMSE")
        assert row["value"] >= 0 and row["stderr"] > 0
    text = format_table(rows)
    assert "Metropolis-within-Gibbs" in text and "accept" in text and "k̂ ≤ 0.7 on" in text
    assert (tmp_path / "missing_data.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "missing_data.csv").read_text().startswith("likelihood,pattern,method")
    saved = json.loads((tmp_path / "missing_data.json").read_text())
    assert saved["num_test"] == 12 and saved["settings"]["num_steps"] == 4


def test_the_mean_of_the_training_data_is_the_baseline_row(tmp_path):
    settings = dataclasses.replace(
        QUICK, likelihoods=("normal-shared",), patterns=("top",), methods=("mean",)
    )
    (row,) = run_missing_data(tmp_path, settings=settings, progress=False)
    assert row["trust"] == "none: no sampling" and row["method"] == "mean"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"methods": ("mean", "gibbs")}, "methods must be a non-empty tuple of names among"),
        ({"patterns": ()}, "patterns must be a non-empty tuple"),
        ({"likelihoods": ("normal-network",)}, "likelihoods must be a non-empty tuple"),
        ({"fraction": 1.0}, r"fraction must be in \(0, 1\), got 1.0"),
        ({"num_steps": 0}, "num_steps must be a positive integer, got 0"),
    ],
)
def test_bad_settings_are_named(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        run_missing_data(tmp_path, settings=dataclasses.replace(QUICK, **changes), progress=False)


def test_the_command_prints_the_table(tmp_path, capsys):
    out = tmp_path / "md"
    code = main(
        [
            "experiment",
            "missing-data",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--num-points",
            "6",
            "--num-steps",
            "3",
            "--num-samples",
            "2",
            "--num-particles",
            "5",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Mattei & Frellsen (2018), Sec. 4 on digits" in printed and "F1" in printed
    assert str(out / "missing_data.png") in printed
