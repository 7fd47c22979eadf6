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

    with pytest.raises(ContractError, match=r"at a sample site inside pyro.plate.*\['latent'\]"):
        pvae.log_marginal(unobserved, vae.guide, x, num_samples=2, progress=False)

    def twice_observed(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            probs = vae.decoder(z)
            pyro.sample("obs", dist.Bernoulli(probs).to_event(1), obs=x)
            pyro.sample("again", dist.Bernoulli(probs).to_event(1), obs=x)

    with pytest.raises(
        ContractError,
        match=r"observes 2 sites inside the data plate \(\['again', 'obs'\]\); name the one "
        r"whose likelihood scores the data with obs_site=",
    ):
        pvae.log_marginal(twice_observed, vae.guide, x, num_samples=2, progress=False)
    with pytest.raises(
        ContractError, match=r"obs_site must name .* got 'x'; its observed sites are \['again'"
    ):
        pvae.log_marginal(twice_observed, vae.guide, x, num_samples=2, obs_site="x")


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


def test_a_support_without_parameters_is_checked_on_the_data_without_running_the_pair(
    pyro_style,
):
    # The Bernoulli's {0, 1} holds no parameters: the model runs on two points and the support
    # is checked on all of them, with the same message as the pass over every point gives.
    from pvae.contract import check_data_support

    vae, data = pyro_style
    rows = []

    def counting(x):
        rows.append(x.shape[0])
        return vae.model(x)

    x = data.test[:300].clone()
    check_data_support(counting, vae.guide, x)
    assert rows == [2]
    x[250, 7] = 0.5
    with pytest.raises(ContractError, match=r"site 'obs' .*point 250, entry 7, value 0\.5"):
        check_data_support(counting, vae.guide, x)
    # Halves of the data at two sites are not the data: every point goes through the pair,
    # in chunks, and the error still names the point.
    split, rows[:] = _split(vae), []

    def counting_split(x):
        rows.append(x.shape[0])
        return split(x)

    with pytest.raises(ContractError, match=r"site 'top' .*point 250, entry 7, value 0\.5"):
        check_data_support(counting_split, vae.guide, x, chunk_size=128)
    assert rows == [2, 128, 128]


class ConvVAE(nn.Module):
    """A convolutional pair on ``(B, 1, 8, 8)`` images, its observed site
    ``Bernoulli(...).to_event(3)``; with ``flat=True`` the same networks on rows of 64 pixels
    scored with ``.to_event(1)``: the oracle, since both forms must give the same numbers."""

    def __init__(self, z_dim=2, flat=False):
        super().__init__()
        self.z_dim, self.flat = z_dim, flat
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2, padding=1),
            nn.Softplus(),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 2 * z_dim),
        )
        self.decoder_fc = nn.Linear(z_dim, 4 * 4 * 4)
        self.decoder_conv = nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1)

    def decode(self, z):
        hidden = nn.functional.softplus(self.decoder_fc(z))
        images = self.decoder_conv(hidden.reshape(-1, 4, 4, 4))
        shape = (64,) if self.flat else (1, 8, 8)
        return torch.sigmoid(images).reshape(*z.shape[:-1], *shape)

    def model(self, x):
        pyro.module("conv_decoder", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample(
                "latent", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.0).to_event(1)
            )
            probs = self.decode(z)
            pyro.sample("obs", dist.Bernoulli(probs).to_event(probs.dim() - z.dim() + 1), obs=x)

    def guide(self, x):
        pyro.module("conv_encoder", self)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = self.encoder(x.reshape(-1, 1, 8, 8)).chunk(2, -1)
            pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))


def test_images_with_a_convolutional_pair_give_the_numbers_of_their_flat_twin():
    images = load_digits(binarize=True, images=True)
    assert images.train.shape[1:] == (1, 8, 8) and images.data_dim == 64
    results = {}
    for flat in (False, True):
        pyro.clear_param_store()
        torch.manual_seed(0)
        vae = ConvVAE(flat=flat)
        train, test = images.train[:200], images.test[:30]
        if flat:
            train, test = train.flatten(1), test.flatten(1)
        pyro.set_rng_seed(1)
        history = pvae.fit(vae.model, vae.guide, train, epochs=2, batch_size=50, progress=False)
        estimate = pvae.log_marginal(vae.model, vae.guide, test, num_samples=40, seed=3,
                                     progress=False)  # fmt: skip
        annealed = pvae.ais(vae.model, vae.guide, test[:4], num_steps=4, num_chains=2, seed=0,
                            progress=False)  # fmt: skip
        found = diagnose(vae.model, vae.guide, test)
        results[flat] = (history, estimate, annealed, found, elbo_terms(vae.model, vae.guide, test))
    (h_img, e_img, a_img, d_img, t_img), (h_flat, e_flat, a_flat, d_flat, t_flat) = (
        results[False],
        results[True],
    )
    # The same networks and draws: only the order of the pixel sums differs (float rounding).
    assert h_img.column("elbo") == pytest.approx(h_flat.column("elbo"), rel=1e-5)
    torch.testing.assert_close(e_img.estimate, e_flat.estimate, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(a_img.estimate, a_flat.estimate, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(t_img["elbo"], t_flat["elbo"], rtol=1e-5, atol=1e-4)
    assert d_img.reconstruction_error == pytest.approx(d_flat.reconstruction_error, rel=1e-5)
    torch.testing.assert_close(d_img.data_eigenvalues, d_flat.data_eigenvalues)
    assert bool(torch.isfinite(e_img.estimate).all()) and e_img.estimate.shape == (30,)


def _split(vae):
    """The example's model observing the top and the bottom half of each digit at two sites."""

    def model(x):
        pyro.module("decoder", vae.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            probs = vae.decoder(z)
            pyro.sample("top", dist.Bernoulli(probs[:, :32]).to_event(1), obs=x[:, :32])
            pyro.sample("bottom", dist.Bernoulli(probs[:, 32:]).to_event(1), obs=x[:, 32:])

    return model


def test_several_observed_sites_sum_to_the_one_site_model(pyro_style):
    # A construction: observing the two halves at two sites is the same likelihood as the
    # example's one site over all 64 pixels. With the same guide the draws are the same, so
    # log p̂, the IWAE bound and the ELBO agree to float rounding, whichever site obs_site names.
    vae, data = pyro_style
    x = data.test[:20]
    options = {"num_samples": 16, "seed": 3, "progress": False}
    one = pvae.log_marginal(vae.model, vae.guide, x, **options)
    for name in ("top", "bottom"):
        two = pvae.log_marginal(_split(vae), vae.guide, x, obs_site=name, **options)
        torch.testing.assert_close(two.estimate, one.estimate, rtol=0, atol=1e-10)
    bound, _ = pvae.iwae_bound(_split(vae), vae.guide, x, obs_site="top", **options)
    torch.testing.assert_close(bound, pvae.iwae_bound(vae.model, vae.guide, x, **options)[0])
    with pytest.raises(ContractError, match=r"\['bottom', 'top'\]\); name the one"):
        pvae.elbo_per_point(_split(vae), vae.guide, x, **options)
    elbo, _ = pvae.elbo_per_point(_split(vae), vae.guide, x, obs_site="bottom", **options)
    torch.testing.assert_close(elbo, pvae.elbo_per_point(vae.model, vae.guide, x, **options)[0])


def test_obs_site_reaches_fit_diagnose_and_ais(pyro_style):
    vae, data = pyro_style
    model, train = _split(vae), data.train[:200]
    with pytest.raises(ContractError, match="name the one whose likelihood"):
        pvae.fit(model, vae.guide, train, epochs=1, progress=False)
    history = pvae.fit(model, vae.guide, train, epochs=2, obs_site="top", progress=False)
    assert len(history) == 2 and all(r["elbo"] < 0 for r in history)
    found = diagnose(model, vae.guide, train[:50], obs_site="bottom")
    assert found.latent_dim == 2
    annealed = pvae.ais(model, vae.guide, train[:3], num_steps=3, num_chains=2, seed=0,
                        obs_site="top", progress=False)  # fmt: skip
    assert bool(torch.isfinite(annealed.estimate).all())
    with pytest.raises(ContractError, match=r"bdmc simulates .* observes \['bottom', 'top'\]"):
        pvae.bdmc(model, vae.guide, train, num_points=2, num_steps=3, num_chains=2, seed=0,
                  progress=False)  # fmt: skip
    # every observed site's support is checked, whichever is named
    grey = train[:10].clone()
    grey[4, 40] = 0.5  # in the bottom half
    with pytest.raises(ContractError, match=r"site 'bottom' .*point 4, entry 8, value 0\.5"):
        pvae.log_marginal(model, vae.guide, grey, num_samples=2, obs_site="top", progress=False)


def test_observing_sets_the_site_for_a_block_and_checks_its_name(pyro_style):
    from pvae.contract import observing

    vae, data = pyro_style
    x = data.test[:5]
    with observing("top"):
        terms = elbo_terms(_split(vae), vae.guide, x)
    assert terms["elbo"].shape == (5,)
    with pytest.raises(ValueError, match=r"obs_site must be the name of a sample site .* got 3"):
        elbo_terms(_split(vae), vae.guide, x, obs_site=3)
