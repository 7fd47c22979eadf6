"""The calibration of the trust status: importance sampling on cases with exact answers.

Every case is a model whose log p(x) is known exactly (pPCA in closed form; an MLP decoder
with a one-dimensional latent, Normal or Bernoulli, by quadrature), a per-point Normal guide
set from the exact posterior's moments and then made good, too narrow, too wide or shifted,
and a number of samples K. :func:`run_cases` records, for every point, the estimate's error
against the exact value, its reported standard error and the three signs the trust rule reads;
:func:`score` says how a :class:`~pvae.estimation.trust.TrustRule` does on them:

- **coverage**: among points marked reliable, the share whose ±2 se interval holds the exact
  value (the promise: at least 90%);
- **caught**: among points whose error exceeds 3 reported se, the share *not* marked reliable
  (at least 90%);
- **yield**: the share of all points marked reliable.

:func:`choose_rule` picks the rule with the largest yield that keeps both promises with a
margin on :data:`CHOICE_CASES`; :data:`HELD_OUT_CASES` (other families, variances, guides and
K) check it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from tqdm.auto import tqdm

from pvae.contract import evaluating, sample_sites, site_log_prob
from pvae.estimation.estimators import log_marginal
from pvae.estimation.quadrature import log_marginal_quadrature
from pvae.estimation.trust import TrustRule
from pvae.files import locking_folder, save_figure, write_text

__all__ = [
    "CANDIDATES",
    "CHOICE_CASES",
    "HELD_OUT_CASES",
    "PRECISION",
    "Case",
    "case_table",
    "choose_rule",
    "run_calibration",
    "run_cases",
    "score",
]


@dataclass(frozen=True)
class Case:
    """One calibration case.

    :ivar family: ``"ppca"`` (6 dimensions, 2 latent, closed form), ``"mlp-normal"`` (an MLP
        decoder, 16 hidden units, one shared variance, on dequantized digits; quadrature) or
        ``"mlp-bernoulli"`` (the same with a Bernoulli likelihood on binarized digits).
    :ivar variance: the pPCA noise variance or the MLP decoder's γ (unused for Bernoulli).
    :ivar shift: the guide's mean minus the posterior mean, in posterior standard deviations.
    :ivar scale: the guide's standard deviation over the posterior's.
    :ivar num_samples: K.
    """

    family: str
    variance: float
    shift: float
    scale: float
    num_samples: int

    @property
    def guide(self) -> str:
        if self.shift == 0 and self.scale == 1:
            return "matched"
        parts = []
        if self.shift:
            parts.append(f"shifted {self.shift:g} sd")
        if self.scale != 1:
            parts.append(f"{'narrow' if self.scale < 1 else 'wide'} ×{self.scale:g}")
        return ", ".join(parts)


def _grid(families, guides, sizes) -> tuple[Case, ...]:
    return tuple(
        Case(family, variance, shift, scale, k)
        for (family, variance), (shift, scale), k in itertools.product(families, guides, sizes)
    )


#: The cases the rule is chosen on.
CHOICE_CASES = _grid(
    [("ppca", 0.1), ("mlp-normal", 0.05)],
    [(0, 1), (0, 0.5), (0, 0.25), (0, 2), (0, 4), (1, 1), (2, 1)],
    [10, 100, 1000],
)

#: The cases held out from the choice: a family, variances, guides and K it never saw.
HELD_OUT_CASES = _grid(
    [("ppca", 0.02), ("mlp-normal", 0.01), ("mlp-bernoulli", 0.0)],
    [(0, 1), (0, 0.35), (0, 3), (1.5, 1), (1, 0.5)],
    [30, 300, 3000],
)


def _family(family: str, variance: float, num_points: int, seed: int):
    """The model, data, exact log p(x) with its own error (quadrature's estimate; 0 for the
    closed form) and the posterior's mean and sd per point."""
    from pvae.data.catalog import load_dataset
    from pvae.data.synthetic import linear_gaussian_data
    from pvae.models import LinearGaussian
    from pvae.registry import build_model

    if family == "ppca":
        data, _ = linear_gaussian_data(num_points, 6, 2, noise_variance=variance, seed=seed)
        model = LinearGaussian.maximum_likelihood(data, 2)
        with torch.no_grad():
            posterior = model.posterior(data)
            exact = model.log_prob(data)
        sd = posterior.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
        return (
            model,
            data,
            exact,
            torch.zeros_like(exact),
            posterior.mean,
            sd.expand_as(posterior.mean),
        )
    torch.manual_seed(seed)
    if family == "mlp-normal":
        data = load_dataset("digits", dequantize=True, seed=seed).train[:num_points]
        model = build_model("normal-shared", 64, 1, (16,), init_variance=variance)
    elif family == "mlp-bernoulli":
        data = load_dataset("digits", binarize=True, seed=seed).train[:num_points]
        model = build_model("bernoulli", 64, 1, (16,))
    else:
        raise ValueError(f"family must be 'ppca', 'mlp-normal' or 'mlp-bernoulli', got {family!r}")
    data = data.to(torch.get_default_dtype())
    model = model.to(data.dtype)
    exact = log_marginal_quadrature(model, data)
    mean, sd = _posterior_moments(model, data)
    return model, data, exact.estimate, exact.error, mean, sd


def _posterior_moments(model, data: torch.Tensor, nodes: int = 4001, bound: float = 8.0):
    """Mean and standard deviation of p(z | x) for a one-dimensional latent, on a dense grid."""
    grid = torch.linspace(-bound, bound, nodes, dtype=data.dtype)
    rows = data.repeat_interleave(nodes, dim=0)
    z = grid.repeat(len(data)).unsqueeze(-1)
    with evaluating(model):
        trace = poutine.trace(poutine.condition(model, data={"z": z})).get_trace(rows)
        log_joint = sum(site_log_prob(s, (len(rows),)) for s in sample_sites(trace))
    weights = torch.softmax(log_joint.reshape(len(data), nodes), -1)
    mean = weights @ grid
    sd = (weights @ grid.pow(2) - mean.pow(2)).clamp(min=0).sqrt()
    return mean.unsqueeze(-1), sd.unsqueeze(-1)


def run_cases(cases, *, num_points: int = 40, seed: int = 0, progress: bool = True) -> list[dict]:
    """Importance sampling on every case: one row per point, with the case, the estimate's
    error against the exact value, its standard error and the trust signs. Runs in float64
    (torch's default dtype is set for the run and put back), so that the exact values are
    exact to well under the errors being judged."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _run_cases(cases, num_points, seed, progress)
    finally:
        torch.set_default_dtype(previous)


def _run_cases(cases, num_points: int, seed: int, progress: bool) -> list[dict]:
    from pvae.guides import PerPointNormalGuide

    families: dict = {}
    rows = []
    for number, case in enumerate(tqdm(cases, disable=not progress, desc="cases")):
        key = (case.family, case.variance)
        if key not in families:
            families[key] = _family(case.family, case.variance, num_points, seed)
        model, data, exact, exact_error, mean, sd = families[key]
        guide = PerPointNormalGuide(data, mean.shape[-1])
        with torch.no_grad():
            guide.loc.copy_(mean + case.shift * sd)
            guide.log_scale.copy_((case.scale * sd).log())
        pyro.clear_param_store()
        result = log_marginal(
            model, guide, data, num_samples=case.num_samples, seed=seed + number, progress=False
        )
        features = TrustRule(1.0, 0.0, 1.0).features(result)
        for i in range(len(data)):
            rows.append(
                {
                    "family": case.family,
                    "variance": case.variance,
                    "guide": case.guide,
                    "num_samples": case.num_samples,
                    "error": float(result.estimate[i] - exact[i]),
                    "exact_error": float(exact_error[i]),
                    "stderr": float(result.stderr[i]),
                    **{n: float(v[i]) for n, v in features.items() if n != "num_samples"},
                }
            )
    return rows


def _as_features(rows) -> dict[str, torch.Tensor]:
    return {
        key: torch.tensor([row[key] for row in rows], dtype=torch.float64)
        for key in ("khat", "relative_ess", "nested_gap", "num_samples")
    }


def score(rule: TrustRule, rows: list[dict]) -> dict[str, float]:
    """Coverage, caught and yield of ``rule`` on ``rows`` (:func:`run_cases`), with the counts
    behind them. The exact value's own error (quadrature's) and :data:`PRECISION` are added
    to both margins: an error below a thousandth of a nat counts as covered whatever the
    standard error (a near-exact guide's se can be 1e-10 where rounding in the log-densities
    is larger)."""
    statuses = rule.status_of(_as_features(rows))
    error = torch.tensor([abs(row["error"]) for row in rows], dtype=torch.float64)
    stderr = torch.nan_to_num(torch.tensor([row["stderr"] for row in rows]), nan=0.0)
    slack = torch.tensor([row["exact_error"] for row in rows], dtype=torch.float64) + PRECISION
    covered = error <= 2 * stderr + slack
    bad = error > 3 * stderr + slack
    reliable = torch.tensor([status == "reliable" for status in statuses])
    num_reliable, num_bad = int(reliable.sum()), int(bad.sum())
    return {
        "num_points": len(rows),
        "num_reliable": num_reliable,
        "coverage": float(covered[reliable].double().mean()) if num_reliable else math.nan,
        "num_bad": num_bad,
        "caught": float((~reliable[bad]).double().mean()) if num_bad else math.nan,
        "yield": num_reliable / len(rows),
        "num_doubtful": statuses.count("doubtful"),
        "num_unreliable": statuses.count("unreliable"),
    }


#: Errors below this many nats count as covered, and never as missed.
PRECISION = 1e-3

#: The thresholds :func:`choose_rule` tries.
CANDIDATES = {
    "max_khat": (0.3, 0.4, 0.5, 0.6, 0.7),
    "min_relative_ess": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
    "max_nested_gap": (1.5, 2.0, 3.0, math.inf),
    "min_samples": (30, 100, 300),
}


def choose_rule(rows: list[dict], *, coverage: float = 0.92, caught: float = 0.92) -> TrustRule:
    """The rule of :data:`CANDIDATES` with the largest yield on ``rows`` whose coverage and
    caught share are at least ``coverage`` and ``caught`` (the promises, 90%, with a margin
    for the cases it was not chosen on); ties go to the stricter rule.

    :raises ValueError: if no candidate keeps both.
    """
    best, best_key = None, None
    for khat, ess, gap, size in itertools.product(*CANDIDATES.values()):
        rule = TrustRule(max_khat=khat, min_relative_ess=ess, max_nested_gap=gap, min_samples=size)
        result = score(rule, rows)
        if not (result["coverage"] >= coverage and result["caught"] >= caught):
            continue
        key = (result["yield"], -khat, ess, -gap, size)
        if best_key is None or key > best_key:
            best, best_key = rule, key
    if best is None:
        raise ValueError(
            f"no candidate rule keeps coverage ≥ {coverage} and caught ≥ {caught} on these rows"
        )
    return best


def case_table(rule: TrustRule, rows: list[dict]) -> list[dict]:
    """:func:`score` of ``rule`` on each case of ``rows`` (one row per family, variance, guide
    and K), for the docs' table."""
    groups: dict = {}
    for row in rows:
        key = (row["family"], row["variance"], row["guide"], row["num_samples"])
        groups.setdefault(key, []).append(row)
    table = []
    for (family, variance, guide, k), members in groups.items():
        result = score(rule, members)
        table.append(
            {"family": family, "variance": variance, "guide": guide, "num_samples": k, **result}
        )
    return table


@locking_folder
def run_calibration(out_dir, *, num_points: int = 40, seed: int = 0, progress: bool = True):
    """Run both grids, choose the rule on :data:`CHOICE_CASES`, score it on both; write
    ``trust_calibration.json`` (the rule, the two scores and the per-case tables),
    ``trust_calibration.csv`` (every point) and ``trust_calibration.png``. Returns the JSON's
    content."""
    import json
    from pathlib import Path

    from pvae import tables
    from pvae.plots.trust import plot_trust_calibration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    choice = run_cases(CHOICE_CASES, num_points=num_points, seed=seed, progress=progress)
    held_out = run_cases(HELD_OUT_CASES, num_points=num_points, seed=seed, progress=progress)
    rule = choose_rule(choice)
    statuses = rule.status_of(_as_features(choice + held_out))
    every = [
        {**row, "split": split, "status": status}
        for (split, row), status in zip(
            [("choice", r) for r in choice] + [("held-out", r) for r in held_out],
            statuses,
            strict=True,
        )
    ]
    saved = {
        "rule": dataclasses.asdict(rule),
        "choice": score(rule, choice),
        "held_out": score(rule, held_out),
        "choice_cases": case_table(rule, choice),
        "held_out_cases": case_table(rule, held_out),
    }
    write_text(out / "trust_calibration.json", json.dumps(saved, indent=2) + "\n")
    tables.write_table(out / "trust_calibration.csv", every)
    figure = plot_trust_calibration(every, precision=PRECISION)
    save_figure(figure, out / "trust_calibration.png", dpi=110)
    return saved
