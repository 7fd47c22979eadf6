"""The fixed-width text tables (pvae.tables.format_table) and the four tables built on it.

The expected texts were printed by the hand-written formatters that ``format_table`` replaced
(``pvae evaluate``'s, the construction's and the depth experiment's), byte for byte; the demo's
rows are the README's run, as ``pvae demo`` printed them.
"""

import math

import pytest

from pvae.cli.evaluate import format_evaluation
from pvae.experiments import collapse_depth, demo
from pvae.tables import Column, format_table


def _demo(data, variant, train, se, test, change, variance, memorised, khat, bound, verdict,
          reliable=0.0):  # fmt: skip
    return {
        "data": data,
        "variant": variant,
        "train_log_px": train,
        "train_stderr": se,
        "test_log_px": test,
        "train_change": change[0],
        "train_change_halfwidth": change[1],
        "min_variance": variance,
        "memorised": memorised[0],
        "memorised_held_out": memorised[1],
        "khat_share": khat,
        "reliable": reliable,
        "bound": bound,
        "watchdog": math.isinf(bound),
        "verdict": verdict,
    }


DEMO_ROWS = [
    _demo(
        "n=100",
        "per-pixel σ²(z)",
        190.40,
        0.06,
        -10178.72,
        (18.77, 14.33),
        1.85e-05,
        (39, 0),
        0.91,
        math.inf,
        "diverging; unbounded once it reproduces one point",
    ),
    _demo(
        "n=100",
        "Bernoulli",
        -10.81,
        0.02,
        -21.33,
        (0.27, 0.14),
        math.nan,
        (math.nan, math.nan),
        0.27,
        0.0,
        "flat, 10.8 under its bound",
    ),
    _demo(
        "n=40",
        "shared γ",
        -59.5,
        12.345,
        -59.6,
        (math.nan, math.nan),
        0.94,
        (0, 0),
        math.nan,
        math.inf,
        "inconclusive: only 3 tracked values; a trend needs 5",
    ),
]

# The first two lines and the rows of the README's run (pvae demo on the digits), verbatim, and
# a row with too few tracked epochs for a trend and K < 30.
DEMO_TEXT = [
    "train set  variant             train log p̂  held-out Δ train, last ¼ min σ²(x) memorised "
    "    k̂>0.7 reliable  bound  verdict",
    "-" * 165,  # the header's 125 characters and 40 more
    "n=100      per-pixel σ²(z)        190.4±0.1  -10178.7      +18.8±14.3   1.8e-05    39 / 0 "
    "       91%       0%   none  diverging; unbounded once it reproduces one point  [watchdog]",
    "n=100      Bernoulli              -10.8±0.0     -21.3        +0.3±0.1         —         — "
    "       27%       0%      0  flat, 10.8 under its bound",
    "n=40       shared γ               -59.5±12.3     -59.6             n/a   9.4e-01     0 / 0 "
    "n/a (K<30)       0%   none  inconclusive: only 3 tracked values; a trend needs 5  [watchdog]",
]

CONSTRUCTION_ROWS = [
    {
        "k": 0,
        "free_log_px": -1224.89,
        "free_exact": -1225.0,
        "floored_log_px": -1225.05,
        "floored_exact": -1225.0,
        "bound": 3244.7,
    },
    {
        "k": 1600,
        "free_log_px": 49972.65,
        "free_exact": 49972.53,
        "floored_log_px": -1006.36,
        "floored_exact": -1006.42,
        "bound": 3244.7,
    },
]

CONSTRUCTION_TEXT = [
    "The Mattei–Frellsen construction (a step function in z, the limit of per-pixel ReLU "
    "decoders): log p̂(X) of the tracked training points, nats, by importance sampling from the "
    "prior, and exact (theory: slope d/2 per unit of k = −log σ²; with the floor, at most the "
    "bound):",
    "    k  log p̂, no floor     exact  log p̂, floor ξ     exact   bound",
    "    0          -1224.89  -1225.00         -1225.05  -1225.00  3244.7",
    " 1600          49972.65  49972.53         -1006.36  -1006.42  3244.7",
]

COLLAPSE_ROWS = [
    {
        "variant": "ae",
        "depth": 1,
        "train_recon_error": 1.2346,
        "test_recon_error": 2.5,
        "gamma": 0.0123,
        "kl": None,
        "active_units": None,
        "median_scale": None,
        "share_scale_near_1": None,
        "watchdog": False,
    },
    {
        "variant": "vae-warmup",
        "depth": 10,
        "train_recon_error": 0.1234,
        "test_recon_error": 0.25,
        "gamma": 0.123,
        "kl": 123.4,
        "active_units": 6,
        "median_scale": 0.6,
        "share_scale_near_1": 0.1,
        "watchdog": True,
    },
]

COLLAPSE_TEXT = [
    "variant     depth  train ‖x−x̂‖²  held-out         γ      KL  active  median σ_z   σ_z≈1",
    "----------------------------------------------------------------------------------------",
    "ae              1          1.235     2.500  1.23e-02       —       —           —       —",
    "vae-warmup     10          0.123     0.250  1.23e-01   123.4       6       0.600     10%"
    "  [watchdog]",
]

EVALUATION_ROWS = [
    {
        "split": "train",
        "estimator": "IS, K = 100",
        "num_points": 20,
        "num_samples": 100,
        "log_marginal": -87.654321,
        "stderr_mc": 0.0123,
        "stderr_points": 1.98765,
        "elbo": -90.1,
        "ess": 12.3,
        "khat_above_0.7": 0.0,
        "reliable": 0.35,
        "acceptance": None,
    },
    {
        "split": "held-out",
        "estimator": "AIS, T = 100, C = 8",
        "num_points": 200,
        "num_samples": None,
        "log_marginal": -175.3,
        "stderr_mc": 0.0246,
        "stderr_points": 2.5,
        "elbo": None,
        "ess": None,
        "khat_above_0.7": None,
        "reliable": None,
        "acceptance": 0.6543,
    },
]

# Written for this table (the golden of the old one had no across-point error and no AIS):
# each cell checked by hand against its column's width and format.
EVALUATION_TEXT = [
    "split     points  log p̂ (nats)   ± se MC ± se points       ELBO  mean ESS k̂ > 0.7 "
    "reliable  accept",
    "-" * 100,
    "train         20        -87.654    0.0123       1.988    -90.100      12.3       0%      35%"
    "       —",
    "held-out     200       -175.300    0.0246       2.500          —         —        —        —"
    "    0.65",
]


@pytest.mark.parametrize(
    "formatter, rows, expected",
    [
        (demo.format_table, DEMO_ROWS, DEMO_TEXT),
        (demo.format_construction, CONSTRUCTION_ROWS, CONSTRUCTION_TEXT),
        (collapse_depth.format_table, COLLAPSE_ROWS, COLLAPSE_TEXT),
        (format_evaluation, EVALUATION_ROWS, EVALUATION_TEXT),
    ],
    ids=["demo", "construction", "collapse-depth", "evaluate"],
)
def test_the_four_tables_print_as_before(formatter, rows, expected):
    assert formatter(rows) == "\n".join(expected)
    # Without rows: the header (and rule) alone.
    assert formatter([]) == "\n".join(expected[: len(expected) - len(rows)])


# The per-pixel row of the README's final table (AIS on both splits) and one where AIS was not
# needed on the training points and not run on the held-out ones.
FINAL_ROWS = [
    {
        "data": "n=100", "variant": "per-pixel σ²(z)",
        "train_log_px": 190.4026, "train_stderr": 0.0601, "reliable": 0.0,
        "test_log_px": -10178.7178, "test_stderr": 0.0991, "reliable_held_out": 0.0,
    } | {
        f"{split}_ais_{key}": value
        for split, values in (
            ("train", (192.1526, 0.0401, 1.7499, 0.1863, 0.5508, 19.504)),
            ("test", (-1075.5179, 0.0978, 9103.1992, 1095.3802, 0.5622, 19.504)),
        )
        for key, value in zip(
            ("log_px", "stderr_mc", "minus_is", "minus_is_stderr", "acceptance", "seconds"),
            values,
            strict=True,
        )
    },
    {
        "data": "n=40", "variant": "fixed σ²=1",
        "train_log_px": -60.9, "train_stderr": 0.001, "reliable": 1.0,
        "test_log_px": -61.0, "test_stderr": 0.001, "reliable_held_out": 0.9,
    } | demo._ais_keys({}),
]  # fmt: skip

FINAL_TEXT = [
    "train set  variant              points       IS, K=100 reliable   AIS, T=100 C=4          AIS "
    "− IS accept. AIS s",
    "-" * 112,
    "n=100      per-pixel σ²(z)      train        190.4±0.1       0%        192.2±0.0        +1.75"
    "±0.19    0.55    20",
    "n=100      per-pixel σ²(z)      held-out  -10178.7±0.1       0%      -1075.5±0.1        +9103"
    "±1095    0.56      ",
    "n=40       fixed σ²=1           train        -60.9±0.0     100%       not needed             "
    "    —       —      ",
    "n=40       fixed σ²=1           held-out     -61.0±0.0      90%          not run             "
    "    —       —      ",
]


def test_the_demo_final_table_prints_as_the_readme_shows():
    settings = demo.DemoSettings()
    assert demo.format_final(FINAL_ROWS, settings) == "\n".join(FINAL_TEXT)


def test_format_table_pads_aligns_and_separates():
    columns = [
        Column("name", 6, "<", key="name"),
        Column("value", 7, key="value", spec=".2f", separator=" "),
        Column("note", key="note", separator="  "),
    ]
    rows = [{"name": "a", "value": 1.5, "note": "ok"}, {"name": "b", "value": None, "note": ""}]
    assert format_table(rows, columns).split("\n") == [
        "name     value  note",
        "--------------------",
        "a         1.50  ok",
        "b            —  ",
    ]


def test_format_table_never_cuts_a_wide_cell():
    columns = [Column("n", 3, key="n"), Column("x", 3, "<", key="x")]
    assert format_table([{"n": 123456, "x": "long"}], columns).split("\n")[2] == "123456long"


def test_format_table_rule_options():
    columns = [Column("k", 3, key="k", missing="n/a")]
    assert format_table([{"k": None}], columns, rule=False) == "  k\nn/a"
    assert format_table([], columns, rule_extra=2) == "  k\n-----"


def test_a_cell_function_replaces_key_and_spec():
    columns = [Column("both", 9, cell=lambda row: f"{row['a']}/{row['b']}")]
    assert format_table([{"a": 1, "b": 2}], columns).split("\n")[2] == "      1/2"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"width": 3, "key": "a", "align": "^"}, "align must be '<' or '>', got '\\^'"),
        ({"width": 0, "key": "a"}, "width must be a positive integer or None, got 0"),
        ({"width": 3}, "column 'h' needs a key or a cell function"),
    ],
)
def test_column_refuses_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        Column("h", **options)
