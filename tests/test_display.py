"""The short text and HTML forms of results and reports: every number shown is the result's
own (computed again here from its fields), says which estimator made it and carries its
standard error or status; no tensor is dumped; the HTML is well formed and escaped."""

import math
from html.parser import HTMLParser

import pytest

import pvae
from pvae.diagnostics import diagnose
from pvae.diagnostics.verdict import Rung, read_verdict
from pvae.display import Displayed, with_error
from pvae.estimation import k_curve, log_marginal_quadrature
from pvae.guides import DiagNormalGuide


@pytest.mark.parametrize(
    ("value", "stderr", "text"),
    [
        (-41.23456, 0.0123, "-41.235 ± 0.012"),
        (-10.8, 0.1004, "-10.80 ± 0.10"),
        (1234.5, 230.0, "1234 ± 230"),
        (-12.3456, 1.7, "-12.3 ± 1.7"),
        (104.2, 23.0, "104 ± 23"),
        (2.5, 0.0, "2.5 ± 0"),
        (3.0, math.nan, "3 ± nan"),  # an unknown error is said, never dropped
        (math.inf, 1.0, "inf ± 1"),
    ],
)
def test_a_value_is_rounded_where_its_error_is(value, stderr, text):
    assert with_error(value, stderr) == text


class _Cells(HTMLParser):
    """The text of every cell, and whether each opened tag was closed."""

    def __init__(self):
        super().__init__()
        self.cells, self.open = [], []

    def handle_starttag(self, tag, attrs):
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open.pop() == tag

    def handle_data(self, data):
        self.cells.append(data)


def shown(result: Displayed) -> tuple[str, str]:
    """``repr`` and the HTML's text, after checking what every display must hold."""
    text = repr(result)
    assert "tensor(" not in text and "array(" not in text
    assert len(text.splitlines()[0]) < 200
    parser = _Cells()
    parser.feed(result._repr_html_())
    assert parser.open == []
    html_text = "\n".join(parser.cells)
    for line in text.splitlines()[1:]:  # the HTML holds every row of the text form
        label, value = line.strip().split("  ", 1)
        assert label in html_text and value.strip() in html_text
    return text, html_text


@pytest.fixture
def pair(ppca):
    model, data = ppca
    return model, DiagNormalGuide(6, 2, (8,)), data[:40]


def test_an_importance_estimate_shows_its_estimator_errors_and_status(pair):
    model, guide, x = pair
    result = pvae.log_marginal(model, guide, x, num_samples=200, progress=False, seed=0)
    text, html = shown(result)
    summary, status = result.summary(), result.status
    assert "importance sampling (guide proposal, K = 200) of 40 points" in text
    assert with_error(summary["log_marginal"], summary["stderr_mc"]) in text
    assert f"se {summary['stderr_points']:.2g}" in text
    counts = ", ".join(f"{status.count(s)} {s}" for s in ("reliable", "doubtful", "unreliable"))
    assert counts in text
    assert f"{int((result.khat > 0.7).sum())} of 40 points" in text
    assert "log p̂(x)" in html  # not escaped away


def test_an_estimate_without_nested_draws_says_it_has_no_status(pair):
    model, guide, x = pair
    result = pvae.log_marginal(model, guide, x, num_samples=8, progress=False, seed=0)
    result.nested = None
    assert "no status: not made by log_marginal" in repr(result)


def test_ais_and_bdmc_say_what_they_bound(pair):
    model, guide, x = pair
    result = pvae.ais(model, guide, x[:4], num_steps=5, num_chains=2, progress=False, seed=0)
    text, _ = shown(result)
    summary = result.summary()
    assert "annealed importance sampling (HMC; guide start, T = 5 steps, C = 2 chains)" in text
    assert with_error(summary["log_marginal"], summary["stderr_mc"]) in text
    assert "a lower bound in expectation" in text
    sandwich = pvae.bdmc(model, guide, x, num_points=3, num_steps=5, num_chains=2,
                         progress=False, seed=0)  # fmt: skip
    text, _ = shown(sandwich)
    assert "on 3 simulated points" in text
    se = (sandwich.upper_stderr.pow(2).sum().sqrt() / 3).item()
    assert with_error(sandwich.upper.mean().item(), se) in text
    assert f"{sandwich.width.max().item():.3g} largest" in text


def test_a_k_curve_shows_one_row_per_k(pair):
    model, guide, x = pair
    result = pvae.log_marginal(model, guide, x, num_samples=16, progress=False, seed=0,
                               return_log_weights=True)  # fmt: skip
    curve = k_curve(result)
    text, _ = shown(curve)
    rows = text.splitlines()[1:]
    assert [row.split()[2] for row in rows] == ["1", "2", "4", "8", "16"]
    assert rows[0].endswith("± nan")  # one draw has no standard error
    assert with_error(curve.mean[-1].item(), curve.stderr_mc[-1].item()) in rows[-1]


def test_quadrature_shows_its_own_error():
    from pvae.data import linear_gaussian_data

    data, model = linear_gaussian_data(5, 6, 1, noise_variance=0.5, seed=1)
    result = log_marginal_quadrature(model, data, tol=1e-10)
    text, _ = shown(result)
    assert "composite Simpson quadrature" in text
    assert f"{result.estimate.mean().item():.6g} nats per point" in text
    assert "converged on 5 of 5 points" in text


def test_diagnostics_and_the_collapse_report(pair):
    model, guide, x = pair
    diagnostics = diagnose(model, guide, x)
    text, _ = shown(diagnostics)
    assert f"{diagnostics.num_active} of 2 latent units active" in text
    assert f"{diagnostics.kl_per_dim.sum().item():.4g} nats per point" in text
    report = diagnostics.report()
    text, html = shown(report)
    for key, verdict in report.verdicts.items():
        assert f"({key})" in text and verdict in text
        assert report.reasons[key] in html  # the reasons are in the HTML table


def test_a_model_that_states_nothing_shows_unknown_not_bounded(pair):
    _, guide, x = pair
    diagnostics = diagnose(pvae.build_model("normal-shared", 6, 2, (8,)), guide, x,
                                )  # fmt: skip
    diagnostics.variance_learned, diagnostics.log_density_bound = None, math.nan
    text = repr(diagnostics)
    assert "; unknown" in text
    assert "unknown (neither stated by the model nor read from the trace)" in text


def test_a_verdict_shows_its_findings():
    epochs = [float(e) for e in range(12)]
    verdict = read_verdict(epochs, [e * 2.0 for e in epochs], rung=Rung("one point", math.inf, "x"))
    text, _ = shown(verdict)
    assert text.splitlines()[0] == f"Verdict: {verdict.status}"
    for reason in verdict.reasons:
        assert reason in text


def test_gradient_moments_show_every_parameter(pair):
    model, guide, x = pair
    moments = pvae.gradient_variance(model, guide, x[:8], num_draws=3, progress=False)
    text, _ = shown(moments)
    assert "over 3 independent draws" in text
    rows = dict(line.strip().split(None, 1) for line in text.splitlines()[2:])
    assert rows.keys() == moments.variance.keys()
    for name, variance in moments.summary().items():
        assert rows[name].startswith(f"variance {variance:.4g} ")
    assert f"{moments.total_variance():.4g}" in text
