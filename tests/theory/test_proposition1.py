"""Dai et al.'s Proposition 1 (a bad local minimum from a soft-threshold decoder), checked
against its closed form, its exact derivatives, perturbations and SVI."""

import itertools
import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

import pvae
from pvae.theory import collapsed_log_likelihood, expected_elbo, proposition1

# log p(X) at the collapsed point for x = (1, 1), (−1, −1): n = d = 2, γ̄ = 1.
COLLAPSED = -2 * (1 + math.log(2 * math.pi))


def test_collapsed_log_likelihood_closed_form():
    assert collapsed_log_likelihood(torch.tensor([[1.0, 1.0], [-1.0, -1.0]])) == pytest.approx(
        COLLAPSED, abs=1e-12
    )
    # γ̄ = mean squared deviation per dimension: here 2.25, x̄ = (1, 2).
    data = torch.tensor([[2.5, 0.5], [-0.5, 3.5]])
    assert collapsed_log_likelihood(data) == pytest.approx(-2 * (1 + math.log(2 * math.pi * 2.25)))


@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_collapsed_point_importance_sampling_is_exact(alpha):
    """At (7) q(z|x) is the prior and the decoder ignores z, so q is the exact posterior: every
    importance weight equals p(x_i) and log p̂(X) is the closed form for any K."""
    setup = proposition1(alpha)
    assert setup.energy().item() == pytest.approx(-COLLAPSED, abs=1e-12)
    estimate = pvae.log_marginal(
        setup.model, setup.guide, setup.data, num_samples=200, progress=False
    )
    assert estimate.estimate.sum().item() == pytest.approx(COLLAPSED, abs=1e-6)
    torch.testing.assert_close(estimate.ess, torch.full((2,), 200.0))
    assert estimate.stderr.abs().max() < 1e-6


def test_closed_form_elbo_matches_pyro_trace_elbo():
    """The exact expected ELBO against Pyro's Monte Carlo Trace_ELBO on the same pair, away from
    the collapsed point (both soft-threshold branches active), within 4 standard errors."""
    setup = proposition1(0.3)
    with torch.no_grad():
        setup.guide.loc.copy_(torch.tensor([[0.8], [-0.5]]))
        setup.guide.log_scale.copy_(torch.tensor([[-0.3], [0.2]]))
        setup.model.decoder.weight.copy_(torch.tensor([[1.2], [0.7]]))
        setup.model.decoder.bias.copy_(torch.tensor([0.1, -0.2]))
        setup.model.decoder.log_variance.fill_(math.log(0.6))
        exact = expected_elbo(setup.model, setup.guide, setup.data).sum().item()
        # 200 draws of a 50-particle estimate, the particles vectorized (the same estimator:
        # measured, its spread over draws 0.43 against 0.41 in a loop over particles)
        elbo = Trace_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
        draws = torch.tensor([-elbo.loss(setup.model, setup.guide, setup.data) for _ in range(200)])
    stderr = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 4 * stderr.item()


def test_collapsed_point_is_stationary_with_flat_decoder_block_for_soft_threshold():
    """α > 0: gradient exactly zero; the Hessian is positive definite in the encoder, b and
    log γ, and exactly zero in W (π_α is flat around 0, so every derivative in W vanishes)."""
    setup = proposition1(0.5)
    gradient, hessian = setup.derivatives()
    assert gradient.abs().max() == 0
    weight = [i for i, name in enumerate(setup.names()) if name.startswith("weight")]
    rest = [i for i in range(len(gradient)) if i not in weight]
    assert hessian[weight][:, weight].abs().max() == 0
    assert hessian[weight][:, rest].abs().max() == 0
    assert torch.linalg.eigvalsh(hessian[rest][:, rest]).min() > 0.5  # measured: 1


def test_affine_decoder_makes_the_collapsed_point_a_saddle():
    """α = 0 (affine decoder): still stationary, but the Hessian has a negative eigenvalue
    along a joint (encoder mean, W) direction, since the data's covariance eigenvalue 2
    exceeds γ̄ = 1. The block of the two means and two weights is
    [[1, 0, −1, −1], [0, 1, 1, 1], [−1, 1, 2, 0], [−1, 1, 0, 2]], smallest eigenvalue
    (3 − √17)/2 ≈ −0.56."""
    setup = proposition1(0.0)
    gradient, hessian = setup.derivatives()
    assert gradient.abs().max() == 0
    assert torch.linalg.eigvalsh(hessian).min().item() == pytest.approx(
        (3 - math.sqrt(17)) / 2, abs=1e-10
    )


@pytest.mark.parametrize("scale", [1e-1, 1e-2])
def test_every_small_perturbation_raises_the_energy_for_soft_threshold(scale):
    setup = proposition1(0.5)
    centre = setup.flat()
    collapsed = setup.energy(centre)
    directions = torch.randn(200, len(centre))
    directions = scale * directions / directions.norm(dim=1, keepdim=True)
    energies = torch.stack([setup.energy(centre + v) for v in directions])
    assert (energies > collapsed).all()


def test_reconstructing_family_energy_goes_to_minus_infinity():
    """The family of Proposition1.set_reconstructing: energy ≈ n (d − κ) log δ + c, slope 2 per
    unit of log δ here, below the collapsed energy for small δ."""
    setup = proposition1(0.5)
    deltas = [1e-2, 1e-3, 1e-4, 1e-5]
    energies = []
    for delta in deltas:
        setup.set_reconstructing(delta)
        energies.append(setup.energy().item())
    assert all(b < a for a, b in itertools.pairwise(energies))
    slopes = [
        (b - a) / math.log(d2 / d1)
        for a, b, d1, d2 in zip(energies, energies[1:], deltas, deltas[1:], strict=False)
    ]
    assert slopes == pytest.approx([2.0] * 3, abs=1e-3)
    assert energies[-1] < -COLLAPSED - 20


@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_reconstructing_family_on_other_symmetric_data(alpha):
    """Two points symmetric about their mean but not Proposition 1's, (3, 1) and (−3, −1):
    δ → 0 reconstructs both exactly (the error term stays d/2 per point) and the energy again
    falls at n (d − κ) = 2 per unit of log δ."""
    data = torch.tensor([[3.0, 1.0], [-3.0, -1.0]])
    setup = proposition1(alpha, data=data)
    energies = []
    for delta in (1e-3, 1e-4):
        setup.set_reconstructing(delta)
        energies.append(setup.energy().item())
    assert (energies[1] - energies[0]) / math.log(0.1) == pytest.approx(2.0, abs=1e-3)
    decoder = setup.model.decoder
    with torch.no_grad():
        torch.testing.assert_close(decoder.loc(setup.guide.loc.detach()), data)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_svi_from_a_perturbed_collapsed_point(alpha):
    """SVI (Pyro, 8 vectorized particles, Adam) from the collapsed point moved by 0.1 in a random
    direction: with α > 0 it returns to the collapsed energy (W, flat, stays where it was put);
    with α = 0 it escapes and the energy falls far below (towards −∞: the data lie on a line)."""
    pyro.set_rng_seed(0)
    setup = proposition1(alpha)
    centre = setup.flat()
    step = torch.randn_like(centre)
    setup.load(centre + 0.1 * step / step.norm())
    start_weight = setup.model.decoder.weight.detach().clone()
    pvae.fit(
        setup.model,
        setup.guide,
        setup.data,
        epochs=1000,
        batch_size=2,
        lr=1e-2,
        num_particles=8,
        seed=1,
        monitor_size=0,
        watchdog=False,
        progress=False,
    )
    energy = setup.energy().item()
    if alpha > 0:
        assert energy == pytest.approx(-COLLAPSED, abs=1e-6)
        torch.testing.assert_close(setup.model.decoder.weight.detach(), start_weight)
    else:
        assert energy < -COLLAPSED - 5
        assert setup.model.decoder.weight.detach().abs().min() > 0.5


def test_parameter_vectors_are_checked():
    setup = proposition1(0.5)
    assert len(setup.names()) == len(setup.flat()) == 9
    with pytest.raises(ValueError, match=r"theta must be a vector of shape \(9,\)"):
        setup.load(torch.zeros(8))
    with pytest.raises(ValueError, match="alpha"):
        proposition1(-0.1)
