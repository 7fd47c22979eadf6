"""Data sets by name (pvae.data.catalog): the loader each name stands for, and named errors."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pvae.data import (
    linear_gaussian_data,
    load_array,
    load_data,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    split,
    write_idx,
)
from pvae.experiments import collapse_depth


def same(a, b) -> bool:
    return torch.equal(a.train, b.train) and torch.equal(a.test, b.test)


@pytest.mark.parametrize(
    "options", [{}, {"binarize": True}, {"dequantize": True, "seed": 3}, {"seed": 5}]
)
def test_digits_are_load_digits(options):
    assert same(load_dataset("digits", **options), load_digits(**options))


def test_linear_gaussian_is_the_cli_data_set():
    data, _ = linear_gaussian_data(2000, 16, 4, seed=2)
    assert same(load_dataset("linear-gaussian", seed=2), split(data, seed=2))


def test_a_file_by_path_or_by_suffix(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(40).reshape(10, 4) % 5)
    expected = load_array(path, 5, dequantize=True, seed=1)
    for name in (path, str(path)):
        assert same(load_dataset(name, num_levels=5, dequantize=True, seed=1), expected)


def test_idx_data_sets_read_root(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(5, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(3, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(tmp_path / name, array)  # made up: not the official contents
    loaded = load_dataset("fashion-mnist", root=tmp_path, binarize=True, checksums=None)
    assert same(loaded, load_fashion_mnist(tmp_path, binarize=True, checksums=None))
    assert load_dataset("mnist", root=tmp_path, checksums=None).train.shape == (5, 784)
    with pytest.raises(ValueError, match="does not hold the official fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.parametrize(
    "name, options, error, message",
    [
        ("cifar", {}, ValueError, "name must be one of \\['digits', 'fashion-mnist', .* 'cifar'"),
        (3, {}, TypeError, "name must be a data set's name \\(a str\\) or a file path, got int"),
        ("mnist", {}, ValueError, "name='mnist' needs root, the folder or base URL"),
        ("fashion-mnist", {}, ValueError, "name='fashion-mnist' needs root"),
        (
            "linear-gaussian",
            {"binarize": True},
            ValueError,
            "binarize and dequantize apply to images, not to name='linear-gaussian'",
        ),
        (Path("missing.npy"), {}, FileNotFoundError, "'missing.npy' does not exist"),
    ],
)
def test_load_dataset_names_the_bad_argument(name, options, error, message):
    with pytest.raises(error, match=message):
        load_dataset(name, **options)


def test_load_data_reads_a_run_config():
    config = {"data": "digits", "binarize": True, "data_seed": 4}
    assert same(load_data(config), load_digits(binarize=True, seed=4))
    with pytest.raises(ValueError, match="config names no data set \\(key 'data'\\)"):
        load_data({})
    # An IDX set needs its folder, named as the config spells it; a file takes its levels.
    with pytest.raises(ValueError, match="data mnist needs data_root"):
        load_data({"data": "mnist"})
    with pytest.raises(ValueError, match=r"levels applies to a \.npy or \.npz file"):
        load_data({"data": "digits", "levels": 5})
    with pytest.raises(ValueError, match=r"data must be one of .* or the path of a \.npy"):
        load_data({"data": "cifar"})


def test_the_depth_experiment_loads_through_the_catalog():
    settings = dataclasses.replace(collapse_depth.DEFAULT, seed=6)
    assert same(collapse_depth.load_data(settings), load_digits(seed=6))
