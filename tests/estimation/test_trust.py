"""The trust status of an importance-sampled estimate, on constructed cases."""

import math

import pytest
import torch

import pvae
from pvae.data import linear_gaussian_data
from pvae.estimation.trust import TRUST_RULE, TrustRule
from pvae.guides import exact_posterior_guide
from pvae.models import LinearGaussian


def _ppca():
    data, _ = linear_gaussian_data(20, 6, 2, noise_variance=0.05, seed=2)
    return data, LinearGaussian.maximum_likelihood(data, 2)


def test_the_exact_posterior_is_reliable_at_any_k():
    # Equal weights: ESS = K, the nested estimates agree to rounding, k̂ is not read.
    data, model = _ppca()
    guide = exact_posterior_guide(model, data)
    for k in (4, 1000):
        result = pvae.log_marginal(model, guide, data, num_samples=k, seed=0, progress=False)
        assert result.status == ["reliable"] * 20, k
        evidence = result.evidence()[0]
        assert evidence["relative_ess"] == pytest.approx(1.0) and evidence["nested_gap"] == 0.0


def test_the_prior_as_proposal_for_a_sharp_posterior_is_not_reliable():
    # The prior is far wider than a posterior with noise variance 0.05: a few draws carry the
    # estimate, and with K = 1,000 k̂ and the ESS say so.
    data, model = _ppca()
    result = pvae.log_marginal(
        model, None, data, num_samples=1000, proposal="prior", seed=0, progress=False
    )
    statuses = result.status
    assert statuses.count("reliable") <= 2, statuses
    errors = (result.estimate - model.log_prob(data).detach()).abs()
    # Where it errs by more than 3 se, it is never called reliable.
    for status, error, se in zip(statuses, errors, result.stderr, strict=True):
        if error > 3 * se + 1e-3:
            assert status != "reliable"


def test_few_samples_are_never_reliable_unless_the_weights_are_equal():
    data, model = _ppca()
    guide = exact_posterior_guide(model, data)
    with torch.no_grad():
        guide.log_scale.add_(math.log(0.5))  # too narrow
    result = pvae.log_marginal(model, guide, data, num_samples=100, seed=0, progress=False)
    assert "reliable" not in result.status  # K = 100 < min_samples = 300, ESS well below K


def test_the_rule_checks_its_thresholds():
    with pytest.raises(ValueError, match="min_relative_ess must be in"):
        TrustRule(max_khat=0.5, min_relative_ess=2.0, max_nested_gap=1.0)
    with pytest.raises(ValueError, match="max_nested_gap must be > 0"):
        TrustRule(max_khat=0.5, min_relative_ess=0.1, max_nested_gap=0.0)
    assert TRUST_RULE.min_samples == 300
