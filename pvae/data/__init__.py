"""Data: sklearn's digits, MNIST-style IDX files and synthetic data, as torch tensors."""

from pvae.data.catalog import load_data, load_dataset
from pvae.data.download import fetch
from pvae.data.idx import read_idx, write_idx
from pvae.data.images import (
    DIGITS_LEVELS,
    dequantization_variance,
    from_levels,
    load_array,
    load_digits,
)
from pvae.data.mnist import load_fashion_mnist, load_mnist
from pvae.data.split import Split, split
from pvae.data.synthetic import data_with_spectrum, linear_gaussian_data

__all__ = [
    "DIGITS_LEVELS",
    "Split",
    "data_with_spectrum",
    "dequantization_variance",
    "fetch",
    "from_levels",
    "linear_gaussian_data",
    "load_array",
    "load_data",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "split",
    "write_idx",
]
