"""Dai et al.'s depth experiment (pvae.experiments.collapse_depth) with tiny settings."""

import dataclasses
import json
import math

import numpy as np
import pyro
import pytest
import torch

import pvae
from pvae.data import Split
from pvae.diagnostics import reconstruction_error
from pvae.experiments.collapse_depth import (
    DEFAULT,
    FULL,
    VARIANTS,
    CollapseDepthSettings,
    format_table,
    run_collapse_depth,
)
from pvae.plots import plot_collapse_depth

TINY = CollapseDepthSettings(
    depths=(1, 2), width=16, latent_dim=4, epochs=2, warmup_epochs=1, max_points=120
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the module fixture runs outside conftest's policy
    try:
        out = tmp_path_factory.mktemp("collapse_depth")
        rows = run_collapse_depth(out, settings=TINY, progress=False)
    finally:
        torch.set_default_dtype(previous)
        pyro.clear_param_store()
    return out, rows


def test_run_writes_one_row_per_variant_and_depth(tiny_run):
    out, rows = tiny_run
    for name in ("collapse_depth.csv", "collapse_depth.json", "collapse_depth.png"):
        assert (out / name).stat().st_size > 0, name
    assert [(row["variant"], row["depth"]) for row in rows] == [
        (variant, depth) for variant in VARIANTS for depth in (1, 2)
    ]
    csv_lines = (out / "collapse_depth.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,depth,seed,train_recon_error") and len(csv_lines) == 7
    saved = json.loads((out / "collapse_depth.json").read_text())
    assert saved["settings"]["depths"] == [1, 2] and saved["num_train"] == 120
    assert len(saved["runs"]["vae-warmup/2"]["history"]) == 2
    # warm-up over 1 epoch of 2: β = 0, then 1
    assert [r["kl_weight"] for r in saved["runs"]["vae-warmup/1"]["history"]] == [0.0, 1.0]
    assert {r["kl_weight"] for r in saved["runs"]["ae/1"]["history"]} == {0.0}
    scales = np.load(out / "collapse_depth_scales.npz")
    assert sorted(scales.files) == ["vae-warmup/1", "vae-warmup/2", "vae/1", "vae/2"]
    assert scales["vae/2"].shape == (120, 4)


def test_rows_are_finite_and_the_ae_has_no_encoder_scales(tiny_run):
    _, rows = tiny_run
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("final_loss", "seconds")), row
        for key in ("train_recon_error", "test_recon_error", "gamma"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        vae_only = ("kl", "active_units", "median_scale", "share_scale_near_1")
        if row["variant"] == "ae":
            assert all(row[key] is None for key in vae_only), row
        else:
            assert row["kl"] >= 0 and 0 <= row["active_units"] <= TINY.latent_dim
            assert 0 < row["median_scale"] and 0 <= row["share_scale_near_1"] <= 1
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "—" in table


def test_reconstruction_error_by_hand():
    # An affine autoencoder with set weights: encoder z = A x + a, decoder mean W z + b.
    model = pvae.build_model("normal-shared", 3, 2, ())
    guide = pvae.build_guide("delta", model, ())
    A = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    a = torch.tensor([0.5, -1.0])
    W = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([0.0, 1.0, -1.0])
    with torch.no_grad():
        guide.encoder[0].weight.copy_(A)
        guide.encoder[0].bias.copy_(a)
        model.decoder.net[0].weight.copy_(W)
        model.decoder.net[0].bias.copy_(b)
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    # point 1: z = (1.5, 4), x̂ = (3, 5, 4.5), error 4 + 9 + 2.25 = 15.25
    # point 2: z = (0.5, −1), x̂ = (1, 0, −1.5), error 1 + 0 + 2.25 = 3.25
    expected = torch.tensor([15.25, 3.25])
    torch.testing.assert_close(reconstruction_error(model, guide, x), expected)
    torch.testing.assert_close(reconstruction_error(model, guide, x, chunk_size=1), expected)


def test_reconstruction_error_uses_the_posterior_mean_not_a_sample():
    model = pvae.build_model("normal-shared", 5, 2, (8,))
    guide = pvae.build_guide("diag-normal", model, (8,))
    x = torch.rand(4, 5)
    first = reconstruction_error(model, guide, x)
    torch.testing.assert_close(reconstruction_error(model, guide, x), first, rtol=0, atol=0)
    with torch.no_grad():
        loc, _ = guide.encoder(x)
        expected = (x - model.decoder.x_dist(loc).mean).pow(2).sum(-1)
    torch.testing.assert_close(first, expected)


def test_reconstruction_error_names_a_missing_site():
    model = pvae.build_model("normal-shared", 3, 2, ())
    guide = pvae.build_guide("delta", model, ())
    with pytest.raises(ValueError, match="site must be a latent site"):
        reconstruction_error(model, guide, torch.rand(2, 3), site="w")


def test_run_accepts_given_data_and_takes_its_dtype(tmp_path):
    data = pvae.load_digits(dtype=torch.float32)
    small = Split(train=data.train[:70], test=data.test[:30])
    settings = dataclasses.replace(TINY, depths=(1,), data="my digits", max_points=None)
    rows = run_collapse_depth(tmp_path, settings=settings, data=small, progress=False)
    assert len(rows) == len(VARIANTS)
    assert json.loads((tmp_path / "collapse_depth.json").read_text())["num_test"] == 30
    with np.load(tmp_path / "collapse_depth_scales.npz") as scales:
        assert scales.files and all(scales[key].dtype == np.float32 for key in scales.files)


def test_presets():
    assert DEFAULT.depths == FULL.depths == (1, 2, 4, 6, 8, 10)
    assert DEFAULT.width == FULL.width == 512 and DEFAULT.latent_dim == FULL.latent_dim == 64
    assert DEFAULT.batch_size == FULL.batch_size == 64
    assert FULL.epochs > DEFAULT.epochs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"depths": ()}, "at least one depth"),
        ({"depths": (1, 1)}, "must not repeat"),
        ({"depths": (0, 2)}, "every entry of depths must be a positive integer"),
        ({"width": 0}, "width must be a positive integer"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"epochs": 4, "warmup_epochs": 4}, "warmup_epochs must be < epochs"),
        ({"max_points": 0}, "max_points must be a positive integer"),
    ],
)
def test_settings_name_the_bad_value(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(DEFAULT, **changes)


def test_unknown_data_without_a_split_is_refused(tmp_path):
    settings = dataclasses.replace(TINY, data="cifar")
    with pytest.raises(
        ValueError,
        match=r"data must be one of \['digits', 'fashion-mnist', 'linear-gaussian', 'mnist'\] or",
    ):
        run_collapse_depth(tmp_path, settings=settings, progress=False)
    settings = dataclasses.replace(TINY, data="fashion-mnist")
    with pytest.raises(ValueError, match="needs data_root"):
        run_collapse_depth(tmp_path, settings=settings, progress=False)


def test_plot_without_vae_scales_still_draws():
    rows = [
        {
            "variant": "ae",
            "depth": depth,
            "train_recon_error": 1.0 / depth,
            "test_recon_error": 1.2 / depth,
            "gamma": 0.1,
            "active_units": None,
        }
        for depth in (1, 2)
    ]
    figure = plot_collapse_depth(rows, {})
    assert len(figure.axes) == 5


def test_the_table_has_a_seed_column_only_for_several_seeds(tiny_run):
    _, rows = tiny_run
    assert "seed" not in format_table(rows).splitlines()[0]
    two = [rows[0], {**rows[0], "seed": 7}]
    header, _, first, second = format_table(two).splitlines()
    assert header.split()[:3] == ["variant", "depth", "seed"]
    assert first.split()[:3] == ["ae", "1", "0"] and second.split()[:3] == ["ae", "1", "7"]
