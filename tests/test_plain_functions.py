"""A model/guide pair written as plain functions (not from pvae.models) works with fit and
log_marginal, and its estimate matches the closed form."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

import pvae

DATA_DIM, LATENT_DIM, NOISE_SCALE = 4, 2, 0.7


def model(x):
    weight = pyro.param("weight", lambda: 0.3 * torch.randn(DATA_DIM, LATENT_DIM))
    bias = pyro.param("bias", lambda: torch.zeros(DATA_DIM))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))
        pyro.sample("x", dist.Normal(z @ weight.T + bias, NOISE_SCALE).to_event(1), obs=x)


def guide(x):
    encoder = pyro.param("encoder", lambda: torch.zeros(LATENT_DIM, DATA_DIM))
    scale = pyro.param("scale", lambda: torch.ones(LATENT_DIM), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ encoder.T, scale).to_event(1))


def exact_log_marginal(x):
    weight, bias = pyro.param("weight").detach(), pyro.param("bias").detach()
    cov = weight @ weight.T + NOISE_SCALE**2 * torch.eye(DATA_DIM)
    return dist.MultivariateNormal(bias, cov).log_prob(x)


@pytest.mark.slow
def test_plain_function_pair_trains_and_estimates():
    true_weight = torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, -1.0], [1.0, 1.0]])
    data = torch.randn(400, LATENT_DIM) @ true_weight.T + NOISE_SCALE * torch.randn(400, DATA_DIM)
    history = pvae.fit(model, guide, data, epochs=40, batch_size=50, lr=2e-2, progress=False)
    assert history[-1]["elbo"] > history[0]["elbo"] + 0.5
    x = data[:30]
    result = pvae.log_marginal(model, guide, x, num_samples=3000, progress=False)
    exact = exact_log_marginal(x)
    assert (result.estimate - exact).abs().le(4 * result.stderr).all()
    assert (result.elbo <= result.estimate + 1e-12).all()  # Jensen, per draw


def test_masked_observations_contribute_nothing():
    # poutine.mask (missing data): masked-out points' likelihood must not enter the weights, so
    # with every x masked and the prior as guide, every weight is log p(z) − log q(z) = 0.
    def masked_model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))
            with pyro.poutine.mask(mask=torch.zeros(x.shape[0], dtype=torch.bool)):
                pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0).to_event(1), obs=x)

    def prior_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))

    result = pvae.log_marginal(
        masked_model, prior_guide, torch.randn(5, DATA_DIM), num_samples=10, progress=False
    )
    torch.testing.assert_close(result.estimate, torch.zeros(5), rtol=0, atol=1e-12)


def test_a_pair_without_parameters_trains_without_error():
    def fixed_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))
            pyro.sample(
                "x", dist.Normal(z.sum(-1, keepdim=True).expand_as(x), 1.0).to_event(1), obs=x
            )

    def fixed_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))

    history = pvae.fit(
        fixed_model, fixed_guide, torch.randn(20, DATA_DIM), epochs=2, progress=False
    )
    assert len(history) == 2
