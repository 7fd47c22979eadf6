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
from pvae.cli.config import TRAIN_DEFAULTS, read_train_config

ROOT = Path(__file__).resolve().parents[2]


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
        f"--eval-samples 10 --eval-points 5 --out {checkpoint}"
    )
    assert code == 0 and checkpoint.is_file()
    assert checkpoint.with_suffix(".png").is_file()
    assert checkpoint.with_suffix(".history.csv").read_text().startswith("epoch,loss")
    assert read_train_config(checkpoint.with_suffix(".toml"))["model"] == "bernoulli"
    rows = json.loads(checkpoint.with_suffix(".evaluation.json").read_text())
    assert [(row["split"], row["num_samples"]) for row in rows] == [("train", 10), ("held-out", 10)]
    assert "K = 10" in capsys.readouterr().out
    table = tmp_path / "table.json"
    figures = tmp_path / "figures"
    code = cli(
        f"evaluate {checkpoint} --num-samples 50 --num-points 20 --table {table} "
        f"--figures {figures}"
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "K = 50" in out
    for name in ("log_marginal.png", "khat.png"):  # pvae.plots' figures, tested in test_plots
        assert (figures / name).read_bytes().startswith(b"\x89PNG") and str(figures / name) in out
    rows = json.loads(table.read_text())
    assert [row["split"] for row in rows] == ["train", "held-out"]
    for row in rows:
        assert row["num_points"] == 20 and row["num_samples"] == 50
        assert row["elbo"] <= row["log_marginal"] <= 0  # Bernoulli: log p(x) ≤ 0


def test_evaluate_matches_the_library(tmp_path, capsys):
    # The CLI's table is log_marginal's summary on the checkpoint's own data split.
    checkpoint = tmp_path / "run.pt"
    cli(f"train --epochs 1 --hidden 16 --latent-dim 2 --eval-samples 0 --out {checkpoint}")
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
    # a memory budget changes the passes, not the estimate
    budgeted = tmp_path / "budgeted.json"
    cli(
        f"evaluate {checkpoint} --num-samples 30 --num-points 10 --seed 7 --max-memory 300KiB "
        f"--table {budgeted}"
    )
    again = json.loads(budgeted.read_text())[0]
    assert again["log_marginal"] == pytest.approx(row["log_marginal"], rel=1e-6)
    with pytest.raises(SystemExit):
        cli(f"evaluate {checkpoint} --max-memory lots")
    assert "--max-memory must be an integer number of bytes" in capsys.readouterr().err


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
    assert "apply to images, not to data (--data) linear-gaussian" in capsys.readouterr().err
    assert cli("train --data mnist") == 2
    assert "--data mnist needs --data-root, the folder" in capsys.readouterr().err
    assert cli("train --data digits --data-root /tmp") == 2
    assert "--data-root applies to --data fashion-mnist or mnist, not 'digits'" in (
        capsys.readouterr().err
    )
    assert cli("train --data cifar") == 2
    assert "--data must be one of ['digits', 'fashion-mnist', 'linear-gaussian', 'mnist'] or " in (
        capsys.readouterr().err
    )
    assert cli(f"train --data {tmp_path / 'absent.npy'}") == 2
    assert "absent.npy' does not exist" in capsys.readouterr().err
    assert cli("train --model normal-network --variance-floor 0.01") == 2
    assert "use normal-floor" in capsys.readouterr().err
    assert cli("train --guide per-point") == 2
    assert "--guide per-point has no posterior for the held-out points" in capsys.readouterr().err
    assert cli(f"train --out {tmp_path / 'run.toml'}") == 2
    assert "would be overwritten by the run's other files" in capsys.readouterr().err
    assert cli(f"train --config {tmp_path / 'missing.toml'}") == 2
    assert (
        f"config file {str(tmp_path / 'missing.toml')!r} does not exist" in capsys.readouterr().err
    )
    assert cli("demo --levels 5") == 2
    assert "--levels applies to a .npy or .npz file; 'digits' knows" in capsys.readouterr().err
    assert cli("demo --quick --epochs 7") == 2
    assert "--quick runs 20 epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--ais-steps", "-1"])
    assert "--ais-steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--hidden", "12,x"])
    assert "--hidden must be comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    assert "must be > 0, got '0'" in capsys.readouterr().err


def test_config_file_precedence_and_repeat(tmp_path, capsys):
    # flag > file > default; the saved config repeats the run exactly.
    first = tmp_path / "first.pt"
    run = tmp_path / "run.toml"
    run.write_text(
        'data = "digits"\ndequantize = true\nepochs = 1\nhidden = []\nlatent_dim = 3\n'
        f'lr = 1\neval_samples = 0\nout = "{tmp_path / "ignored.pt"}"\n'
    )
    assert cli(f"train --config {run} --latent-dim 2 --no-dequantize --lr 0.01 --out {first}") == 0
    config = pvae.load(first).config
    given = {"latent_dim": 2, "dequantize": False, "lr": 0.01, "out": str(first)}
    from_file = {"data": "digits", "epochs": 1, "hidden": [], "eval_samples": 0}
    assert config == {**TRAIN_DEFAULTS, **from_file, **given}
    saved = first.with_suffix(".toml")
    assert read_train_config(saved) == {k: v for k, v in config.items() if v is not None}

    second = tmp_path / "second.pt"
    assert cli(f"train --config {saved} --out {second}") == 0
    assert pvae.load(second).config == {**config, "out": str(second)}
    assert read_train_config(second.with_suffix(".toml")) == {
        **read_train_config(saved),
        "out": str(second),
    }
    # the same seeds: the same weights, bit for bit
    weights = [pvae.load(path).model.state_dict() for path in (first, second)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not (tmp_path / "ignored.pt").exists()


def test_a_point_mass_guide_is_trained_without_the_final_estimate(tmp_path, capsys):
    out = tmp_path / "ae.pt"
    assert cli(f"train --guide delta --epochs 1 --hidden 8 --latent-dim 2 --out {out}") == 0
    assert "no final log p(x) estimate: a point-mass guide" in capsys.readouterr().out
    assert out.is_file() and not out.with_suffix(".evaluation.json").exists()


BAD_CONFIGS = {
    'epochs = "ten"': ("epochs must be a positive integer, got 'ten'",),
    "hidden = 3": ("hidden must be a list of positive integers", "got 3"),
    "hidden = [256, 0]": ("hidden must be a list of positive integers", "got [256, 0]"),
    "lr = -1": ("lr must be a positive number, got -1",),
    "latent_dim = true": ("latent_dim must be a positive integer, got True",),
    "binarize = 1": ("binarize must be true or false, got 1",),
    'model = "normal-quantum"': ("model must be one of ['normal-fixed'", "got 'normal-quantum'"),
    "epoch = 3": ("unknown key 'epoch' (did you mean 'epochs'?)",),
    "latent-dim = 3": ("unknown key 'latent-dim' (did you mean 'latent_dim'?)",),
    "epochs = ": ("is not valid TOML", "line 1"),
    "[train]\nepochs = 3": ("unknown key 'train'",),
}


@pytest.mark.parametrize("text", list(BAD_CONFIGS))
def test_a_bad_config_file_is_named(text, tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(text + "\n")
    assert cli(f"train --config {path}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pvae train: error: config file {str(path)!r}")
    for fragment in BAD_CONFIGS[text]:
        assert fragment in err


@pytest.mark.parametrize(
    "flags",
    ["", "--model bernoulli --binarize", "--model normal-floor --variance-floor 0.01"],
    ids=["normal-shared", "bernoulli", "normal-floor"],
)
def test_evaluate_in_another_process_repeats_the_train_time_estimate(flags, tmp_path):
    # 'pvae train' estimates log p(x) at the end through the function 'pvae evaluate' uses, on
    # the checkpoint as saved; another process with the same K, points and seed reproduces it.
    # Observed: bitwise equal (the same float32 operations on the same CPU); 1e-12 is margin.
    def pvae_cli(command):  # in a process of its own (paths here have no spaces)
        command = [sys.executable, "-m", "pvae.cli", *command.split(), "--no-progress"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    checkpoint, table = tmp_path / "run.pt", tmp_path / "table.json"
    small = "--epochs 2 --hidden 16 --latent-dim 2"
    trained = pvae_cli(
        f"train {flags} {small} --eval-samples 50 --eval-points 20 --out {checkpoint}"
    )
    evaluated = pvae_cli(
        f"evaluate {checkpoint} --num-samples 50 --num-points 20 --seed 0 --table {table}"
    )
    at_train = json.loads(checkpoint.with_suffix(".evaluation.json").read_text())
    again = json.loads(table.read_text())
    assert [row["split"] for row in again] == ["train", "held-out"]
    for row, repeat in zip(at_train, again, strict=True):
        assert row.keys() == repeat.keys()
        for key in ("log_marginal", "stderr", "ess", "elbo"):
            assert repeat[key] == pytest.approx(row[key], rel=1e-12), (row["split"], key)
        assert (repeat["num_points"], repeat["num_samples"]) == (20, 50)
    assert evaluated in trained  # the printed header and table too


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
    assert "AIS, T=10 C=2" in out  # at K = 20 no IS estimate is reliable: AIS on every run
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert len(rows) == 8  # six variants on the small set, two on the larger
    bound = -8 * math.log(2 * math.pi * 1e-3)  # d = 16 pixels, ξ = 1e-3
    floored = [row for row in rows if row["variant"] == "per-pixel, floor ξ"]
    assert all(row["bound"] == pytest.approx(bound) for row in floored)


def _tiny_images(path: Path, levels: int = 8) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, levels, size=(200, 4, 4)))
    return path


def test_train_and_evaluate_take_a_data_file(tmp_path, capsys):
    # The same data choice as demo and the experiments: a file with its grey levels, kept in
    # the run's config so that evaluate and resume load the same data.
    data = _tiny_images(tmp_path / "tiny.npy")
    out = tmp_path / "run.pt"
    flags = f"--data {data} --levels 8 --dequantize --hidden 8 --latent-dim 2"
    assert cli(f"train {flags} --epochs 2 --eval-samples 10 --out {out} --no-progress") == 0
    config = read_train_config(out.with_suffix(".toml"))
    assert config["data"] == str(data) and config["levels"] == 8
    capsys.readouterr()
    assert cli(f"evaluate {out} --num-samples 10 --no-progress") == 0
    assert f"{data}: log p(x) by importance sampling (IS, K = 10)" in capsys.readouterr().out
    assert cli(f"train --resume {out} --epochs 3 --no-progress") == 0
    # 8 levels: the same file read with 256 would be other data; levels is refused without it.
    assert cli(f"train --data digits --levels 8 --out {tmp_path / 'x.pt'}") == 2
    assert "--levels applies to a .npy or .npz file" in capsys.readouterr().err


def test_the_experiment_takes_the_same_data_choices(tmp_path, capsys):
    data = _tiny_images(tmp_path / "tiny.npy")
    base = f"experiment collapse-depth --depths 1 --epochs 2 --no-progress --out {tmp_path}"
    assert cli(f"{base} --data {data} --levels 8") == 0
    saved = json.loads((tmp_path / "collapse_depth.json").read_text())
    assert saved["settings"]["data"] == str(data) and saved["num_train"] == 160
    assert cli(f"{base} --data mnist") == 2
    assert "--data mnist needs --data-root" in capsys.readouterr().err
    assert cli(f"{base} --fashion-mnist {tmp_path} --data mnist") == 2
    assert "--fashion-mnist ROOT is --data fashion-mnist --data-root ROOT" in (
        capsys.readouterr().err
    )


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install "
    "dataset-fashion-mnist)",
)
def test_train_and_evaluate_on_debians_fashion_mnist(tmp_path, capsys):
    out = tmp_path / "fashion.pt"
    flags = f"--data fashion-mnist --data-root {DEBIAN_FASHION} --dequantize --hidden 16"
    assert cli(f"train {flags} --epochs 1 --eval-samples 10 --out {out} --no-progress") == 0
    capsys.readouterr()
    assert cli(f"evaluate {out} --num-samples 10 --num-points 20 --no-progress") == 0
    assert "fashion-mnist: log p(x) by importance sampling" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_with_ais_and_bdmc(tmp_path, capsys):
    out = tmp_path / "run.pt"
    flags = "--model linear-gaussian --data linear-gaussian --hidden none --latent-dim 4"
    assert cli(f"train {flags} --epochs 2 --eval-samples 0 --out {out} --no-progress") == 0
    capsys.readouterr()
    table = tmp_path / "ais.json"
    command = (
        f"evaluate {out} --method ais --num-steps 10 --num-chains 4 --num-points 5 "
        f"--bdmc 3 --num-samples 50 --table {table} --no-progress"
    )
    assert cli(command) == 0
    printed = capsys.readouterr().out
    assert "log p(x) by annealed importance sampling (AIS, T = 10, C = 4)" in printed
    assert "held-out − train:" in printed and "BDMC on 3 points simulated" in printed
    rows = json.loads(table.read_text())
    assert [row["estimator"] for row in rows] == ["AIS, T = 10, C = 4"] * 2
    assert all(0 < row["acceptance"] <= 1 and row["stderr_points"] > 0 for row in rows)
