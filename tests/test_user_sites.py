"""A VAE written the way Pyro's own example writes it (examples/vae/vae.py): plain
``nn.Module`` networks registered with ``pyro.module``, latent site ``"latent"``, observed site
``"obs"``, a Bernoulli with ``validate_args=False``; pvae's tools find its sites from the traces."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pvae
from pvae.contract import ContractError, latent_site, observed_site
from pvae.data import load_digits
from pvae.diagnostics import diagnose
from pvae.estimation import elbo_terms


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)

    def forward(self, x):
        hidden = nn.functional.softplus(self.fc1(x.reshape(-1, 64)))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, 64)

    def forward(self, z):
        return torch.sigmoid(self.fc21(nn.functional.softplus(self.fc1(z))))


class VAE(nn.Module):
    def __init__(self, z_dim=2, hidden_dim=32):
        super().__init__()
        self.encoder, self.decoder, self.z_dim = (
            Encoder(z_dim, hidden_dim),
            Decoder(z_dim, hidden_dim),
            z_dim,
        )

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample(
                "obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                obs=x.reshape(-1, 64),
            )  # fmt: skip

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


@pytest.fixture
def pyro_style():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = VAE()
    data = load_digits(binarize=True)
    return vae, data


def test_a_pyro_example_vae_runs_through_fit_log_marginal_diagnose_and_ais(pyro_style):
    vae, data = pyro_style
    train, test = data.train[:300], data.test[:40]
    history = pvae.fit(vae.model, vae.guide, train, epochs=3, batch_size=100, progress=False)
    assert len(history) == 3
    result = pvae.log_marginal(vae.model, vae.guide, test, num_samples=50, progress=False)
    terms = elbo_terms(vae.model, vae.guide, test)
    # Jensen on every point, from the same pair: the ELBO never above log p̂ on average.
    assert float(result.estimate.mean()) >= float(terms["elbo"].mean())
    assert torch.isnan(terms["min_variance"])  # a Bernoulli has no variance to report
    found = diagnose(vae.model, vae.guide, test)
    assert found.latent_dim == 2
    annealed = pvae.ais(vae.model, vae.guide, test[:5], num_steps=5, num_chains=2, seed=0,
                        progress=False)  # fmt: skip
    assert bool(torch.isfinite(annealed.estimate).all())
    sandwich = pvae.bdmc(vae.model, vae.guide, train, num_points=3, num_steps=5, num_chains=2,
                         seed=0, progress=False)  # fmt: skip
    assert sandwich.data.shape == (3, 64)


def test_the_sites_are_found_and_errors_list_them(pyro_style):
    vae, data = pyro_style
    x = data.test[:4]
    trace = pyro.poutine.trace(vae.model).get_trace(x)
    assert observed_site(trace)["name"] == "obs"
    guide_trace = pyro.poutine.trace(vae.guide).get_trace(x)
    assert latent_site(guide_trace) == "latent"
    with pytest.raises(ValueError, match=r"got 'z'; its latent sites are \['latent'\]"):
        diagnose(vae.model, vae.guide, x, site="z")

    def unobserved(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    with pytest.raises(ContractError, match=r"one sample site inside pyro.plate.*\['latent'\]"):
        pvae.log_marginal(unobserved, vae.guide, x, num_samples=2, progress=False)

    def twice_observed(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            probs = vae.decoder(z)
            pyro.sample("obs", dist.Bernoulli(probs).to_event(1), obs=x)
            pyro.sample("again", dist.Bernoulli(probs).to_event(1), obs=x)

    with pytest.raises(
        ContractError, match=r"observes 2 sites inside the data plate \(\['again', 'obs'\]\)"
    ):
        pvae.log_marginal(twice_observed, vae.guide, x, num_samples=2, progress=False)


def test_data_outside_the_support_are_refused_naming_the_first_bad_entry(pyro_style):
    # Pyro's example scores grey levels under its Bernoulli(validate_args=False) without a
    # word; pvae refuses them before any number, wherever the first bad entry is.
    vae, data = pyro_style
    x = data.test[:30].clone()
    x[17, 5] = 0.25  # one grey pixel among binary ones
    message = r"observed site 'obs' .* Bernoulli .*point 17, entry 5, value 0\.25"
    with pytest.raises(ContractError, match=message):
        pvae.log_marginal(vae.model, vae.guide, x, num_samples=4, progress=False)
    with pytest.raises(ContractError, match=message):
        pvae.log_marginal(vae.model, vae.guide, x, num_samples=4, vectorize=False, progress=False)
    with pytest.raises(ContractError, match=message):
        pvae.fit(vae.model, vae.guide, x, epochs=1, progress=False)
    with pytest.raises(ContractError, match=message):
        pvae.ais(vae.model, vae.guide, x, num_steps=2, num_chains=2, progress=False)
    with pytest.raises(ContractError, match=message):
        diagnose(vae.model, vae.guide, x)
