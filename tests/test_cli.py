"""The pvae command line, and the install layout (pvae.models / pvae.guides)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pvae
from pvae.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(command: str) -> int:
    """Run ``pvae COMMAND --no-progress`` in this process (paths here have no spaces)."""
    return main([*command.split(), "--no-progress"])


def test_help_lists_the_commands():
    result = subprocess.run(
        ["pvae", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "train" in result.stdout and "evaluate" in result.stdout


def test_train_then_evaluate(tmp_path, capsys):
    checkpoint = tmp_path / "run.pt"
    code = cli(
        f"train --model bernoulli --binarize --epochs 2 --hidden 16 --latent-dim 2 "
        f"--out {checkpoint}"
    )
    assert code == 0 and checkpoint.is_file()
    assert checkpoint.with_suffix(".png").is_file()
    assert checkpoint.with_suffix(".history.csv").read_text().startswith("epoch,loss")
    table = tmp_path / "table.json"
    code = cli(f"evaluate {checkpoint} --num-samples 50 --num-points 20 --table {table}")
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "K = 50" in out
    rows = json.loads(table.read_text())
    assert [row["split"] for row in rows] == ["train", "held-out"]
    for row in rows:
        assert row["num_points"] == 20 and row["num_samples"] == 50
        assert row["elbo"] <= row["log_marginal"] <= 0  # Bernoulli: log p(x) ≤ 0


def test_evaluate_matches_the_library(tmp_path, capsys):
    # The CLI's table is log_marginal's summary on the checkpoint's own data split.
    checkpoint = tmp_path / "run.pt"
    cli(f"train --epochs 1 --hidden 16 --latent-dim 2 --out {checkpoint}")
    table = tmp_path / "table.json"
    cli(f"evaluate {checkpoint} --num-samples 30 --num-points 10 --seed 7 --table {table}")
    loaded = pvae.load(checkpoint)
    torch.manual_seed(7)
    data = pvae.load_digits()
    direct = pvae.log_marginal(
        loaded.model, loaded.guide, data.train[:10], num_samples=30, progress=False
    )
    row = json.loads(table.read_text())[0]
    assert row["log_marginal"] == pytest.approx(direct.summary()["log_marginal"], rel=1e-12)


def test_bad_input_exits_with_a_named_error(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nope")
    assert cli(f"evaluate {junk}") == 2
    assert "could not be read" in capsys.readouterr().err
    model = pvae.build_model("normal-fixed", 64, 2, (8,))
    bare = pvae.save(tmp_path / "bare.pt", model, pvae.build_guide("diag-normal", model, (8,)))
    assert cli(f"evaluate {bare}") == 2
    assert "config names no data set" in capsys.readouterr().err
    assert cli("train --data linear-gaussian --dequantize") == 2
    assert "--dequantize apply to --data digits" in capsys.readouterr().err
    assert cli("train --model normal-network --variance-floor 0.01") == 2
    assert "use normal-floor" in capsys.readouterr().err
    assert cli("train --guide per-point") == 2
    assert "--guide per-point has no posterior for the held-out points" in capsys.readouterr().err
    assert cli("demo --levels 5") == 2
    assert "--levels applies to a --data file" in capsys.readouterr().err
    assert cli("demo --quick --epochs 7") == 2
    assert "--quick runs 3 epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "12,x"])
    assert "--hidden must be comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    assert "must be > 0, got '0'" in capsys.readouterr().err


def test_import_models_from_repo_root_fails_loudly():
    result = subprocess.run(
        [sys.executable, "-c", "import models"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode != 0
    assert "installed as 'pvae.models'" in result.stderr


def test_installed_names():
    import pvae.guides
    import pvae.models

    assert pvae.models.__name__ == "pvae.models" and pvae.guides.__name__ == "pvae.guides"
    assert Path(pvae.models.__file__).parent == ROOT / "models"


@pytest.mark.slow
def test_demo_on_a_user_data_file(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    images = np.where(rng.random((300, 4, 4)) < 0.5, 0, rng.integers(0, 8, size=(300, 4, 4)))
    np.save(tmp_path / "tiny.npy", images)
    assert cli(f"demo --data {tmp_path / 'tiny.npy'} --levels 8 --quick --out {tmp_path}") == 0
    out = capsys.readouterr().out
    assert "per-pixel σ²(z)" in out and "Mattei–Frellsen" in out
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert len(rows) == 10
    bound = -8 * math.log(2 * math.pi * 1e-3)  # d = 16 pixels, ξ = 1e-3
    floored = [row for row in rows if row["variant"] == "per-pixel, floor ξ"]
    assert all(row["bound"] == pytest.approx(bound) for row in floored)
