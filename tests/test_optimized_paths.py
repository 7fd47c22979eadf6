"""Every speed-up keeps the numbers: ``fit``'s losses and parameters and ``log_marginal``'s
estimates equal, to float64 rounding, those of the path without it.

=============================================  ==================================================
optimization                                   compared here with
=============================================  ==================================================
one fused Adam for every parameter             ``pyro.optim.Adam`` (one torch Adam per tensor)
(``JointOptim``, gradients reset to ``None``)
Pyro's checks on each epoch's first step       Pyro's checks on every step
the guard (one reduction over the gradients)   ``SVI.step``
the support checked on the data alone          the pair run on every point (the messages:
(``check_data_support``'s fast path)           ``tests/test_user_sites.py``)
``SharedScaleNormal``, ``BernoulliLogits``     torch's ``Normal`` and ``Bernoulli`` ``.to_event(1)``
K samples on a particle plate, passes in       one row per sample (``vectorize=False``), one
inference mode without Pyro's checks, chunks   point per pass
AIS: the guide's distribution kept for a       the guide run at every leapfrog step
block (``CACHE_GUIDE``)                        (``CACHE_GUIDE = False``)
=============================================  ==================================================

The unoptimized side is assembled from Pyro and torch alone where it can be (``SVI``,
``pyro.optim.Adam``, torch's distributions); both sides draw the same random numbers, so the
comparison is exact up to rounding, not statistical.
"""

from __future__ import annotations

import copy
import importlib

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

import pvae
from pvae.distributions import BernoulliLogits, SharedScaleNormal
from pvae.training import KLWeight

LIKELIHOODS = ["normal-shared", "bernoulli"]


def torch_densities(decoder) -> None:
    """Make ``decoder.x_dist`` return torch's own distributions instead of pvae's fast ones."""
    fast = decoder.x_dist

    def plain(z, x=None):
        d = fast(z, x)
        if isinstance(d, SharedScaleNormal):
            return dist.Normal(d.base_dist.loc, d.base_dist.scale).to_event(1)
        if isinstance(d, BernoulliLogits):
            return dist.Bernoulli(logits=d.base_dist.logits).to_event(1)
        raise AssertionError(f"no fast density to replace: {type(d).__name__}")

    decoder.x_dist = plain


def pair(name: str):
    torch.manual_seed(0)
    model = pvae.build_model(name, 6, 2, (5,))
    return model, pvae.build_guide("diag-normal", model, (5,))


def data_for(name: str) -> torch.Tensor:
    x = torch.rand(50, 6, generator=torch.Generator().manual_seed(1))
    return (x > 0.5).double() if name == "bernoulli" else x


def params(*modules) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("elbo", ["meanfield", "trace"])
@pytest.mark.parametrize("name", LIKELIHOODS)
def test_fit_equals_plain_pyro_svi_with_torch_densities(name, elbo):
    data, epochs, batch_size, seed = data_for(name), 3, 16, 3  # a ragged last batch of 2
    model, guide = pair(name)
    initial = copy.deepcopy(model), copy.deepcopy(guide)
    pyro.clear_param_store()
    history = pvae.fit(
        model, guide, data, epochs=epochs, batch_size=batch_size, lr=1e-2, elbo=elbo,
        seed=seed, progress=False,
    )  # fmt: skip
    fitted = params(model, guide)

    pyro.clear_param_store()
    model, guide = initial
    torch_densities(model.decoder)

    def scaled(program):
        def run(x, scale):
            with poutine.scale(scale=scale), KLWeight(1.0):
                return program(x)

        return run

    loss_class = TraceMeanField_ELBO if elbo == "meanfield" else Trace_ELBO
    svi = SVI(
        scaled(model), scaled(guide), pyro.optim.Adam({"lr": 1e-2}),
        loss_class(max_plate_nesting=1),
    )  # fmt: skip
    pyro.set_rng_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    torch.randperm(data.shape[0], generator=generator)  # fit's monitoring subset
    losses = []
    with pyro.validation_enabled(True):  # Pyro's checks on every step
        for _ in range(epochs):
            total = 0.0
            for batch in torch.randperm(data.shape[0], generator=generator).split(batch_size):
                total += svi.step(data[batch], data.shape[0] / batch.shape[0]) * batch.shape[0]
            losses.append(total / data.shape[0] ** 2)
    torch.testing.assert_close(
        torch.as_tensor(history.column("loss")),
        torch.tensor(losses, dtype=torch.float64),
        rtol=1e-10,
        atol=0,
    )
    for got, expected in zip(fitted, params(model, guide), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_log_marginal_equals_one_row_per_sample_with_torch_densities(name):
    x = data_for(name)[:7]
    model, guide = pair(name)
    options = {"num_samples": 300, "seed": 5, "return_log_weights": True, "progress": False}
    fast = pvae.log_marginal(model, guide, x, **options)
    torch_densities(model.decoder)
    with pyro.validation_enabled(True):
        slow = pvae.log_marginal(model, guide, x, vectorize=False, chunk_size=300, **options)
    torch.testing.assert_close(fast.log_weights, slow.log_weights, rtol=1e-12, atol=1e-10)
    for field in ("estimate", "stderr", "ess", "khat", "elbo"):
        torch.testing.assert_close(
            getattr(fast, field), getattr(slow, field), rtol=1e-10, atol=1e-12
        )
    assert fast.status == slow.status


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_ais_with_the_guide_kept_equals_the_guide_run_at_every_step(name, monkeypatch):
    x = data_for(name)[:4]
    model, guide = pair(name)
    calls = []

    def counting(x):
        calls.append(1)
        return guide(x)

    options = {"num_steps": 8, "num_chains": 3, "num_leapfrog": 3, "seed": 2, "progress": False}
    kept = pvae.ais(model, counting, x, **options)
    kept_calls, calls[:] = len(calls), []
    # the module, not pvae.estimation.ais, which is the function
    monkeypatch.setattr(importlib.import_module("pvae.estimation.ais"), "CACHE_GUIDE", False)
    every = pvae.ais(model, counting, x, **options)
    assert kept_calls * 5 < len(calls)  # the encoder ran a handful of times, not every step
    for field in ("estimate", "log_weights", "acceptance", "step_size"):
        torch.testing.assert_close(getattr(kept, field), getattr(every, field), rtol=0, atol=0)
