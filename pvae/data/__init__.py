"""Data: sklearn's digits, MNIST-style IDX files and synthetic data, as torch tensors."""

from pvae.data.catalog import DATASETS, load_data, load_dataset
from pvae.data.download import check_md5_argument, fetch, is_url
from pvae.data.idx import CHUNK_BYTES, read_idx, write_idx
from pvae.data.images import DIGITS_LEVELS, from_levels, load_array, load_digits, scale_levels
from pvae.data.mnist import load_fashion_mnist, load_mnist
from pvae.data.split import Split, split
from pvae.data.synthetic import data_with_spectrum, linear_gaussian_data

__all__ = [
    "CHUNK_BYTES",
    "DATASETS",
    "DIGITS_LEVELS",
    "Split",
    "check_md5_argument",
    "data_with_spectrum",
    "fetch",
    "from_levels",
    "is_url",
    "linear_gaussian_data",
    "load_array",
    "load_data",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "scale_levels",
    "split",
    "write_idx",
]
