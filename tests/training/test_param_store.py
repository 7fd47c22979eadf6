"""Pyro's global param store outlives a notebook cell: a pair built again under the same
names, without ``pyro.clear_param_store()``, would train nothing (``pyro.module`` hands the
optimizer the store's old tensors while the new networks compute with their own). ``fit``
refuses it, naming the parameters; a parameter the loss never reaches is named too."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pvae
from pvae.contract import ContractError
from pvae.data import load_digits
from pvae.training import UnusedParameterWarning


def build(hidden=8, spare=False):
    """A cell of a notebook: the README's plain-function pair, networks built afresh."""
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 64))
    encoder = nn.Linear(64, 4)

    def model(x):
        pyro.module("decoder", decoder)
        log_gamma = pyro.param("log_gamma", torch.tensor(0.0))
        if spare:
            pyro.param("spare", torch.zeros(3))  # registered, used by nothing
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            scale = (0.5 * log_gamma).exp()
            pyro.sample("x", dist.Normal(decoder(z), scale).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    return model, guide, decoder


@pytest.fixture
def data():
    pyro.clear_param_store()
    yield load_digits().train[:200]
    pyro.clear_param_store()


def run(model, guide, data):
    return pvae.fit(model, guide, data, epochs=2, batch_size=50, seed=0, progress=False)


def test_a_cell_run_twice_is_refused_and_a_cleared_store_gives_the_fresh_result(data):
    model, guide, decoder = build()
    before = decoder[0].weight.detach().clone()
    fresh = run(model, guide, data)
    assert not torch.equal(decoder[0].weight, before)  # the first run trains the decoder
    model, guide, decoder = build()  # the cell again, the store untouched
    with pytest.raises(ContractError, match=r"6 module parameters .*decoder\$\$\$0\.bias.*"
                       r"pyro\.clear_param_store\(\)"):  # fmt: skip
        run(model, guide, data)
    pyro.clear_param_store()
    model, guide, decoder = build()
    again = run(model, guide, data)
    assert again.column("elbo") == pytest.approx(fresh.column("elbo"), rel=1e-6)


def test_a_changed_architecture_under_the_same_names_is_refused_naming_the_shapes(data):
    run(*build(hidden=8)[:2], data)
    with pytest.raises(ContractError, match=r"decoder\$\$\$0\.weight: the module's \(16, 2\), "
                       r"the store's \(8, 2\)"):  # fmt: skip
        run(*build(hidden=16)[:2], data)


def test_fit_called_again_on_the_same_pair_continues(data):
    model, guide, decoder = build()
    first = run(model, guide, data)
    after_first = decoder[0].weight.detach().clone()
    second = pvae.fit(model, guide, data, epochs=2, batch_size=50, progress=False)
    assert not torch.equal(decoder[0].weight, after_first)
    assert second[-1]["elbo"] > first[0]["elbo"]


def test_a_parameter_the_loss_never_reaches_is_named(data):
    model, guide, _ = build(spare=True)
    with pytest.warns(UnusedParameterWarning, match=r"1 parameters received no gradient in "
                      r"the first 4 steps \(spare\)"):  # fmt: skip
        run(model, guide, data)
