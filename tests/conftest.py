"""Test policy: float64, a fixed seed per test, Pyro validation on, a clean param store."""

import pyro
import pytest
import torch


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
