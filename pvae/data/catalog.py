"""Data sets by name: the one place the CLI, the demo and the experiments look them up."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass
from pvae.data.images import load_digits
from pvae.data.synthetic import linear_gaussian_data

__all__ = ["DATASETS", "load_data"]

DATASETS = ("digits", "linear-gaussian")


def load_data(config: dict):
    """The train/held-out split a run's ``config`` names (``data``, ``binarize``,
    ``dequantize``, ``data_seed``)."""
    name = config.get("data")
    if name is None:
        raise ValueError(
            "the checkpoint's config names no data set (key 'data'); it was not written by "
            "'pvae train', so evaluate it from Python with pvae.load and pvae.log_marginal"
        )
    if name == "digits":
        return load_digits(
            binarize=config.get("binarize", False),
            dequantize=config.get("dequantize", False),
            seed=config.get("data_seed", 0),
        )
    if name == "linear-gaussian":
        from pvae.data.split import split

        data, _ = linear_gaussian_data(2000, 16, 4, seed=config.get("data_seed", 0))
        return split(data, seed=config.get("data_seed", 0))
    raise ValueError(f"data must be one of {list(DATASETS)}, got {name!r}")
