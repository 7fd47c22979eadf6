"""AIS and BDMC against exact answers: the pPCA closed form and quadrature."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
from pvae.data import linear_gaussian_data, load_digits
from pvae.estimation import ais, bdmc, log_marginal_quadrature
from pvae.estimation.ais import sigmoid_schedule, simulate
from pvae.guides import exact_posterior_guide
from pvae.models import LinearGaussian


def _ppca(num_points=8, noise_variance=0.3):
    # A maximum-likelihood pPCA has orthogonal columns: its exact posterior is a diagonal guide.
    data, _ = linear_gaussian_data(num_points, 6, 2, noise_variance=noise_variance, seed=1)
    return data, LinearGaussian.maximum_likelihood(data, 2)


def test_the_schedule_runs_from_0_to_1_increasing():
    beta = sigmoid_schedule(10)
    assert beta[0] == 0 and beta[-1] == 1 and bool((beta.diff() > 0).all())
    # Denser near the ends: the first step is smaller than the middle one.
    assert beta[1] - beta[0] < beta[6] - beta[5]


@pytest.mark.parametrize("num_steps", [1, 3, 20])
def test_from_the_exact_posterior_ais_is_exact_for_any_t(num_steps):
    # Every increment is Δβ · log p(x): the weights sum to log p(x) along every chain.
    data, model = _ppca()
    guide = exact_posterior_guide(model, data)
    result = ais(model, guide, data, num_steps=num_steps, num_chains=3, seed=0, progress=False)
    torch.testing.assert_close(result.estimate, model.log_prob(data).detach(), rtol=0, atol=1e-10)
    assert result.log_weights.shape == (8, 3) and result.step_size.shape == (8, num_steps)


def test_ais_from_the_prior_is_unbiased_in_the_weights():
    # E[w] = p(x) for any T: with 4,000 chains the log-mean weight is within 4 standard errors
    # of the exact value at every point, even for T = 2.
    data, model = _ppca()
    x = data[:3]
    exact = model.log_prob(x).detach()
    for num_steps in (2, 20):
        result = ais(
            model, None, x, num_steps=num_steps, num_chains=4000, proposal="prior", seed=1,
            progress=False,
        )  # fmt: skip
        assert bool(((result.estimate - exact).abs() <= 4 * result.stderr).all()), num_steps


@pytest.mark.slow
def test_the_error_shrinks_as_t_grows():
    # From the prior with 16 chains: the mean absolute error at T = 200 is under half that at
    # T = 10 and under 0.3 nats (measured 0.15 against 0.44).
    data, model = _ppca()
    exact = model.log_prob(data).detach()
    errors = {}
    for num_steps in (10, 200):
        result = ais(
            model, None, data, num_steps=num_steps, num_chains=16, proposal="prior", seed=2,
            progress=False,
        )  # fmt: skip
        errors[num_steps] = (result.estimate - exact).abs().mean().item()
    assert errors[200] < errors[10] / 2 and errors[200] < 0.3, errors


@pytest.mark.slow
def test_a_nonlinear_decoder_with_a_2d_latent_matches_quadrature():
    # An MLP decoder and a 2-dimensional latent, exact log p(x) by quadrature (its own error
    # below 1e-4): AIS from the prior within 4 of its standard errors plus 0.05 nats.
    pyro.set_rng_seed(3)
    x = load_digits(dequantize=True).train[:4]
    model = pvae.build_model("normal-shared", 64, 2, (16,), init_variance=0.1)
    exact = log_marginal_quadrature(model, x)
    assert float(exact.error.max()) < 1e-4
    result = ais(
        model, None, x, num_steps=200, num_chains=16, proposal="prior", seed=0, progress=False
    )
    assert bool(((result.estimate - exact.estimate).abs() <= 4 * result.stderr + 0.05).all())


def test_a_trained_guide_starts_closer_than_the_prior():
    # The guide as initial distribution: the same T gives a smaller error than from the prior.
    data, model = _ppca(num_points=40)
    guide = pvae.build_guide("diag-normal", model, (16,))
    pvae.fit(model, guide, data, epochs=150, batch_size=40, lr=1e-2, seed=0, progress=False,
             watchdog=False)  # fmt: skip
    x, exact = data[:8], model.log_prob(data[:8]).detach()
    kwargs = {"num_steps": 20, "num_chains": 8, "seed": 0, "progress": False}
    from_guide = ais(model, guide, x, **kwargs)
    from_prior = ais(model, None, x, proposal="prior", **kwargs)
    assert (from_guide.estimate - exact).abs().mean() < (from_prior.estimate - exact).abs().mean()
    assert bool((from_guide.acceptance > 0.2).all())


@pytest.mark.slow
def test_bdmc_brackets_the_exact_value_and_narrows_with_t():
    # Stochastic bounds: each within 3 of its standard errors of the right side of the exact
    # value at every point, and the mean width smaller at T = 200 than at T = 20.
    data, model = _ppca()
    widths = {}
    for num_steps in (20, 200):
        result = bdmc(
            model, None, data, num_points=8, num_steps=num_steps, num_chains=8,
            proposal="prior", seed=0, progress=False,
        )  # fmt: skip
        exact = model.log_prob(result.data).detach()
        assert bool((result.lower <= exact + 3 * result.lower_stderr).all()), num_steps
        assert bool((exact <= result.upper + 3 * result.upper_stderr).all()), num_steps
        widths[num_steps] = result.width.mean().item()
    assert widths[200] < widths[20], widths


def test_bdmc_from_the_exact_posterior_closes_the_sandwich():
    # With q the exact posterior of the simulated points, both directions are exact.
    data, model = _ppca()
    with torch.random.fork_rng():
        torch.manual_seed(0)  # bdmc's seed: the same draws as bdmc's own
        simulated, _ = simulate(model, data, 5)
    guide = exact_posterior_guide(model, simulated)
    result = bdmc(model, guide, simulated, num_points=5, num_steps=4, num_chains=2, seed=0,
                  progress=False)  # fmt: skip
    exact = model.log_prob(result.data).detach()
    torch.testing.assert_close(result.lower, exact, rtol=0, atol=1e-8)
    torch.testing.assert_close(result.upper, exact, rtol=0, atol=1e-8)


def test_the_global_rng_is_left_as_it_was_and_a_seed_repeats():
    data, model = _ppca()
    torch.manual_seed(5)
    before = torch.rand(())
    torch.manual_seed(5)
    first = ais(model, None, data, num_steps=5, num_chains=2, proposal="prior", seed=9,
                progress=False)  # fmt: skip
    assert torch.rand(()) == before
    again = ais(model, None, data, num_steps=5, num_chains=2, proposal="prior", seed=9,
                progress=False)  # fmt: skip
    torch.testing.assert_close(first.log_weights, again.log_weights, rtol=0, atol=0)


def test_summary_gives_both_standard_errors():
    data, model = _ppca()
    result = ais(model, None, data, num_steps=5, num_chains=4, proposal="prior", seed=0,
                 progress=False)  # fmt: skip
    summary = result.summary()
    assert summary["log_marginal"] == pytest.approx(result.estimate.mean().item())
    assert summary["stderr_points"] == pytest.approx(result.estimate.std().item() / math.sqrt(8))
    assert summary["stderr_mc"] == pytest.approx((result.stderr.pow(2).sum().sqrt() / 8).item())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_steps": 0}, "num_steps"),
        ({"num_chains": 1.5}, "num_chains"),
        ({"step_size": -0.1}, "step_size"),
        ({"target_acceptance": 1.0}, r"target_acceptance must be in \(0, 1\), got 1.0"),
        ({"proposal": "both"}, "proposal"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    data, model = _ppca()
    with pytest.raises((ValueError, TypeError), match=message):
        ais(model, None, data, **{"proposal": "prior", **arguments}, progress=False)


def test_a_guide_is_needed_for_the_guide_proposal_and_latents_must_be_real():
    data, model = _ppca()
    with pytest.raises(ValueError, match="proposal='guide' needs a guide"):
        ais(model, None, data, progress=False)

    def positive_model(x):
        with pyro.plate("data", x.shape[0]):
            scale = pyro.sample("s", dist.LogNormal(0.0, 1.0))
            pyro.sample("x", dist.Normal(0.0, scale.unsqueeze(-1)).to_event(1), obs=x)

    with pytest.raises(ValueError, match=r"real-valued continuous latent sites.*'s'"):
        ais(positive_model, None, data, proposal="prior", progress=False)


@pytest.mark.slow
def test_ais_agrees_with_is_where_is_is_marked_reliable():
    # A guide twice as wide as the exact posterior: with K = 1,000 IS calls most points
    # reliable; on those, AIS from the same guide agrees within 4 standard errors of the
    # difference (both se) plus 0.01 nats.
    data, model = _ppca(num_points=20)
    guide = exact_posterior_guide(model, data)
    with torch.no_grad():
        guide.log_scale.add_(math.log(2.0))
    sampled = pvae.log_marginal(model, guide, data, num_samples=1000, seed=0, progress=False)
    reliable = torch.tensor([status == "reliable" for status in sampled.status])
    assert int(reliable.sum()) >= 10
    annealed = ais(model, guide, data, num_steps=50, num_chains=16, seed=0, progress=False)
    gap = (annealed.estimate - sampled.estimate).abs()[reliable]
    allowed = 4 * (annealed.stderr.pow(2) + sampled.stderr.pow(2)).sqrt()[reliable] + 0.01
    assert bool((gap <= allowed).all()), (gap, allowed)


class TruncatedDecoder(pyro.nn.PyroModule):
    """z ~ N(0, 1), x ~ N(z, 1) where |z| < 3 and a decoder scale of exactly 0 beyond, where
    Normal's parameters are invalid (a variance network's output underflowing to 0 far from
    the data). Exactly p(x) = N(x; 0, 2) · P(|z| < 3 | x), with z | x ~ N(x/2, 1/2)."""

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0).to_event(1))
            scale = torch.where(z.abs() < 3, 1.0, 0.0)
            return pyro.sample("x", dist.Normal(z, scale).to_event(1), obs=x)

    @staticmethod
    def log_prob(x):
        inside = dist.Normal(x / 2, math.sqrt(0.5))
        mass = inside.cdf(torch.tensor(3.0)) - inside.cdf(torch.tensor(-3.0))
        return (dist.Normal(0.0, math.sqrt(2.0)).log_prob(x) + mass.log()).squeeze(-1)


class NarrowGuide(pyro.nn.PyroModule):
    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(x / 2, 0.2).to_event(1))


def test_a_leapfrog_step_into_invalid_parameters_is_rejected_not_raised():
    # Steps of 1.5 from a guide near the posterior carry many trajectories past |z| = 3, where
    # the decoder's scale is 0; those proposals are rejected and AIS stays exact to within
    # 4 standard errors plus 0.02 nats (x = 4 has a fifth of its posterior past the cut).
    x = torch.tensor([[0.5], [2.0], [4.0]])
    exact = TruncatedDecoder.log_prob(x)
    result = ais(
        TruncatedDecoder(), NarrowGuide(), x, num_steps=100, num_chains=64, step_size=1.5,
        seed=0, progress=False,
    )  # fmt: skip
    assert bool(torch.isfinite(result.estimate).all())
    assert float(result.acceptance.min()) < 0.9  # some proposals were rejected
    assert bool(((result.estimate - exact).abs() <= 4 * result.stderr + 0.02).all()), (
        result.estimate, exact, result.stderr,
    )  # fmt: skip


def test_the_passes_fit_in_max_memory():
    # A budget that the probe says holds 3 points' chains: the run takes several passes and
    # its measured peak stays within the budget; the same seed with the default budget (one
    # pass) gives the same chains, so the same estimates.
    from pvae.estimation.ais import _points_per_pass
    from pvae.estimation.memory import peak_memory

    pyro.set_rng_seed(0)
    data = load_digits(dequantize=True).train[:12]
    model = pvae.build_model("normal-shared", 64, 2, (64,))
    guide = pvae.build_guide("diag-normal", model, (64,))
    one_point = _points_per_pass(model, guide, data, ["z"], 4, 5, 10**9, False)
    assert one_point > 1000
    budget = 3 * (10**9 // one_point) + 12 * (5 + 4) * 8  # 3 points' chains and the results
    assert _points_per_pass(model, guide, data, ["z"], 4, 5, budget, False) == 3
    kwargs = {"num_steps": 5, "num_chains": 4, "seed": 0, "progress": False}
    peak = peak_memory(lambda: ais(model, guide, data, max_memory=budget, **kwargs))
    assert budget / 2 < peak <= budget, (peak, budget)  # measured: 56,352 of 59,952 bytes
    with pytest.raises(ValueError, match="max_memory=100 is too small for AIS"):
        ais(model, guide, data, max_memory=100, **kwargs)
    with pytest.raises(ValueError, match=r"give chunk_size .* or max_memory .*, not both"):
        ais(model, guide, data, max_memory="1GiB", chunk_size=4, **kwargs)
    with pytest.raises(ValueError, match="max_memory must be an integer number of bytes"):
        ais(model, guide, data, max_memory="lots", **kwargs)
