"""Properties over shapes and values (hypothesis): the checks accept every good input and
name the first bad entry of every bad one; the data scalings stay in range for every number of
grey levels; memory sizes parse exactly; importance sampling obeys its inequalities.

Each property runs a few dozen small examples (no example database, no deadline: the first
call of a Pyro program is slow); the module takes a few seconds on one core.
"""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pvae
from pvae.data import from_levels
from pvae.estimation import parse_memory
from pvae.validation import (
    SEED_LIMIT,
    check_binary,
    check_data,
    check_model_data,
    check_positive_int,
    check_seed,
    check_unit_interval,
)


def examples(count: int):
    """A few examples per property, no deadline (first calls of Pyro programs are slow), no
    example database in the repository; the autouse policy fixture of conftest.py (float64, a
    seed) applies once per test, which is what these properties need."""
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


DTYPES = {"float32": torch.float32, "float64": torch.float64}


@st.composite
def finite_matrices(draw, max_side: int = 8):
    """A finite 2-D float32 or float64 tensor with 1..max_side rows and columns."""
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.tuples(st.integers(1, max_side), st.integers(1, max_side)))
    width = 32 if dtype == "float32" else 64
    elements = st.floats(allow_nan=False, allow_infinity=False, width=width)
    return torch.from_numpy(draw(hnp.arrays(np.dtype(dtype), shape, elements=elements)))


@st.composite
def with_bad_entries(draw, values=(math.nan, math.inf, -math.inf)):
    """A finite matrix and a copy with 1..3 entries replaced by ``values``; also the
    row-major first replaced index and the number replaced."""
    x = draw(finite_matrices())
    rows, columns = x.shape
    positions = draw(
        st.lists(
            st.tuples(st.integers(0, rows - 1), st.integers(0, columns - 1)),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    bad = x.clone()
    for position in positions:
        bad[position] = draw(st.sampled_from(values))
    return x, bad, min(positions), len(positions)


# pvae.validation.check_data


@examples(60)
@given(finite_matrices())
def test_check_data_accepts_every_finite_matrix_within_its_dtype_as_it_is(x):
    """Accepted as it is where a point's squared norm cannot overflow (every entry at most
    √(max / d), the oracle from NumPy's finfo); else refused naming the first entry past it."""
    limit = math.sqrt(float(np.finfo(str(x.dtype).removeprefix("torch.")).max) / x.shape[1])
    above = (x.abs() > limit).nonzero()
    if len(above) == 0:
        assert check_data(x, "x") is x  # the tensor itself: nothing is converted
        assert check_data(x, "x", dim=x.shape[1]) is x
        return
    row, column = (int(i) for i in above[0])
    with pytest.raises(ValueError) as raised:
        check_data(x, "x")
    assert str(raised.value).startswith(
        f"x[{row}, {column}] = {x[row, column].item():g} is too large for {x.dtype}"
    )


@examples(60)
@given(with_bad_entries())
def test_check_data_names_the_first_non_finite_entry(case):
    _, bad, (row, column), count = case
    with pytest.raises(ValueError) as raised:
        check_data(bad, "data")
    value = bad[row, column].item()
    assert str(raised.value) == (
        f"data contains a non-finite value {value} at index [{row}, {column}] "
        f"({count} non-finite entries in all)"
    )


@examples(40)
@given(finite_matrices(), st.integers(1, 9))
def test_check_data_names_a_wrong_width(x, dim):
    assume(dim != x.shape[1])
    with pytest.raises(ValueError, match=rf"x must have {dim} entries per point \(data_dim\)"):
        check_data(x, "x", dim=dim)


@examples(40)
@given(st.lists(st.integers(1, 5), min_size=0, max_size=1))
def test_check_data_refuses_a_rank_below_two(shape):
    with pytest.raises(ValueError, match=r"x must have shape \(num_points, \*event_shape\)"):
        check_data(torch.zeros(shape), "x")


@examples(40)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=5))
def test_check_data_takes_points_of_any_shape(shape):
    # (n, d) vectors and (n, c, h, w) images alike; dim is the event size.
    x = torch.zeros(shape)
    assert check_data(x, "x", dim=x[0].numel(), event_shape=tuple(shape[1:])) is x


# pvae.validation.check_binary / check_unit_interval (the Bernoulli likelihoods' data checks)


@examples(40)
@given(st.data())
def test_check_binary_names_the_first_entry_that_is_not_0_or_1(data):
    shape = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)))
    x = torch.from_numpy(
        data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
    )
    assert check_binary(x) is x
    row, column = data.draw(st.tuples(st.integers(0, shape[0] - 1), st.integers(0, shape[1] - 1)))
    value = data.draw(
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v not in (0.0, 1.0))
    )
    x[row, column] = value
    first = [(i, j) for i in range(shape[0]) for j in range(shape[1]) if x[i, j] not in (0, 1)]
    with pytest.raises(ValueError, match=rf"x\[{first[0][0]}, {first[0][1]}\] = "):
        check_binary(x)


@examples(40)
@given(st.data())
def test_check_unit_interval_accepts_0_to_1_and_names_what_leaves_it(data):
    shape = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)))
    inside = st.floats(0.0, 1.0)
    x = torch.from_numpy(data.draw(hnp.arrays(np.float64, shape, elements=inside)))
    assert check_unit_interval(x) is x
    row, column = data.draw(st.tuples(st.integers(0, shape[0] - 1), st.integers(0, shape[1] - 1)))
    x[row, column] = data.draw(
        st.one_of(st.floats(max_value=-1e-300), st.floats(min_value=1 + 1e-15), st.just(math.nan))
    )
    with pytest.raises(ValueError, match=rf"x\[{row}, {column}\] = "):
        check_unit_interval(x)


# integers, seeds and the model's width


@examples(40)
@given(st.integers(1, 2**70))
def test_positive_integers_up_to_torchs_largest_size_pass_and_come_back_as_int(value):
    """Accepted up to 2**63 - 1 (torch's sizes are int64; the oracle: NumPy's int64 max),
    refused by name past it."""
    largest = int(np.iinfo(np.int64).max)
    if value <= largest:
        assert check_positive_int(value, "n") == value
    else:
        with pytest.raises(ValueError, match=rf"n must be at most 2\*\*63 - 1 = {largest}"):
            check_positive_int(value, "n")
    assert check_positive_int(np.int64(min(value, 2**62)), "n") == min(value, 2**62)


@examples(40)
@given(
    st.one_of(
        st.integers(max_value=0),
        st.booleans(),
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.none(),
    )
)
def test_everything_else_is_not_a_positive_integer(value):
    with pytest.raises(ValueError, match=r"n must be a positive integer, got "):
        check_positive_int(value, "n")


@examples(40)
@given(st.integers(-(2**40), 2**40))
def test_seeds_are_exactly_the_integers_numpy_accepts(value):
    if 0 <= value < SEED_LIMIT:
        assert check_seed(value) == value
        np.random.RandomState(value)  # and so does NumPy's seeding (pyro.set_rng_seed)
    else:
        with pytest.raises(ValueError, match=rf"seed must be in \[0, {SEED_LIMIT - 1}\], got "):
            check_seed(value)


@examples(30)
@given(st.integers(1, 6), st.integers(1, 6))
def test_the_model_check_names_a_width_other_than_data_dim(data_dim, width):
    model = pvae.build_model("normal-fixed", data_dim, 1, (2,))
    x = torch.zeros(3, width)
    if width == data_dim:
        check_model_data(model, x, "x")
    else:
        with pytest.raises(
            ValueError, match=rf"x has {width} columns .* the model expects data_dim = {data_dim}"
        ):
            check_model_data(model, x, "x")


# pvae.data.from_levels: binarize, dequantize and plain scaling stay in range


@st.composite
def levels(draw):
    """Whole grey levels of 2..65536 levels (the extremes drawn often) and the count."""
    num_levels = draw(st.one_of(st.sampled_from([2, 3, 17, 256, 2**16]), st.integers(2, 2**16)))
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.tuples(st.integers(2, 12), st.integers(1, 6)))
    values = st.one_of(st.sampled_from([0, num_levels - 1]), st.integers(0, num_levels - 1))
    array = draw(hnp.arrays(np.int64, shape, elements=values))
    return torch.from_numpy(array).to(DTYPES[dtype]), num_levels


def _rows_in_order(split) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's points put back in their original order (labels are the row numbers)."""
    points = torch.cat([split.train, split.test])
    order = torch.cat([split.train_labels, split.test_labels]).argsort()
    return points[order], order


@examples(60)
@given(levels(), st.integers(0, SEED_LIMIT - 1))
def test_from_levels_keeps_every_mode_in_range(case, seed):
    x, num_levels = case
    labels = torch.arange(len(x))
    plain, _ = _rows_in_order(from_levels(x, num_levels, labels, test_fraction=0.5, seed=seed))
    binary, _ = _rows_in_order(
        from_levels(x, num_levels, labels, binarize=True, test_fraction=0.5, seed=seed)
    )
    noisy, _ = _rows_in_order(
        from_levels(x, num_levels, labels, dequantize=True, test_fraction=0.5, seed=seed)
    )
    for scaled in (plain, binary, noisy):
        assert scaled.dtype == x.dtype and scaled.shape == x.shape
    assert bool(((plain >= 0) & (plain <= 1)).all())
    assert torch.equal(plain == 0, x == 0) and torch.equal(plain == 1, x == num_levels - 1)
    assert bool(((binary == 0) | (binary == 1)).all())
    assert torch.equal(binary == 1, x / (num_levels - 1) > 0.5)
    assert bool(((noisy >= 0) & (noisy < 1)).all())  # [0, 1): never exactly 1
    # each value stays in its level's bin [level, level + 1) / L, up to one rounding
    spacing = torch.finfo(x.dtype).eps * num_levels
    assert bool((noisy * num_levels >= x - spacing).all())
    assert bool((noisy * num_levels <= x + 1 + spacing).all())


@examples(30)
@given(st.integers(2, 2**16), st.sampled_from(sorted(DTYPES)))
def test_dequantized_values_below_1_even_where_the_sum_rounds_up(num_levels, dtype):
    """The largest noise below 1 added to the top level rounds up to L in float32 (and in
    float64 for large L): the scaled value would be exactly 1. It is kept below 1."""
    dtype = DTYPES[dtype]
    top = torch.full((4, 3), float(num_levels - 1), dtype=dtype)
    largest_noise = torch.nextafter(torch.ones((), dtype=dtype), torch.zeros((), dtype=dtype))
    real_rand = torch.rand

    def rand(*args, **kwargs):  # the draws: the largest noise below 1, everywhere
        return real_rand(*args, **kwargs).fill_(largest_noise)

    with mock.patch.object(torch, "rand", rand):
        split = from_levels(top, num_levels, dequantize=True, test_fraction=0.5)
    values = torch.cat([split.train, split.test])
    assert bool((values < 1).all()) and bool((values >= (num_levels - 1) / num_levels).all())


# pvae.estimation.parse_memory

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
UNITS.update({"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40})


@examples(80)
@given(
    st.integers(1, 10**6),
    st.sampled_from(sorted(UNITS)),
    st.sampled_from(["", " "]),
    st.sampled_from([str, str.lower, str.upper]),
)
def test_parse_memory_round_trips_whole_sizes_in_every_unit(number, unit, space, case):
    assert parse_memory(f"{number}{space}{case(unit)}") == number * UNITS[unit]
    assert parse_memory(number * UNITS[unit]) == number * UNITS[unit]  # bytes as an int


@examples(60)
@given(st.integers(1, 10**6), st.integers(1, 99), st.sampled_from(sorted(UNITS)))
def test_parse_memory_takes_fractions_of_a_unit(whole, hundredths, unit):
    text = f"{whole}.{hundredths:02d}{unit}"
    assert parse_memory(text) == int(float(f"{whole}.{hundredths:02d}") * UNITS[unit])


@examples(60)
@given(
    st.one_of(
        st.integers(max_value=0),
        st.booleans(),
        st.floats(),
        st.sampled_from(["", "GiB", "1 PB", "-1GB", "1e3", "lots", "0MiB", "1.2.3MB", "0.1B"]),
    )
)
def test_parse_memory_refuses_other_values_naming_them(value):
    with pytest.raises(ValueError, match=r"^budget must be"):
        parse_memory(value, "budget")


# pvae.log_marginal on tiny pairs


@st.composite
def tiny_problems(draw):
    num_points, data_dim = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    latent_dim, num_samples = draw(st.integers(1, 2)), draw(st.integers(1, 12))
    name = draw(st.sampled_from(["normal-fixed", "normal-shared", "normal-floor"]))
    values = st.floats(-3, 3, allow_nan=False)
    x = draw(hnp.arrays(np.float64, (num_points, data_dim), elements=values))
    return name, torch.from_numpy(x), latent_dim, num_samples, draw(st.integers(0, SEED_LIMIT - 1))


@examples(25)
@given(tiny_problems(), st.integers(1, 64))
def test_log_marginal_is_finite_above_the_elbo_and_split_invariant(problem, chunk_size):
    name, x, latent_dim, num_samples, seed = problem
    torch.manual_seed(seed)
    model = pvae.build_model(name, x.shape[1], latent_dim, (4,))
    guide = pvae.build_guide("diag-normal", model, (4,))
    options = {"num_samples": num_samples, "seed": seed, "progress": False}
    result = pvae.log_marginal(model, guide, x, return_log_weights=True, **options)
    assert result.log_weights.shape == (x.shape[0], num_samples)
    assert bool(torch.isfinite(result.estimate).all()) and bool(torch.isfinite(result.elbo).all())
    # log of the mean weight >= mean of the log weights (Jensen), on the same draws
    assert bool((result.estimate >= result.elbo - 1e-12 * result.elbo.abs().clamp(min=1)).all())
    assert bool(((result.ess >= 1 - 1e-9) & (result.ess <= num_samples + 1e-9)).all())
    # the draws are keyed to (seed, point, sample): any rows per pass give the same numbers
    again = pvae.log_marginal(model, guide, x, chunk_size=chunk_size, **options)
    torch.testing.assert_close(again.estimate, result.estimate, rtol=1e-10, atol=1e-10)


@examples(15)
@given(st.integers(1, 5), st.integers(2, 5), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_log_marginal_with_the_exact_posterior_is_exact_for_any_k(num_points, data_dim, k, seed):
    """With q = p(z | x) every weight equals p(x): log p̂ is the closed form for any K
    (pPCA, Tipping & Bishop 1999); float64 rounding of a few terms, hence 1e-8."""
    latent_dim = data_dim - 1
    data, model = pvae.data.linear_gaussian_data(
        num_points, data_dim, latent_dim, noise_variance=0.5, seed=seed
    )
    guide = pvae.build_guide("exact", model, ())
    result = pvae.log_marginal(model, guide, data, num_samples=k, progress=False)
    torch.testing.assert_close(result.estimate, model.log_prob(data), rtol=1e-8, atol=1e-8)
