"""pvae impute: a checkpoint and an .npy with NaN marking the missing entries."""

import numpy as np
import pytest
import torch

import pvae
from pvae.cli import main


def cli(command: str) -> int:
    return main([*command.split(), "--no-progress"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("impute")
    checkpoint = folder / "run.pt"
    torch.set_default_dtype(torch.float64)
    try:
        code = cli(
            f"train --model bernoulli --binarize --epochs 1 --hidden 16 --latent-dim 2 "
            f"--eval-samples 0 --out {checkpoint}"
        )
    finally:
        torch.set_default_dtype(torch.float32)
    assert code == 0
    return checkpoint


def _data(folder, *, shape=(5, 64), dtype=np.float64):
    x = (np.random.default_rng(0).random(shape) > 0.5).astype(dtype)
    flat = x.reshape(shape[0], -1)
    missing = np.zeros_like(flat, dtype=bool)
    missing[:, ::3] = True
    flat = np.where(missing, np.nan, flat)
    path = folder / "points.npy"
    np.save(path, flat.reshape(shape))
    return path, x, ~missing.reshape(shape)


def test_impute_fills_in_the_nan_entries_as_the_library_does(trained, tmp_path, capsys):
    path, x, observed = _data(tmp_path)
    out = tmp_path / "filled.npz"
    assert cli(f"impute {trained} {path} --out {out} --num-steps 5 --num-samples 3 --seed 2") == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Imputation by Metropolis-within-Gibbs") and str(out) in printed
    saved = np.load(out)
    assert set(saved.files) == {
        "mean",
        "mean_stderr",
        "samples",
        "mask",
        "mode",
        "acceptance",
        "rhat",
        "status",
    }
    assert saved["samples"].shape == (3, 5, 64) and np.array_equal(saved["mask"], observed)
    assert np.array_equal(
        saved["samples"][:, observed], np.broadcast_to(x[observed], (3, observed.sum()))
    )
    loaded = pvae.load(trained)
    given = torch.from_numpy(np.load(path)).to(next(loaded.model.parameters()).dtype)
    expected = pvae.impute(
        loaded.model, loaded.guide, given, num_steps=5, num_samples=3, seed=2, progress=False
    )
    np.testing.assert_array_equal(saved["samples"], expected.samples.numpy())
    np.testing.assert_array_equal(saved["acceptance"], expected.acceptance.numpy())


def test_images_keep_their_shape_and_the_default_output_sits_beside_the_data(trained, tmp_path):
    path, _, observed = _data(tmp_path, shape=(4, 8, 8), dtype=np.float32)
    assert (
        cli(f"impute {trained} {path} --method importance --num-particles 20 --num-samples 2") == 0
    )
    saved = np.load(tmp_path / "points_imputed.npz")
    assert saved["mean"].shape == (4, 8, 8) and saved["samples"].shape == (2, 4, 8, 8)
    assert {"ess", "khat"} <= set(saved.files) and "acceptance" not in saved.files
    assert np.array_equal(saved["mask"], observed)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: np.save(p, np.ones((3, 64), dtype=np.int64)), "holds int64 values"),
        (lambda p: np.save(p, np.ones((3, 10))), "has shape (3, 10)"),
        (lambda p: np.save(p, np.full((2, 64), np.nan)), "marks every entry of point 0 missing"),
        (lambda p: p.write_text("not an array"), "is not a .npy array"),
    ],
)
def test_bad_data_files_are_one_line_naming_them(trained, tmp_path, capsys, write, message):
    path = tmp_path / "bad.npy"
    write(path)
    assert cli(f"impute {trained} {path}") == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("pvae impute: error: ")
        and message in error
        and len(error.splitlines()) == 1
    )


def test_the_output_must_be_an_npz_and_the_data_must_exist(trained, tmp_path, capsys):
    path, _, _ = _data(tmp_path)
    assert cli(f"impute {trained} {path} --out {tmp_path / 'x.npy'}") == 2
    assert "must end in .npz" in capsys.readouterr().err
    assert cli(f"impute {trained} {tmp_path / 'absent.npy'}") == 2
    assert "does not exist" in capsys.readouterr().err
