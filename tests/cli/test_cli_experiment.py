"""``pvae experiment``: collapse-depth and iwae-vs-elbo end to end, and their flag checks."""

import json
import subprocess
from pathlib import Path

import pytest

from pvae.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_collapse_depth_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "experiment",
            "collapse-depth",
            "--depths",
            "1",
            "--epochs",
            "2",
            "--max-points",
            "64",
            "--seed",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Dai et al. (2020)" in printed and "vae-warmup" in printed
    assert str(out / "collapse_depth.png") in printed
    saved = json.loads((out / "collapse_depth.json").read_text())
    settings = saved["settings"]
    # width and latent stay the paper's; the flags set the rest
    assert settings["depths"] == [1] and settings["epochs"] == 2 and settings["seed"] == 3
    assert settings["warmup_epochs"] == 1 and settings["width"] == 512
    assert saved["num_train"] == 64 and [row["variant"] for row in saved["rows"]] == [
        "ae",
        "vae",
        "vae-warmup",
    ]


def test_help_lists_the_experiment():
    result = subprocess.run(
        ["pvae", "experiment", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "collapse-depth" in result.stdout and "iwae-vs-elbo" in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--depths", "1,x"], "--depths must be comma-separated integers such as 1,2,4"),
        (["--depths", "0,2"], "--depths must be positive"),
        (["--depths", "2,2"], "--depths must not repeat a depth"),
        (["--epochs", "0"], "must be > 0, got '0'"),
        (["--max-points", "-5"], "must be > 0, got '-5'"),
    ],
)
def test_bad_flags_are_refused_by_the_parser(flags, message, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["experiment", "collapse-depth", *flags])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_an_experiment_must_be_named(capsys):
    with pytest.raises(SystemExit):
        main(["experiment"])
    assert "collapse-depth" in capsys.readouterr().err


def test_bad_values_exit_with_a_named_error(tmp_path, capsys):
    assert main(["experiment", "collapse-depth", "--epochs", "1", "--no-progress"]) == 2
    assert "pvae experiment collapse-depth: error: --epochs must be at least 2" in (
        capsys.readouterr().err
    )
    missing = tmp_path / "nowhere"
    code = main(["experiment", "collapse-depth", "--fashion-mnist", str(missing), "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err
    assert "pvae experiment collapse-depth: error:" in error and str(missing) in error


def test_iwae_vs_elbo_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--particles", "3", "--seeds", "4", "--num-samples", "32"]
    flags += ["--ais-steps", "3", "--max-points", "40", "--out", str(out), "--no-progress"]
    code = main(["experiment", "iwae-vs-elbo", *flags])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Burda et al. (2016)" in printed and "iwae-dreg − elbo-k" in printed
    assert str(out / "iwae_vs_elbo.png") in printed
    saved = json.loads((out / "iwae_vs_elbo.json").read_text())
    settings = saved["settings"]
    assert settings["epochs"] == 1 and settings["num_particles"] == 3
    assert settings["seeds"] == [4] and settings["num_samples"] == 32
    assert settings["ais_steps"] == 3
    assert settings["hidden_sizes"] == [200, 200]  # the architecture stays the default
    assert saved["num_test"] == 40 and [row["particles"] for row in saved["rows"]] == [1, 3, 3, 3]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0,x"], "invalid int value: 'x'"),
        (["--seeds", "1,1"], "must not repeat a seed, got '1,1'"),
        (["--particles", "0"], "must be > 0, got '0'"),
    ],
)
def test_bad_iwae_vs_elbo_flags_are_refused_by_the_parser(flags, message, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["experiment", "iwae-vs-elbo", *flags])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_one_particle_is_refused_naming_the_flag(capsys):
    assert main(["experiment", "iwae-vs-elbo", "--particles", "1", "--no-progress"]) == 2
    assert "pvae experiment iwae-vs-elbo: error: --particles must be at least 2" in (
        capsys.readouterr().err
    )


def test_gamma_sweep_end_to_end(tmp_path, capsys):
    """The closed-form column is the count of data-covariance eigenvalues above γ (capped at
    q), recomputed here from the digits' training split."""
    import torch

    from pvae.data import load_digits

    out = tmp_path / "sweep"
    argv = ["experiment", "gamma-sweep", "--gammas", "0.05,0.5", "--latent-dim", "4"]
    assert main([*argv, "--hidden", "8", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Proposition 2 on digits" in printed and "an MLP 8 VAE" in printed
    saved = json.loads((out / "gamma_sweep.json").read_text())
    x = load_digits(seed=0).train
    eigenvalues = torch.linalg.eigvalsh(torch.cov(x.T, correction=0))
    expected = [min(int((eigenvalues > gamma).sum()), 4) for gamma in (0.05, 0.5)]
    assert [row["closed_form"] for row in saved["rows"]] == expected
    assert [row["gamma"] for row in saved["rows"]] == [0.05, 0.5]
    assert (out / "gamma_sweep.png").stat().st_size > 0
    assert (out / "gamma_sweep.csv").read_text().startswith("gamma,active,closed_form,kl,elbo")


def test_zero_gpus_per_task_is_the_default_and_needs_no_ray():
    """--gpus-per-task 0 asks for nothing (the help's default), so it is not refused without
    --ray; 0.5 without --ray is (tests/test_bad_inputs.py)."""
    from pvae.cli.options import ray_options
    from pvae.cli.parser import build_parser

    args = build_parser().parse_args(["experiment", "collapse-depth", "--gpus-per-task", "0"])
    assert ray_options(args) == {"ray": None, "cpus_per_task": 1, "gpus_per_task": 0}
