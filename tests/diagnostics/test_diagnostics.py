"""Posterior-collapse diagnostics against constructed cases with known answers."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pvae.diagnostics import diagnose


def model_ignoring_z(x):
    # The decoder ignores z: the data are N(0, I) whatever z is.
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0).to_event(1), obs=x)


def fixed_guide(loc, scale):
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample(
                "z",
                dist.Normal(x.new_tensor(loc), x.new_tensor(scale))
                .expand([x.shape[0], 2])
                .to_event(1),
            )

    return guide


def test_prior_as_posterior_gives_zero_kl_no_active_unit_and_no_information():
    # The optimum for a decoder that ignores z: q(z|x) = p(z) for every x.
    x = torch.randn(300, 3)
    result = diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x)
    torch.testing.assert_close(result.kl_per_dim, torch.zeros(2), rtol=0, atol=1e-12)
    assert result.num_active == 0
    assert abs(result.mutual_information) < 1e-9


def test_known_kl_per_dimension_for_a_fixed_guide():
    # KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − log σ² − 1): (1, 0.5) gives ½(1.25 − log 0.25 − 1).
    x = torch.randn(50, 3)
    result = diagnose(model_ignoring_z, fixed_guide([1.0, 0.0], [0.5, 1.0]), x)
    expected = torch.tensor([0.5 * (1 + 0.25 - math.log(0.25) - 1), 0.0])
    torch.testing.assert_close(result.kl_per_dim, expected, rtol=1e-12, atol=1e-12)
    assert result.num_active == 0  # the same q for every x: nothing about x gets through
    assert abs(result.mutual_information) < 1e-9


def test_activity_is_the_variance_of_the_posterior_means_and_information_tends_to_log_n():
    # q(z|x) = N((x₀, x₁ / 20), 1e-4): the activity is the variance of those columns over the
    # data, so dimension 0 (variance ≈ 1) is active and dimension 1 (≈ 1/400 = 0.0025) not.
    # Tight, well-separated posteriors identify each point: I(x; z) → log n (its maximum for n
    # points), here within 1e-3 nats.
    x = torch.randn(400, 3)

    def encoder(x):
        with pyro.plate("data", x.shape[0]):
            loc = torch.stack([x[:, 0], x[:, 1] / 20], -1)
            pyro.sample("z", dist.Normal(loc, 1e-4).to_event(1))

    result = diagnose(model_ignoring_z, encoder, x, chunk_size=128)
    expected = torch.stack([x[:, 0], x[:, 1] / 20], -1).var(0, correction=0)
    torch.testing.assert_close(result.activity, expected)
    assert result.active.tolist() == [True, False]
    assert result.mutual_information == pytest.approx(math.log(400), abs=1e-3)
    assert result.scales.shape == (400, 2)


def test_diagnose_rejects_what_it_cannot_read():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="site must be a latent site of the pair, got 'w'"):
        diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x, site="w")
    with pytest.raises(ValueError, match="threshold must be > 0, got 0"):
        diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x, threshold=0)


# --- the collapse report, on constructed cases whose category is known -----------------------

EIGENVALUES = [4.0, 2.0, 0.008, 0.008, 0.008, 0.008]


def test_report_names_fixed_gamma_collapse_for_ppca_with_gamma_above_eigenvalues():
    """Category (ii): pPCA with γ = 1.5 fixed keeps only the eigenvalues 4 and 2 (Prop. 2)."""
    from pvae.data import data_with_spectrum
    from pvae.guides import exact_posterior_guide
    from pvae.models import LinearGaussian

    x = data_with_spectrum([4.0, 2.0, 1.0, 0.5, 0.25, 0.1], 200)
    model = LinearGaussian.maximum_likelihood(x, 4, variance=1.5)
    report = diagnose(model, exact_posterior_guide(model, x), x).report()
    assert report.num_active == 2
    assert report.indicated == ["ii"]
    assert "only 2 eigenvalue(s)" in report.reasons["ii"]
    assert "keep 2 of 4" in report.reasons["ii"]


def test_report_names_benign_collapse_when_learned_gamma_leaves_unneeded_dimensions_off():
    """Category (i): data with two strong directions and isotropic noise 0.008; a learned
    γ = 0.01 above the noise eigenvalues keeps exactly the two strong directions."""
    from pvae.data import data_with_spectrum
    from pvae.guides import exact_posterior_guide
    from pvae.models import LinearGaussian

    x = data_with_spectrum(EIGENVALUES, 200)
    solution = LinearGaussian.maximum_likelihood(x, 4, variance=0.01)
    model = LinearGaussian(6, 4, variance=0.01, learn_variance=True)
    model.load_state_dict({**model.state_dict(), "weight": solution.weight, "bias": solution.bias})
    report = diagnose(model, exact_posterior_guide(model, x), x).report()
    assert report.num_active == 2
    assert report.indicated == ["i"]


def test_report_names_degenerate_variance_for_an_unfloored_variance_network():
    """Category (iii): a per-pixel variance network whose variance on pixel 0 is e^-20 ≈ 2e-9
    (the others 1), with no floor; the same decoder with a floor is not flagged, and a shared
    γ that small everywhere is only "possible" (it cannot single out points)."""
    from pvae.guides import DiagNormalGuide
    from pvae.registry import build_model

    x = torch.rand(50, 6)
    for name, expected in (("normal-network", "indicated"), ("normal-floor", "not indicated")):
        model = build_model(name, 6, 2, (8,))
        with torch.no_grad():
            model.decoder.net[-1].bias[6:] = 0.0
            model.decoder.net[-1].bias[6] = -20.0
            model.decoder.net[-1].weight[6:] = 0.0
        report = diagnose(model, DiagNormalGuide(6, 2, (8,)), x).report()
        assert report.verdicts["iii"] == expected, str(report)
    model = build_model("normal-shared", 6, 2, (8,), init_variance=1e-9)
    report = diagnose(model, DiagNormalGuide(6, 2, (8,)), x).report()
    assert report.verdicts["iii"] == "possible", str(report)
    assert "unbounded once the decoder reproduces every training point" in report.reasons["iii"]


def test_a_users_model_that_states_nothing_is_never_read_as_bounded():
    """The same unfloored variance network behind a plain function, which states neither a
    bound nor whether its variance is learned: the trace shows a learned variance that depends
    on z, (iii) is indicated (the variance singles out a pixel and no bound is known), never
    "bounded"; and a user's fixed γ = 1 is read from the trace as fixed, with its bound."""
    from pvae.guides import DiagNormalGuide
    from pvae.registry import build_model

    x = torch.rand(50, 6)
    model = build_model("normal-network", 6, 2, (8,))
    with torch.no_grad():
        model.decoder.net[-1].bias[6:] = 0.0
        model.decoder.net[-1].bias[6] = -20.0
        model.decoder.net[-1].weight[6:] = 0.0

    def users_model(x):
        return model(x)

    found = diagnose(users_model, DiagNormalGuide(6, 2, (8,)), x)
    assert found.variance_learned is True and found.variance_depends_on_z is True  # the trace
    report = found.report()
    assert report.verdicts["iii"] == "indicated", str(report)
    assert "no known bound" in report.reasons["iii"]
    fixed = build_model("normal-fixed", 6, 2, (8,))

    def users_fixed(x):
        return fixed(x)

    # a fixed γ = 1 is read from the trace: (ii) is judged, and the bound is γ's
    found = diagnose(users_fixed, DiagNormalGuide(6, 2, (8,)), x)
    assert found.variance_learned is False and found.variance_depends_on_z is False
    assert found.log_density_bound == pytest.approx(fixed.log_density_bound())
    report = found.report()
    assert report.verdicts["ii"] != "unknown", str(report)
    assert "γ = 1 is fixed" in report.reasons["ii"]
    assert "; the likelihood is bounded" in report.reasons["iii"]


def test_report_names_a_bad_local_minimum_at_proposition_1s_collapsed_point():
    """Category (v): the collapsed point of Proposition 1, γ = γ̄ learned, no active unit
    although the data covariance has an eigenvalue (2) above γ; (iv) stays only possible."""
    from pvae.theory import proposition1

    setup = proposition1(0.5)
    report = diagnose(setup.model, setup.guide, setup.data).report()
    assert report.num_active == 0
    assert report.indicated == ["v"]
    assert "Proposition 1's collapsed point" in report.reasons["v"]
    assert report.verdicts["iv"] == "possible"
    assert "(v) a bad local minimum" in str(report)


def test_report_uses_a_reference_reconstruction_error():
    x = torch.randn(300, 3)
    found = diagnose(model_ignoring_z, fixed_guide([0.0, 0.0], [1.0, 1.0]), x)
    # The decoder's mean is 0, so the reconstruction error is E‖x‖², about 3.
    assert found.reconstruction_error == pytest.approx(float(x.pow(2).sum(-1).mean()))
    assert found.decoder_variance == 1.0
    assert "v" not in found.report().indicated
    assert "v" in found.report(reference_error=0.1 * found.reconstruction_error).indicated
    with pytest.raises(ValueError, match="reference_error"):
        found.report(reference_error=-1.0)


def test_report_calls_fewer_dimensions_than_linear_benign_when_they_reconstruct_better():
    """Data on a half circle: two covariance eigenvalues (0.5 and 0.5 − 4/π² ≈ 0.095) above
    γ = 0.01, so the linear VAE would keep 2 dimensions; a decoder that follows the circle
    reconstructs exactly from one (error 0 < PCA's 0.095 with one component): category (i),
    not (v)."""
    angle = torch.linspace(0, math.pi, 400)
    x = torch.stack([angle.cos(), angle.sin()], -1)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(1))
            t = z[..., 0] + math.pi / 2
            loc = torch.stack([t.cos(), t.sin()], -1)
            pyro.sample("x", dist.Normal(loc, 0.1).to_event(1), obs=x)

    model.variance_learned = True

    def guide(x):
        t = torch.atan2(x[:, 1], x[:, 0]) - math.pi / 2
        loc = torch.stack([t, torch.zeros_like(t)], -1)
        scale = torch.tensor([0.01, 1.0]).expand_as(loc)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    found = diagnose(model, guide, x)
    assert found.num_active == 1
    assert found.reconstruction_error < 1e-20
    report = found.report()
    assert report.indicated == ["i"], str(report)
    assert "below PCA's with 1 component(s)" in report.reasons["i"]


def test_a_huge_integer_threshold_is_a_number_not_an_overflow():
    # 2**64 is a valid threshold (no unit is that active); it used to overflow torch's compare
    from pvae.registry import build_guide, build_model

    model = build_model("normal-fixed", 4, 2, (8,))
    found = diagnose(
        model, build_guide("diag-normal", model, (8,)), torch.rand(10, 4), threshold=2**64
    )
    assert found.num_active == 0
