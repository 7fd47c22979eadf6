"""The IWAE objective (Burda et al. 2016) and its doubly-reparameterized gradients (Tucker et
al. 2019), against closed forms and an independent estimator on probabilistic PCA."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import pvae
from pvae.contract import ContractError
from pvae.diagnostics import gradient_variance
from pvae.guides import LinearGaussianPosterior
from pvae.training import IWAE


@pytest.fixture
def diag_guide(ppca):
    model, _ = ppca
    pyro.set_rng_seed(3)
    return pvae.build_guide("diag-normal", model, (16,))


@pytest.fixture
def trained_guide(ppca, diag_guide):
    model, data = ppca
    pvae.fit(model, diag_guide, data, epochs=20, lr=1e-2, seed=0, progress=False)
    return diag_guide


@pytest.mark.parametrize("dreg", [False, True])
@pytest.mark.parametrize("num_particles", [2, 7])
def test_with_the_exact_posterior_every_draw_gives_log_p_x(ppca, dreg, num_particles):
    # Every weight is p(x): L_K = log p(x) for any K, with no variance (closed form).
    model, data = ppca
    x = data[:40]
    loss = IWAE(num_particles=num_particles, dreg=dreg).loss(
        model, LinearGaussianPosterior(model), x
    )
    assert loss == pytest.approx(-model.log_prob(x).sum().item(), rel=1e-12)


def test_the_loss_is_minus_the_iwae_bound_in_expectation(ppca, diag_guide):
    # The independent oracle: pvae.iwae_bound (the estimators' passes and common random
    # numbers), summed over the points; both are means of independent draws, so their
    # difference is within 4 standard errors.
    model, data = ppca
    x, draws, num_particles = data[:50], 300, 5
    objective = IWAE(num_particles=num_particles)
    losses = torch.tensor([objective.loss(model, diag_guide, x) for _ in range(draws)])
    bound, stderr = pvae.iwae_bound(model, diag_guide, x, num_samples=num_particles,
                                    num_repeats=draws, seed=0)  # fmt: skip
    difference = losses.mean() + bound.sum()
    se = math.sqrt(losses.var().item() / draws + stderr.pow(2).sum().item())
    assert abs(difference.item()) <= 4 * se
    # and it lies between −log p(x) and the ELBO's loss, as L_1 ≤ L_K ≤ log p(x)
    elbo = pvae.elbo_per_point(model, diag_guide, x, num_samples=2000, seed=0)[0].sum()
    assert -model.log_prob(x).sum() < losses.mean() < -elbo


def test_site_scales_multiply_the_loss_and_a_kl_weight_is_refused(ppca, diag_guide):
    model, data = ppca
    x = data[:10]
    pyro.set_rng_seed(5)
    plain = IWAE(num_particles=3).loss(model, diag_guide, x)
    pyro.set_rng_seed(5)
    scaled = IWAE(num_particles=3).loss(
        poutine.scale(model, scale=4.0), poutine.scale(diag_guide, scale=4.0), x
    )
    assert scaled == pytest.approx(4 * plain, rel=1e-12)
    with pytest.raises(ValueError, match="kl_weight must be 1"):
        pvae.fit(model, diag_guide, data, elbo="iwae", num_particles=3, kl_weight=0.5,
                 progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"needs num_particles = K >= 2 .* got 1"):
        pvae.fit(model, diag_guide, data, elbo="iwae-dreg", progress=False)


def projected_gradients(model, guide, x, objective, directions, draws):
    """Per draw, the guide's gradient projected on fixed random ``directions``: a scalar,
    whose mean two unbiased estimators share (their elements are correlated, so a per-element
    test would not be a chi-square)."""
    values = []
    for _ in range(draws):
        with poutine.trace(param_only=True) as params:
            surrogate = objective.differentiable_loss(model, guide, x)
        guide_params = {n: s["value"].unconstrained() for n, s in params.trace.nodes.items()
                        if "Guide" in n}  # fmt: skip
        grads = torch.autograd.grad(surrogate, list(guide_params.values()))
        values.append(
            sum((g * directions[n]).sum() for n, g in zip(guide_params, grads, strict=True))
        )
    return torch.stack(values)


def test_dreg_is_unbiased_and_has_lower_variance_for_the_guide(ppca, trained_guide):
    # Both estimate the gradient of the same L_K; DReG drops the score-function term of the
    # guide's gradient, which matters once the guide is close (trained for 20 epochs here).
    # Measured (K = 5, 20 points, 400 draws each): the guide's gradient variance per
    # parameter tensor falls by 2.8-5.3x, along random directions by 10.4x with the means
    # 1.3 se apart; the model's is the same estimator (ratio near 1).
    model, data = ppca
    x, draws = data[:20], 400
    moments = {
        elbo: gradient_variance(
            model, trained_guide, x, elbo=elbo, num_draws=draws, num_particles=5, progress=False
        )
        for elbo in ("iwae", "iwae-dreg")
    }
    plain, dreg = moments["iwae"], moments["iwae-dreg"]
    for name in plain.mean:
        ratio = plain.variance[name].sum().item() / dreg.variance[name].sum().item()
        if "Guide" in name:
            assert ratio > 2, name
        else:
            assert 0.7 < ratio < 1.4, name
    # Unbiased: along fixed random directions the two means agree within 4 se.
    generator = torch.Generator().manual_seed(0)
    directions = {name: torch.randn(value.shape, generator=generator)
                  for name, value in plain.mean.items() if "Guide" in name}  # fmt: skip
    projected = [
        projected_gradients(
            model, trained_guide, x, IWAE(num_particles=5, dreg=dreg), directions, draws
        )
        for dreg in (False, True)
    ]
    se = math.sqrt(sum(p.var().item() / draws for p in projected))
    assert abs((projected[0].mean() - projected[1].mean()).item()) <= 4 * se
    assert projected[0].var() > 2 * projected[1].var()


def test_dreg_refuses_a_guide_whose_sites_depend_on_each_other(ppca):
    _, data = ppca

    def two_site_model(x):
        with pyro.plate("data", x.shape[0]):
            a = pyro.sample("a", dist.Normal(x.new_zeros(x.shape[0]), 1.0))
            pyro.sample("b", dist.Normal(a, 1.0))
            loc = a.unsqueeze(-1) * x.new_ones(x.shape[1])
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def chained_guide(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", x.shape[0]):
            a = pyro.sample("a", dist.Normal(loc.expand(x.shape[0]), 1.0))
            pyro.sample("b", dist.Normal(a, 1.0))

    x = data[:5]
    assert math.isfinite(IWAE(num_particles=3).loss(two_site_model, chained_guide, x))
    with pytest.raises(ContractError, match=r"guide site 'b' depends on \['a'\]"):
        IWAE(num_particles=3, dreg=True).differentiable_loss(two_site_model, chained_guide, x)


def test_a_guide_without_a_reparameterized_sampler_is_refused(ppca):
    model, data = ppca

    def scored(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    class ScoredNormal(dist.Normal):
        has_rsample = False  # as a discrete or a non-reparameterizable family

    def unreparameterized(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", ScoredNormal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    assert math.isfinite(IWAE(num_particles=2).loss(model, scored, data[:4]))
    with pytest.raises(ContractError, match=r"guide site 'z' .* no reparameterized sampler"):
        IWAE(num_particles=2).loss(model, unreparameterized, data[:4])
