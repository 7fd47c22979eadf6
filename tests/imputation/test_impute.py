"""pvae.impute against the closed-form Gaussian conditional of probabilistic PCA.

The oracle: :meth:`pvae.models.LinearGaussian.conditional`, itself checked against the Schur
complement of the marginal covariance computed in NumPy. The samples are the last states of
independent chains, so their mean and covariance have the usual standard errors (the sample
standard deviation of the entries, and of the products of centred entries, over √S).
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
from pvae import ContractError
from pvae.guides import LinearGaussianPosterior
from pvae.imputation import imputation_difference, imputation_error, imputation_f1, make_mask


@pytest.fixture
def setting(ppca):
    model, data = ppca
    x = data[:4]
    mask = make_mask(x.shape, "random", fraction=0.5, seed=3)  # 3 of 6 entries missing
    loc, covariance = model.conditional(x, mask)
    return model, x, mask, loc.detach(), covariance.detach()


def poor_guide(model):
    """The exact posterior's marginals, shifted by half a standard deviation and 1.5 times
    as wide, without its correlations: a proposal MWG can correct and pseudo-Gibbs cannot."""

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            posterior = model.posterior(x)
            scale = posterior.variance.sqrt()
            return pyro.sample(
                "z", dist.Normal(posterior.loc + 0.5 * scale, 1.5 * scale).to_event(1)
            )

    return guide


def z_scores(samples, mask, loc, covariance):
    """The largest |difference| / se of the samples' mean and covariance from the oracle's,
    over the missing entries (pairs of them for the covariance)."""
    s = samples.shape[0]
    centred = samples - samples.mean(0)
    mean_se = samples.std(0) / s**0.5
    mean_z = ((samples.mean(0) - loc) / mean_se).where(~mask, 0.0)
    products = torch.einsum("sni,snj->snij", centred, centred)
    cov_z = (products.mean(0) * s / (s - 1) - covariance) / (products.std(0) / s**0.5)
    missing = (~mask).double()
    pairs = (missing.unsqueeze(-1) * missing.unsqueeze(-2)).bool()
    return float(mean_z.abs().max()), float(cov_z.where(pairs, 0.0).abs().max())


def test_the_conditional_is_the_schur_complement(setting):
    model, x, mask, loc, covariance = setting
    weight, bias = model.weight.detach().numpy(), model.bias.detach().numpy()
    marginal = weight @ weight.T + model.variance.item() * np.eye(6)
    for i in range(x.shape[0]):
        o, m = mask[i].numpy(), ~mask[i].numpy()
        gain = marginal[np.ix_(m, o)] @ np.linalg.inv(marginal[np.ix_(o, o)])
        expected_loc = bias[m] + gain @ (x[i].numpy()[o] - bias[o])
        expected_cov = marginal[np.ix_(m, m)] - gain @ marginal[np.ix_(o, m)]
        np.testing.assert_allclose(loc[i].numpy()[m], expected_loc, atol=1e-12)
        np.testing.assert_allclose(loc[i].numpy()[o], x[i].numpy()[o], atol=0)
        np.testing.assert_allclose(covariance[i].numpy()[np.ix_(m, m)], expected_cov, atol=1e-12)
        assert not covariance[i].numpy()[o].any() and not covariance[i].numpy()[:, o].any()


def test_mwg_accepts_every_proposal_of_the_exact_posterior(setting):
    model, x, mask, loc, covariance = setting
    result = pvae.impute(
        model,
        LinearGaussianPosterior(model),
        x,
        mask,
        num_steps=100,
        num_samples=2000,
        progress=False,
        seed=0,
    )
    # Every ratio p(x̃, z) / q(z | x̃) is p(x̃): equal to float rounding, never below log u < 0.
    assert torch.equal(result.acceptance, torch.ones(4))
    mean_z, cov_z = z_scores(result.samples, mask, loc, covariance)
    assert mean_z < 4 and cov_z < 4, (mean_z, cov_z)


def test_mwg_corrects_a_poor_guide_and_pseudo_gibbs_does_not(setting):
    model, x, mask, loc, covariance = setting
    guide = poor_guide(model)
    options = {"num_steps": 150, "num_samples": 2000, "progress": False, "seed": 0}
    mwg = pvae.impute(model, guide, x, mask, method="mwg", **options)
    mean_z, cov_z = z_scores(mwg.samples, mask, loc, covariance)
    assert mean_z < 4 and cov_z < 4, (mean_z, cov_z)
    assert 0.3 < float(mwg.acceptance.mean()) < 0.8  # measured 0.54: the guide is poor
    # The Rao-Blackwellized mean E[E[x | z]] agrees too, within 4 of its own se.
    gap = ((mwg.mean - loc) / mwg.mean_stderr).where(~mask, 0.0).abs().max()
    assert gap < 4, gap
    # Pseudo-Gibbs draws from another distribution: measured 28 se off in the mean and 11 in
    # the covariance with these draws; 10 and 6 leave room for other seeds.
    pseudo = pvae.impute(model, guide, x, mask, method="pseudo-gibbs", **options)
    mean_z, cov_z = z_scores(pseudo.samples, mask, loc, covariance)
    assert mean_z > 10 and cov_z > 6, (mean_z, cov_z)


def test_importance_resampling_converges_to_the_conditional_mean(setting):
    model, x, mask, loc, _ = setting
    options = {"method": "importance", "num_particles": 20000, "num_samples": 50}
    # The guide reads the start: from the conditional mean, the poor guide's wide proposal
    # covers p(z | x^o) and the weights are tame (ESS measured above 11,000 of 20,000).
    good = pvae.impute(
        model, poor_guide(model), x, mask, init=loc, progress=False, seed=0, **options
    )
    # Self-normalized IS: bias O(1/K), far below its se at K = 20,000.
    gap = ((good.mean - loc) / good.mean_stderr).where(~mask, 0.0).abs().max()
    assert gap < 4, gap
    assert good.status == ["reliable"] * 4 and bool((good.ess > 0.3 * 20000).all())
    assert good.acceptance is None and good.rhat is None
    # From zeros, point 2's proposal sits far from its posterior: ESS measured 328 of 20,000
    # and the mean 5.8 of its (then untrustworthy) se off; MWG's chains need no good start.
    zero = pvae.impute(model, poor_guide(model), x, mask, progress=False, seed=0, **options)
    assert float(zero.ess[2]) < 0.05 * 20000


@pytest.mark.parametrize("method", ["mwg", "pseudo-gibbs", "importance"])
def test_observed_entries_are_the_data_and_all_observed_returns_it_unchanged(setting, method):
    model, x, mask, _, _ = setting
    guide = poor_guide(model)
    options = {"method": method, "num_steps": 3, "num_samples": 5, "num_particles": 7}
    result = pvae.impute(model, guide, x, mask, progress=False, **options)
    assert result.samples.shape == (5, *x.shape)
    assert torch.equal(result.samples[:, mask], x[mask].expand(5, -1))
    assert bool((result.samples[:, ~mask] != 0).all())  # every missing entry was drawn
    whole = pvae.impute(model, guide, x, torch.ones_like(mask), progress=False, **options)
    assert torch.equal(whole.samples, x.expand(5, *x.shape)) and torch.equal(whole.mean, x)
    assert torch.equal(whole.mean_stderr, torch.zeros_like(x))


def test_nan_marks_the_missing_entries_by_default(setting):
    model, x, mask, _, _ = setting
    guide = LinearGaussianPosterior(model)
    with_nan = x.masked_fill(~mask, float("nan"))
    options = {"num_steps": 5, "num_samples": 3, "progress": False, "seed": 4}
    given = pvae.impute(model, guide, with_nan, mask, **options)
    derived = pvae.impute(model, guide, with_nan, **options)
    assert torch.equal(given.samples, derived.samples) and torch.equal(derived.mask, mask)


def test_a_seed_repeats_the_call_and_leaves_the_global_rng_alone(setting):
    model, x, mask, _, _ = setting
    guide = poor_guide(model)
    options = {"num_steps": 5, "num_samples": 3, "progress": False, "seed": 7}
    state = torch.get_rng_state()
    first = pvae.impute(model, guide, x, mask, **options)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first.samples, pvae.impute(model, guide, x, mask, **options).samples)


def test_chunks_of_points_give_the_same_distribution_shape_and_fields(setting):
    model, x, mask, _, _ = setting
    guide = poor_guide(model)
    options = {"num_steps": 4, "num_samples": 3, "progress": False, "seed": 1}
    whole = pvae.impute(model, guide, x, mask, **options)
    parts = pvae.impute(model, guide, x, mask, chunk_size=1, **options)
    for name in ("samples", "mean", "mean_stderr", "acceptance", "rhat"):
        assert getattr(parts, name).shape == getattr(whole, name).shape, name
    assert torch.equal(parts.samples[:, mask], whole.samples[:, mask])


def bernoulli_pair(d=6):
    model = pvae.build_model("bernoulli", d, 2, (8,))
    return model, pvae.build_guide("diag-normal", model, (8,))


def test_binary_data_have_a_mode_and_an_f1():
    model, guide = bernoulli_pair()
    x = (torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) > 0.5).double()
    mask = make_mask(x.shape, "random", fraction=0.5, seed=0)
    result = pvae.impute(model, guide, x, mask, num_steps=4, num_samples=6, progress=False)
    mode = result.mode
    assert set(mode.unique().tolist()) <= {0.0, 1.0} and torch.equal(mode[mask], x[mask])
    assert torch.equal(mode, torch.where(mask, x, (result.mean >= 0.5).double()))
    score, stderr = imputation_f1(mode, x, mask)
    assert 0 <= score <= 1 and stderr >= 0
    assert set(result.samples.unique().tolist()) <= {0.0, 1.0}


def test_a_continuous_likelihood_has_no_mode(setting):
    model, x, mask, _, _ = setting
    result = pvae.impute(
        model, poor_guide(model), x, mask, num_steps=2, num_samples=2, progress=False
    )
    with pytest.raises(ValueError, match="this likelihood is continuous: use mean"):
        _ = result.mode


def test_the_error_measures_against_hand_counts():
    truth = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    imputed = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 5.0]])
    mask = torch.tensor([[True, False, False, False], [True, False, False, True]])
    # point 0: missing entries 1, 2, 3 → squared errors 1, 1, 0; point 1: entries 1, 2 → 0, 1
    rmse, se = imputation_error(imputed, truth, mask)
    per_point = torch.tensor([(2 / 3) ** 0.5, (1 / 2) ** 0.5])
    assert rmse == pytest.approx(float(per_point.mean()))
    assert se == pytest.approx(float(per_point.std() / 2**0.5))
    binary = imputed.clamp(max=1)
    # missing entries: point 0 predicts (1, 0, 1) against (0, 1, 1), point 1 (1, 1) against
    # (1, 0): TP = 1 + 1, FP = 1 + 1, FN = 1 + 0, so F1 = 4 / (4 + 2 + 1)
    score, stderr = imputation_f1(binary, truth, mask)
    assert score == pytest.approx(4 / 7)
    left_out = np.array([2 / (2 + 1 + 0), 2 / (2 + 1 + 1)])  # without point 0, without point 1
    assert stderr == pytest.approx(np.sqrt(1 / 2 * ((left_out - left_out.mean()) ** 2).sum()))


def test_masks_of_each_pattern():
    random = make_mask((50, 64), "random", fraction=0.5, seed=2)
    assert torch.equal(random.sum(-1), torch.full((50,), 32))
    assert not torch.equal(random[0], random[1])
    top = make_mask((3, 64), "top", image_shape=(8, 8)).reshape(3, 8, 8)
    assert not top[:, :4].any() and top[:, 4:].all()
    bottom = make_mask((2, 1, 7, 5), "bottom")
    assert bottom[:, :, :3].all() and not bottom[:, :, 3:].any()  # an odd height: middle missing


class _FullCovariance(torch.nn.Module):
    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            loc = torch.cat([z, z, z], -1)
            return pyro.sample("x", dist.MultivariateNormal(loc, torch.eye(6)), obs=x)


def _reads_the_data_in_its_prior(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x[:, :2], 1.0).to_event(1))
        return pyro.sample("x", dist.Normal(torch.cat([z, z, z], -1), 1.0).to_event(1), obs=x)


def _observes_a_transform(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        return pyro.sample("x", dist.Normal(torch.cat([z, z, z], -1), 1.0).to_event(1), obs=2 * x)


def _guide(x):
    with pyro.plate("data", x.shape[0]):
        return pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            _FullCovariance(),
            "MultivariateNormal whose entries are not independent given the latents",
        ),
        (
            _reads_the_data_in_its_prior,
            "the model's site 'z' has a distribution that depends on the data",
        ),
        (_observes_a_transform, "holds a transform of the data"),
    ],
)
def test_pairs_the_samplers_would_get_wrong_are_refused(model, message):
    x = torch.randn(3, 6)
    mask = make_mask(x.shape, "random", fraction=0.5, seed=0)
    with pytest.raises(ContractError, match=message):
        pvae.impute(model, _guide, x, mask, num_steps=2, num_samples=2, progress=False)


def test_the_result_says_what_produced_it(setting):
    model, x, mask, _, _ = setting
    text = repr(
        pvae.impute(model, poor_guide(model), x, mask, num_steps=8, num_samples=4, progress=False)
    )
    assert text.startswith("Imputation by Metropolis-within-Gibbs")
    assert "4 chains of 8 steps per point" not in text  # the budget is the HTML detail
    assert "acceptance" in text and "R̂" in text
    html = pvae.impute(
        model,
        poor_guide(model),
        x,
        mask,
        method="pseudo-gibbs",
        num_steps=8,
        num_samples=4,
        progress=False,
    )._repr_html_()
    assert "only if the guide is the exact posterior" in html and "4 chains of 8 steps" in html


def test_paired_differences_against_hand_counts():
    truth = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    mask = torch.tensor([[True, False, False, False], [True, False, False, True], [False] * 4])
    first = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    second = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # RMSE per point over the missing entries: first (2/3, 1/2, 1/4)^½, second (1/3, 1/2, 3/4)^½
    gaps = torch.tensor([(2 / 3) ** 0.5 - (1 / 3) ** 0.5, 0.0, 0.25**0.5 - 0.75**0.5])
    difference, stderr = imputation_difference(first, second, truth, mask, "rmse")
    assert difference == pytest.approx(float(gaps.mean()))
    assert stderr == pytest.approx(float(gaps.std() / 3**0.5))

    # F1 counts (TP, FP, FN) per point: first (1, 1, 1), (1, 1, 0), (2, 0, 1);
    # second (1, 0, 1), (0, 0, 1), (0, 0, 3)
    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn)

    difference, stderr = imputation_difference(first, second, truth, mask, "f1")
    assert difference == pytest.approx(f1(4, 2, 2) - f1(1, 0, 5))
    left_out = np.array(
        [f1(3, 1, 1) - f1(0, 0, 4), f1(3, 1, 2) - f1(1, 0, 4), f1(2, 2, 1) - f1(1, 0, 2)]
    )
    jackknife = np.sqrt(2 / 3 * ((left_out - left_out.mean()) ** 2).sum())
    assert stderr == pytest.approx(jackknife)
    with pytest.raises(ValueError, match="measure must be one of"):
        imputation_difference(first, second, truth, mask, "mse")
