"""ELBO estimators against the closed-form ELBO of the linear-Gaussian model."""

import math

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

import pvae
from pvae.guides import DiagNormalGuide, LinearGaussianPosterior


def closed_form_elbo(model, guide, x):
    """ELBO of pPCA under a diagonal Normal guide q = N(μ, diag s²), per point:
    −d/2 log 2πσ² − (‖x − Wμ − b‖² + Σ_j s_j² ‖W_j‖²)/(2σ²) − ½ Σ_j (μ_j² + s_j² − log s_j² − 1)."""
    loc, scale = guide.encoder(x)
    weight, bias, variance = model.weight, model.bias, model.variance
    residual = (x - loc @ weight.T - bias).pow(2).sum(-1)
    spread = (scale.pow(2) * weight.pow(2).sum(0)).sum(-1)
    d = x.shape[-1]
    recon = -0.5 * d * torch.log(2 * math.pi * variance) - (residual + spread) / (2 * variance)
    kl = 0.5 * (loc.pow(2) + scale.pow(2) - scale.pow(2).log() - 1).sum(-1)
    return (recon - kl).detach(), kl.detach()


def repeated_losses(loss_class, model, guide, x, repeats=40, particles=250):
    loss = loss_class(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    values = torch.tensor([loss.loss(model, guide, x) for _ in range(repeats)])
    return values.mean(), values.std() / math.sqrt(repeats)


def test_trace_and_meanfield_elbo_agree_with_closed_form(ppca):
    model, data = ppca
    x = data[:20]
    guide = DiagNormalGuide(6, 2, hidden_sizes=(16,))
    exact = -closed_form_elbo(model, guide, x)[0].sum()
    trace_mean, trace_se = repeated_losses(Trace_ELBO, model, guide, x)
    field_mean, field_se = repeated_losses(TraceMeanField_ELBO, model, guide, x)
    assert abs(trace_mean - exact) < 4 * trace_se
    assert abs(field_mean - exact) < 4 * field_se
    assert abs(trace_mean - field_mean) < 4 * math.hypot(trace_se, field_se)


def test_elbo_per_point_and_elbo_terms_match_closed_form(ppca):
    model, data = ppca
    x = data[:25]
    guide = DiagNormalGuide(6, 2, hidden_sizes=(16,))
    exact, exact_kl = closed_form_elbo(model, guide, x)
    elbo, stderr = pvae.elbo_per_point(model, guide, x, num_samples=4000)
    assert (elbo - exact).abs().le(4 * stderr).all()
    terms = pvae.elbo_terms(model, guide, x)
    # TraceMeanField-style analytic KL: exact to round-off.
    torch.testing.assert_close(terms["kl"], exact_kl, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms["min_variance"], model.variance.detach())


def test_exact_guide_elbo_equals_log_marginal(ppca):
    # KL(q ‖ p(z|x)) = 0 makes the ELBO tight: ELBO = log p(x), with zero variance.
    model, data = ppca
    x = data[:10]
    elbo, stderr = pvae.elbo_per_point(model, LinearGaussianPosterior(model), x, num_samples=50)
    torch.testing.assert_close(elbo, model.log_prob(x).detach(), rtol=0, atol=1e-6)
    assert stderr.max() < 1e-6


def test_elbo_gap_is_the_kl_to_the_exact_posterior(ppca):
    # log p(x) − ELBO(x) = KL(q(z|x) ‖ p(z|x)): both sides in closed form (the KL by torch between
    # the diagonal guide and the exact Gaussian posterior), so they agree to round-off; the
    # Monte Carlo ELBO agrees within 4 standard errors.
    model, data = ppca
    x = data[:25]
    guide = DiagNormalGuide(6, 2, hidden_sizes=(16,))
    loc, scale = guide.encoder(x)
    q = torch.distributions.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    kl = torch.distributions.kl_divergence(q, model.posterior(x)).detach()
    exact, _ = closed_form_elbo(model, guide, x)
    gap = model.log_prob(x).detach() - exact
    torch.testing.assert_close(gap, kl, rtol=1e-10, atol=1e-10)
    assert (kl > 0).all()
    elbo, stderr = pvae.elbo_per_point(model, guide, x, num_samples=4000)
    assert ((model.log_prob(x).detach() - elbo - kl).abs() <= 4 * stderr).all()
