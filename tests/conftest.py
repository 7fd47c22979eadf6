"""Test policy: float64, a fixed seed per test, Pyro validation on, a clean param store; and,
when pytest-xdist runs the files in several worker processes (``-n auto`` in pyproject.toml),
each worker's share of the cores as its torch threads."""

import os

import pyro
import pytest
import torch


def pytest_configure(config):
    # Several workers, each with torch's default of one thread per core, oversubscribe the
    # cores (two such processes on 2 cores run up to 10× slower): each gets its share, and so
    # do the commands, notebook kernels and Ray workers its tests start (they read the
    # variable when they start).
    if "PYTEST_XDIST_WORKER" in os.environ:
        workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _policy():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()
    torch.set_default_dtype(previous)


@pytest.fixture
def ppca():
    """A 6-dim, 2-latent linear-Gaussian model with correlated posterior, and 300 points from it."""
    from pvae.data import linear_gaussian_data

    data, model = linear_gaussian_data(300, 6, 2, noise_variance=0.5, seed=1)
    return model, data
