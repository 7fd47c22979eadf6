"""The non-amortized per-point guide: it recognises its points, refuses others, and fits the
exact posterior where that posterior is a diagonal Normal."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
from pvae.guides import PerPointNormalGuide
from pvae.models import LinearGaussian
from pvae.training import JointOptim


def test_rows_are_matched_to_their_points_in_any_order_and_multiplicity():
    data = torch.randn(5, 3)
    guide = PerPointNormalGuide(data, 2)
    with torch.no_grad():
        guide.loc.copy_(torch.arange(10.0).reshape(5, 2))
    batch = data[[3, 0, 3, 4]]
    torch.testing.assert_close(guide.index(batch), torch.tensor([3, 0, 3, 4]))
    torch.testing.assert_close(guide.z_dist(batch).mean, guide.loc.detach()[[3, 0, 3, 4]])


def test_unknown_rows_are_refused_by_index():
    data = torch.randn(5, 3)
    guide = PerPointNormalGuide(data, 2)
    batch = torch.cat([data[:2], data[2:3] + 1e-9])
    with pytest.raises(ValueError, match=r"x\[2\] is not one of the 5 points"):
        guide(batch)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\), got \(2, 4\)"):
        guide(torch.randn(2, 4))


def test_negative_zero_matches_zero_and_dtypes_must_agree():
    data = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    guide = PerPointNormalGuide(data, 1)
    torch.testing.assert_close(guide.index(torch.tensor([[-0.0, 1.0]])), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"x has dtype torch\.float32"):
        guide.index(data.float())


def test_index_follows_load_state_dict():
    first, second = torch.randn(4, 3), torch.randn(4, 3)
    guide = PerPointNormalGuide(first, 1)
    guide.index(first)
    guide.load_state_dict({**guide.state_dict(), "data": second})
    torch.testing.assert_close(guide.index(second[[2, 1]]), torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="is not one of"):
        guide.index(first[:1])


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="latent_dim"):
        PerPointNormalGuide(torch.randn(3, 2), 0)
    with pytest.raises(ValueError, match="init_scale"):
        PerPointNormalGuide(torch.randn(3, 2), 1, init_scale=-1.0)
    with pytest.raises(ValueError, match="data"):
        PerPointNormalGuide(torch.tensor([[float("nan"), 0.0]]), 1)


@pytest.mark.slow
def test_fits_the_exact_posterior_of_a_probabilistic_pca_model():
    """For the maximum-likelihood pPCA fit W has orthogonal columns, so the exact posterior
    N(M⁻¹Wᵀ(x − b), σ² M⁻¹) is diagonal and the per-point guide can equal it; SVI on the guide
    alone (model parameters held constant) must recover means and scales. Tolerance 0.05: Adam
    (lr 0.01 decaying by 0.999 a step, 16 particles) leaves a spread measured at ≤ 0.02."""
    data = pvae.data.linear_gaussian_data(40, 5, 2, noise_variance=0.3, seed=1)[0]
    ppca = LinearGaussian.maximum_likelihood(data, 2)

    def model(x):  # the pPCA model with its parameters as constants: only the guide learns
        with torch.no_grad():
            weight, bias, scale = ppca.weight, ppca.bias, ppca.variance.sqrt()
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(1))
            pyro.sample("x", dist.Normal(z @ weight.T + bias, scale).to_event(1), obs=x)

    guide = PerPointNormalGuide(data, 2)
    pvae.fit(
        model,
        guide,
        data,
        epochs=1500,
        batch_size=40,
        optimizer=JointOptim(torch.optim.Adam, {"lr": 1e-2}, lr_decay=0.999),
        num_particles=16,
        seed=0,
        monitor_size=0,
        watchdog=False,
        progress=False,
    )
    posterior = ppca.posterior(data)
    covariance = posterior.covariance_matrix[0]
    assert (covariance - torch.diag(covariance.diagonal())).abs().max() < 1e-10
    torch.testing.assert_close(guide.loc.detach(), posterior.mean, atol=0.05, rtol=0)
    torch.testing.assert_close(
        guide.log_scale.detach().exp(),
        covariance.diagonal().sqrt().expand(40, 2),
        atol=0.05,
        rtol=0,
    )
