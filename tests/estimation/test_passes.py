"""Importance-sampling passes: results that do not depend on how points and samples are split
(``chunk_size``, ``max_memory``, vectorized or stacked layout), draws keyed to the seed, and
memory budgets measured and kept."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
import pvae.estimation.passes
from pvae.contract import ContractError
from pvae.estimation import parse_memory, peak_memory


@pytest.fixture
def pair():
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 10, 3, (16,))
    guide = pvae.build_guide("diag-normal", model, (16,))
    return model, guide, torch.rand(5, 10)


def weights(model, guide, x, **options):
    options = {"num_samples": 300, "progress": False, "seed": 7, **options}
    return pvae.log_marginal(model, guide, x, return_log_weights=True, **options).log_weights


# K = 300 fits in one sample block; K = 2,500 spans three (1,024 + 1,024 + 452), and chunks
# below K split a point's samples across passes, some of them not on block boundaries.
SPLITS = {
    300: [{"chunk_size": 1}, {"chunk_size": 7}, {"chunk_size": 299}, {"chunk_size": 900}],
    2500: [{"chunk_size": 100}, {"chunk_size": 1500}, {"chunk_size": 2500}, {"chunk_size": 9999}],
}


@pytest.mark.parametrize("num_samples", sorted(SPLITS))
def test_log_weights_do_not_depend_on_the_split_or_the_layout(pair, num_samples):
    model, guide, x = pair
    reference = weights(model, guide, x, num_samples=num_samples, vectorize=False)
    assert reference.shape == (5, num_samples)
    for options in [*SPLITS[num_samples], {"max_memory": "2MiB"}, {}]:
        for vectorize in (True, False):
            got = weights(model, guide, x, num_samples=num_samples, vectorize=vectorize, **options)
            # float64: only the rounding of differently shaped matrix products differs
            torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12)


def test_prior_proposal_does_not_depend_on_the_split(pair):
    model, _, x = pair
    reference = weights(model, None, x, proposal="prior", vectorize=False)
    for options in ({"chunk_size": 13}, {"chunk_size": 5000}, {}):
        got = weights(model, None, x, proposal="prior", **options)
        torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("num_samples", sorted(SPLITS))
def test_a_shard_with_its_first_point_draws_what_the_whole_draws(pair, num_samples):
    """The draws of point i are keyed to its global index: x[a:b] with first_point=a gives
    rows a..b-1 of the whole; without it, the shard's rows are other draws."""
    model, guide, x = pair
    whole = weights(model, guide, x, num_samples=num_samples)
    for start, stop in ((0, 2), (2, 5), (4, 5)):
        shard = weights(model, guide, x[start:stop], num_samples=num_samples, first_point=start)
        torch.testing.assert_close(shard, whole[start:stop], rtol=1e-12, atol=1e-12)
    unkeyed = weights(model, guide, x[2:5], num_samples=num_samples)
    assert not torch.allclose(unkeyed, whole[2:5])


def test_importance_estimates_concatenate_to_the_whole(pair):
    from pvae.estimation import ImportanceEstimate

    model, guide, x = pair
    options = {"num_samples": 100, "seed": 1, "progress": False, "return_log_weights": True}
    whole = pvae.log_marginal(model, guide, x, **options)
    parts = [
        pvae.log_marginal(model, guide, x[a:b], first_point=a, **options)
        for a, b in ((0, 3), (3, 5))
    ]
    joined = ImportanceEstimate.concatenate(parts)
    for name in ("estimate", "stderr", "ess", "khat", "elbo", "nested", "log_weights"):
        torch.testing.assert_close(getattr(joined, name), getattr(whole, name), rtol=0, atol=1e-12)
    assert joined.status == whole.status
    other = pvae.log_marginal(model, guide, x[:2], num_samples=50, progress=False)
    with pytest.raises(ValueError, match=r"parts\[1\] has K = 50 and proposal 'guide'"):
        ImportanceEstimate.concatenate([parts[0], other])
    plain = pvae.log_marginal(model, guide, x[:2], num_samples=100, progress=False)
    with pytest.raises(ValueError, match="parts\\[1\\] lacks log_weights and parts\\[0\\] has"):
        ImportanceEstimate.concatenate([parts[0], plain])


def test_the_seed_keys_the_draws(pair):
    model, guide, x = pair
    first = weights(model, guide, x, seed=3)
    assert torch.equal(first, weights(model, guide, x, seed=3))
    assert not torch.equal(first, weights(model, guide, x, seed=4))
    # the draws are keyed to the point's index in x: a prefix of x gets the same weights
    torch.testing.assert_close(
        weights(model, guide, x[:2], seed=3), first[:2], rtol=1e-12, atol=1e-12
    )
    torch.manual_seed(11)
    unseeded = weights(model, guide, x, seed=None)
    torch.manual_seed(11)
    assert torch.equal(unseeded, weights(model, guide, x, seed=None))


def test_estimators_share_the_draws(pair):
    # elbo_per_point and iwae_bound read the same (seed, point, sample) draws as log_marginal
    model, guide, x = pair
    log_w = weights(model, guide, x, num_samples=60)
    elbo, _ = pvae.elbo_per_point(model, guide, x, num_samples=60, seed=7, chunk_size=17)
    torch.testing.assert_close(elbo, log_w.mean(-1))
    bound, _ = pvae.iwae_bound(model, guide, x, num_samples=6, num_repeats=10, seed=7)
    grouped = log_w.reshape(5, 10, 6)
    expected = (torch.logsumexp(grouped, -1) - torch.log(torch.tensor(6.0))).mean(-1)
    torch.testing.assert_close(bound, expected)


class ReshapingModel(pyro.nn.PyroModule):
    """A model that flattens its codes by the number of points: it cannot broadcast over a
    leading plate of samples."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.inner.z_dist(x))
            mean = self.inner.decoder.x_dist(z.reshape(x.shape[0], -1)).mean
            return pyro.sample("x", dist.Normal(mean, 1.0).to_event(1), obs=x)


def test_a_pair_that_does_not_broadcast_gets_one_row_per_sample(pair):
    model, guide, x = pair
    reshaping = ReshapingModel(model)
    expected = weights(reshaping, guide, x, vectorize=False)
    torch.testing.assert_close(weights(reshaping, guide, x), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ContractError, match="vectorize=True, but the pair does not broadcast"):
        weights(reshaping, guide, x, vectorize=True)


class LaplaceGuide(pyro.nn.PyroModule):
    """A proposal outside the Normal family: its draws come from torch's global RNG."""

    def __init__(self, guide):
        super().__init__()
        self.inner = guide

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            normal = self.inner.z_dist(x).base_dist
            return pyro.sample("z", dist.Laplace(normal.loc, normal.scale).to_event(1))


def test_other_proposals_draw_from_the_global_rng(pair):
    model, guide, x = pair
    laplace = LaplaceGuide(guide)
    torch.manual_seed(5)
    first = weights(model, laplace, x, seed=1)
    torch.manual_seed(5)
    assert torch.equal(first, weights(model, laplace, x, seed=1))
    assert torch.isfinite(first).all()
    # the weights are still log p(x, z) − log q(z | x) for the draws made
    assert not torch.equal(first, weights(model, laplace, x, seed=1))


def decoder_rows(model, guide, x, **options):
    """The most (sample, point) rows the decoder saw in one pass."""
    rows = []
    linear = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear))
    handle = linear.register_forward_hook(lambda m, i, o: rows.append(o.shape[:-1].numel()))
    try:
        pvae.log_marginal(model, guide, x, progress=False, **options)
    finally:
        handle.remove()
    return max(rows)


@pytest.mark.parametrize("budget", ["512KiB", "2MiB", "16MiB"])
def test_the_memory_budget_is_kept(budget):
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 64, 4, (128, 128))
    guide = pvae.build_guide("diag-normal", model, (128, 128))
    x = torch.rand(40, 64)
    options = {"num_samples": 2000, "max_memory": budget, "seed": 0}
    used = peak_memory(lambda: pvae.log_marginal(model, guide, x, progress=False, **options))
    assert used <= parse_memory(budget)


def test_larger_budgets_give_larger_passes():
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 64, 4, (128,))
    guide = pvae.build_guide("diag-normal", model, (128,))
    x = torch.rand(8, 64)
    rows = [
        decoder_rows(model, guide, x, num_samples=3000, max_memory=budget)
        for budget in ("256KiB", "4MiB", "64MiB")
    ]
    assert rows[0] < rows[1] < rows[2]
    assert rows[2] % 3000 == 0  # whole points once K fits in a pass


def test_a_budget_too_small_is_refused(pair):
    model, guide, x = pair
    with pytest.raises(ValueError, match=r"max_memory=1000 is too small .* need 128,200 bytes"):
        pvae.log_marginal(model, guide, x, num_samples=2000, max_memory=1000, progress=False)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"chunk_size": 10, "max_memory": "1GiB"}, "give chunk_size .* or max_memory"),
        ({"max_memory": "lots"}, "max_memory must be an integer number of bytes .* got 'lots'"),
        ({"max_memory": 0}, "max_memory must be at least 1 byte, got 0"),
        ({"max_memory": 1.5e9}, "max_memory must be an integer number .* got 1500000000.0"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
    ],
)
def test_bad_pass_options_are_named(pair, options, message):
    model, guide, x = pair
    for estimator in (pvae.log_marginal, pvae.elbo_per_point):
        with pytest.raises(ValueError, match=message):
            estimator(model, guide, x, **options)


def test_parse_memory_units():
    assert parse_memory(123) == 123
    assert parse_memory("512MiB") == 512 * 2**20
    assert parse_memory("2GB") == 2 * 10**9
    assert parse_memory("1.5 gib") == 3 * 2**29
    assert parse_memory("64kb") == 64_000
    assert parse_memory("100") == 100
    for bad in ("", "1 parsec", "-5MiB", "0.1B", True, None, [1]):
        with pytest.raises(ValueError, match="max_memory"):
            parse_memory(bad)


def test_peak_memory_counts_live_tensors():
    weight = torch.randn(50, 100)  # allocated before: never counted

    def compute():
        a = torch.ones(1000, 100)  # 800,000 bytes (float64)
        b = a @ weight.T  # 400,000
        b.relu_()  # in place: nothing new
        view = b[:10]  # a view: nothing new
        del a  # released: 400,000 live
        c = torch.zeros(3000, 100)  # 2,400,000 → 2,800,000 live at once
        return view.sum() + c.sum()

    # a and b, then b and c (and three 8-byte sums at the end)
    assert 2_800_000 <= peak_memory(compute) <= 2_800_000 + 3 * 8


@pytest.mark.parametrize(
    "options,message",
    [
        ({"vectorize": 1}, "vectorize must be True, False or None, got 1"),
        ({"seed": -1}, r"seed must be in \[0, 4611686018427387903\], got -1"),
        ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ],
)
def test_bad_layout_and_seed_are_named(pair, options, message):
    model, guide, x = pair
    with pytest.raises(ValueError, match=message):
        pvae.log_marginal(model, guide, x, **options)


def test_the_default_budget_is_for_the_passes_not_the_results(pair, monkeypatch):
    # Results the caller asks for (here n·K log-weights) are not charged to the default
    # budget: a tiny default still runs; the same budget given explicitly covers the results
    # and is refused.
    model, guide, x = pair
    monkeypatch.setattr(pvae.estimation.passes, "DEFAULT_MAX_MEMORY", "160KiB")
    got = weights(model, guide, x, num_samples=2000)
    assert got.shape == (5, 2000)
    with pytest.raises(ValueError, match="max_memory='160KiB' is too small"):
        weights(model, guide, x, num_samples=2000, max_memory="160KiB")
