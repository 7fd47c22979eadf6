"""Every bad input tried at pvae's public entry points, and the error each gets.

:data:`CASES` is the one list: ``test_bad_input`` runs every case and checks its exception type
and message, and ``test_the_docs_table_lists_every_case`` checks that ``docs/bad_inputs.md``
shows exactly these cases with these messages (regenerate it with
``python tests/test_bad_inputs.py``).
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import pvae
import pvae.guides
from pvae import data, diagnostics, experiments, likelihoods, plots, theory
from pvae.cli import main
from pvae.experiments import collapse_depth
from pvae.guides import DiagNormalGuide
from pvae.likelihoods import BernoulliDecoder, ContinuousBernoulliDecoder, NormalDecoder
from pvae.training import JointOptim, kl_cyclical, kl_warmup
from pvae.validation import SEED_LIMIT

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"
BEGIN, END = "<!-- cases: begin -->", "<!-- cases: end -->"
TOP = SEED_LIMIT - 1


class ExitStatus(Exception):
    """``pvae.cli.main`` ended with a non-zero status (returned, or argparse's ``SystemExit``);
    the message is the last line it wrote to stderr."""


@dataclass(frozen=True)
class Case:
    """One bad input: ``call(tmp)`` must raise ``error`` with ``message`` in its text.

    :ivar entry: the entry point, as the table shows it.
    :ivar bad: the bad input, as the table shows it.
    :ivar call: makes the call (``tmp``: a fresh folder for files).
    :ivar error: the exception type (:class:`ExitStatus` for the CLI's exit status 2).
    :ivar message: the stable part of the message, verbatim.
    """

    entry: str
    bad: str
    call: Callable[[Path], object]
    error: type[Exception]
    message: str


# Helpers: small, fast, deterministic inputs (float64 under tests/conftest.py).


def points(n: int = 10, d: int = 4) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(0))


def put(x: torch.Tensor, index, value) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


def binary() -> torch.Tensor:
    return (points() > 0.5).to(torch.get_default_dtype())


def pair(name: str = "normal-fixed", guide: str = "diag-normal", d: int = 4):
    model = pvae.build_model(name, d, 2, () if name == "linear-gaussian" else (8,))
    return model, pvae.build_guide(guide, model, () if guide == "exact" else (8,))


def fit(model_name: str = "normal-fixed", x=None, **options):
    model, guide = pair(model_name)
    options = {"epochs": 1, "progress": False, **options}
    return pvae.fit(model, guide, points() if x is None else x, **options)


def estimate(function=pvae.log_marginal, model_name="normal-fixed", x=None, **options):
    model, guide = pair(model_name)
    if function is pvae.log_marginal:
        options = {"num_samples": 3, "progress": False, **options}
    return function(model, guide, points() if x is None else x, **options)


def cli(*argv: str) -> int:
    """Run ``pvae ARGV``; raise :class:`ExitStatus` with its last stderr line if it fails."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(list(argv))
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    if code:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        raise ExitStatus(f"exit {code}: {lines[-1] if lines else ''}")
    return code


def train(tmp: Path, *flags: str) -> int:
    small = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--eval-samples", "0"]
    return cli("train", *small, "--no-progress", "--out", str(tmp / "run.pt"), *flags)


def config(tmp: Path, text: str) -> int:
    (tmp / "run.toml").write_text(text)
    return train(tmp, "--config", str(tmp / "run.toml"), "--out", str(tmp / "other.pt"))


def config_alone(tmp: Path, text: str) -> int:
    """``pvae train --config run.toml`` with the TOML's own ``out`` (in ``tmp`` unless it
    names one)."""
    if "out =" not in text:
        text += f"out = '{tmp / 'run.pt'}'\n"
    settings = tmp / "settings.toml"  # not run.toml, the run's own record of its settings
    settings.write_text(text + "epochs = 1\nlatent_dim = 2\neval_samples = 0\n")
    return cli("train", "--config", str(settings), "--no-progress")


def blocker(tmp: Path) -> Path:
    """A text file of the user's, where a run would need a folder."""
    path = tmp / "notes.txt"
    path.write_text("mine\n")
    return path


def checkpoint(tmp: Path) -> Path:
    model, guide = pair("normal-shared", d=64)
    path = tmp / "run.pt"
    pvae.save(path, model, guide, config={"data": "digits", "data_seed": 0})
    return path


def evaluate(tmp: Path, *flags: str) -> int:
    base = ["--num-samples", "2", "--num-points", "3", "--no-progress"]
    return cli("evaluate", str(checkpoint(tmp)), *base, *flags)


def save_array(tmp: Path, array: np.ndarray, name: str = "x.npy", **arrays) -> Path:
    path = tmp / name
    if name.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        np.save(path, array, allow_pickle=array.dtype == object)
    return path


def load_array(tmp: Path, array: np.ndarray, **options):
    return data.load_array(save_array(tmp, array), **options)


def load_npz(tmp: Path, **arrays):
    return data.load_array(save_array(tmp, None, "x.npz", **arrays))


def crafted_npy() -> bytes:
    """A .npy file of a (2, 4) uint8 array whose header claims (10^6, 10^6)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros((2, 4), np.uint8))
    return buffer.getvalue().replace(b"(2, 4)", b"(1000000, 1000000)")


def damaged(tmp: Path, content: bytes, name: str = "run.pt") -> Path:
    (tmp / name).write_bytes(content)
    return tmp / name


def settings(**changes):
    return experiments.CollapseDepthSettings(**changes)


def tiny_depth_run(tmp: Path, split, **changes):
    small = {"depths": (1,), "width": 4, "latent_dim": 2, "epochs": 2, "warmup_epochs": 1}
    return experiments.run_collapse_depth(
        tmp, settings=settings(**{**small, **changes}), data=split, progress=False
    )


NAN, INF = math.nan, math.inf
GREY = "binarize the data (pvae.data.load_digits(binarize=True)) or use a Normal likelihood"
SEED_RANGE = f"must be in [0, {TOP}]"

# The data argument of the estimators: (entry point, the call with x).
ESTIMATORS = {
    "pvae.fit": lambda x: fit(x=x),
    "pvae.log_marginal": lambda x: estimate(x=x),
    "pvae.elbo_per_point": lambda x: estimate(pvae.elbo_per_point, x=x, num_samples=2),
    "pvae.iwae_bound": lambda x: estimate(pvae.iwae_bound, x=x, num_samples=2),
    "pvae.elbo_terms": lambda x: estimate(pvae.elbo_terms, x=x),
    "pvae.gradient_variance": lambda x: estimate(
        pvae.gradient_variance, x=x, num_draws=2, progress=False
    ),
    "pvae.diagnostics.diagnose": lambda x: estimate(diagnostics.diagnose, x=x),
    "pvae.diagnostics.reconstruction_error": lambda x: estimate(
        diagnostics.reconstruction_error, x=x
    ),
}
DATA_NAMES = {"pvae.fit": "data"}  # the others call it x


def data_cases() -> list[Case]:
    """Every estimator against every shape, value and dtype the issue lists."""
    cases = []
    for entry, call in ESTIMATORS.items():
        name = DATA_NAMES.get(entry, "x")

        def add(bad, x, error, message, call=call, entry=entry, name=name):
            cases.append(Case(entry, f"`{name}` {bad}", lambda tmp: call(x()), error, message))

        add(
            "with NaN at [3, 2]",
            lambda: put(points(), (3, 2), NAN),
            ValueError,
            f"{name} contains a non-finite value nan at index [3, 2] (1 non-finite entries",
        )
        add(
            "with +inf at [3, 2]",
            lambda: put(points(), (3, 2), INF),
            ValueError,
            f"{name} contains a non-finite value inf at index [3, 2]",
        )
        add(
            "with -inf at [0, 1]",
            lambda: put(points(), (0, 1), -INF),
            ValueError,
            f"{name} contains a non-finite value -inf at index [0, 1]",
        )
        add(
            "1-D, shape (4,)",
            lambda: points()[0],
            ValueError,
            f"{name} must have shape (num_points, *event_shape), e.g. (num_points, data_dim) "
            "or (num_points, 1, height, width), got shape (4,)",
        )
        add(
            "3-D, shape (10, 2, 2)",
            lambda: points().reshape(10, 2, 2),
            ValueError,
            f"{name} has shape (10, 2, 2) but the model takes flat vectors (num_points, "
            f"data_dim = 4); flatten it explicitly with {name}.flatten(1)",
        )
        add("empty: 0 rows", lambda: points()[:0], ValueError, f"{name} is empty: shape (0, 4)")
        add(
            "wrong width: 3 columns for data_dim 4",
            lambda: points(d=3),
            ValueError,
            f"{name} has 3 columns (shape (10, 3)) but the model expects data_dim = 4",
        )
        add(
            "float32 with a float64 model",
            lambda: points().float(),
            TypeError,
            f"{name} has dtype torch.float32 but the model's parameters are torch.float64",
        )
        add(
            "int64",
            lambda: points().long(),
            TypeError,
            f"{name} must be a floating-point tensor, got dtype torch.int64",
        )
        add(
            "a NumPy array",
            lambda: points().numpy(),
            TypeError,
            f"{name} must be a torch.Tensor, got ndarray",
        )
        add(
            "with 1e160 at [3, 2] (its square overflows float64)",
            lambda: put(points(), (3, 2), 1e160),
            ValueError,
            f"{name}[3, 2] = 1e+160 is too large for torch.float64: a point of 4 entries this "
            "large has a squared norm above 1.8e+308, the dtype's largest number, so Gaussian "
            "log-densities and squared errors overflow; entries up to 6.7e+153 in magnitude work",
        )
    for entry in ("pvae.fit", "pvae.log_marginal"):  # the rest share the same checks
        name = DATA_NAMES.get(entry, "x")
        call = ESTIMATORS[entry]
        more = [
            (
                "0-D, shape ()",
                lambda: points()[0, 0],
                ValueError,
                f"{name} must have shape (num_points, *event_shape), e.g. (num_points, "
                "data_dim) or (num_points, 1, height, width), got shape ()",
            ),
            (
                "empty: 0 columns",
                lambda: points()[:, :0],
                ValueError,
                f"{name} is empty: shape (10, 0)",
            ),
            (
                "float16 with a float64 model",
                lambda: points().half(),
                TypeError,
                f"{name} has dtype torch.float16 but the model's parameters are torch.float64",
            ),
            (
                "bool",
                lambda: points() > 0.5,
                TypeError,
                f"{name} must be a floating-point tensor, got dtype torch.bool",
            ),
            (
                "complex128",
                lambda: points().to(torch.complex128),
                TypeError,
                f"{name} must be a floating-point tensor, got dtype torch.complex128",
            ),
            (
                "a nested list",
                lambda: points().tolist(),
                TypeError,
                f"{name} must be a torch.Tensor, got list",
            ),
        ]
        for bad, x, error, message in more:
            cases.append(
                Case(entry, f"`{name}` {bad}", lambda tmp, c=call, x=x: c(x()), error, message)
            )
    # Another device: 'meta' stands in for a GPU on machines without one.
    elsewhere = "on device cpu but the model's parameters are on meta; move one of them"
    cases += [
        Case(
            "pvae.fit",
            "`data` on the CPU, model and guide on another device",
            lambda tmp: pvae.fit(*on_meta(), points(), progress=False),
            TypeError,
            f"data is {elsewhere}",
        ),
        Case(
            "pvae.log_marginal",
            "`x` on the CPU, model and guide on another device",
            lambda tmp: pvae.log_marginal(*on_meta(), points(), progress=False),
            TypeError,
            f"x is {elsewhere}",
        ),
        Case(
            "pvae.diagnostics.diagnose",
            "`x` on the CPU, model and guide on another device",
            lambda tmp: diagnostics.diagnose(*on_meta(), points()),
            TypeError,
            f"x is {elsewhere}",
        ),
    ]
    return cases


def on_meta():
    model, guide = pair()
    return model.to("meta"), guide.to("meta")


def overflow_cases() -> list[Case]:
    """Finite inputs whose numbers are not finite in the pair: refused with the reason, never
    a NaN or -inf returned."""
    huge = "x[3, 2] = 1e+160 is too large for torch.float64"

    def linear():
        return pvae.build_model("linear-gaussian", 4, 2, ())

    cases = [
        Case(
            "pvae.models.LinearGaussian.log_prob",
            "`x` with 1e160 at [3, 2] (its square overflows float64)",
            lambda tmp: linear().log_prob(put(points(), (3, 2), 1e160)),
            ValueError,
            huge,
        ),
        Case(
            "pvae.models.LinearGaussian.posterior",
            "`x` with 1e160 at [3, 2] (its square overflows float64)",
            lambda tmp: linear().posterior(put(points(), (3, 2), 1e160)),
            ValueError,
            huge,
        ),
    ]
    poisoned = (
        "a finite point: the pair's numbers are not finite in torch.float64; re-run on the "
        "point, the first non-finite number is at the model's site 'x' (distribution "
        "parameter 'loc' of Normal: 4 NaN and 0 infinite of 4 entries, the first at index "
        "(0, 0)); some of the pair's parameters are not finite"
    )
    for entry, call in (
        (
            "pvae.log_marginal",
            lambda: pvae.log_marginal(*poisoned_pair(), points(), progress=False),
        ),
        ("pvae.fit", lambda: pvae.fit(*poisoned_pair(), points(), epochs=1, progress=False)),
    ):
        cases.append(
            Case(
                entry,
                "a decoder weight set to NaN (finite data)",
                lambda tmp, call=call: call(),
                pvae.NonFiniteDensityError,
                poisoned,
            )
        )
    return cases


def likelihood_cases() -> list[Case]:
    def bernoulli(entry, call, name="x"):
        return Case(
            entry,
            f"Bernoulli model, `{name}` with 0.25 at [2, 1]",
            call,
            ValueError,
            f"{name} must be binary (every entry 0 or 1) for a Bernoulli likelihood, but "
            f"{name}[2, 1] = 0.25; {GREY}",
        )

    grey = lambda: put(binary(), (2, 1), 0.25)  # noqa: E731
    outside = lambda: put(points(), (1, 1), 1.5)  # noqa: E731
    unit = "for a continuous Bernoulli likelihood"
    return [
        bernoulli("pvae.fit", lambda tmp: fit("bernoulli", grey()), "data"),
        bernoulli(
            "pvae.fit",
            lambda tmp: fit("bernoulli", binary(), validation_data=grey()),
            "validation_data",
        ),
        bernoulli("pvae.log_marginal", lambda tmp: estimate(model_name="bernoulli", x=grey())),
        bernoulli(
            "pvae.elbo_terms",
            lambda tmp: estimate(pvae.elbo_terms, "bernoulli", grey()),
        ),
        bernoulli(
            "pvae.iwae_bound",
            lambda tmp: estimate(pvae.iwae_bound, "bernoulli", grey(), num_samples=2),
        ),
        bernoulli(
            "pvae.gradient_variance",
            lambda tmp: estimate(
                pvae.gradient_variance, "bernoulli", grey(), num_draws=2, progress=False
            ),
        ),
        bernoulli(
            "pvae.diagnostics.diagnose",
            lambda tmp: estimate(diagnostics.diagnose, "bernoulli", grey()),
        ),
        Case(
            "pvae.fit",
            "Bernoulli model, `data` with 2.0 at [2, 1]",
            lambda tmp: fit("bernoulli", put(binary(), (2, 1), 2.0)),
            ValueError,
            "data must be binary (every entry 0 or 1) for a Bernoulli likelihood, but "
            "data[2, 1] = 2",
        ),
        Case(
            "BernoulliDecoder.x_dist",
            "`x` with 0.25 at [2, 1]",
            lambda tmp: BernoulliDecoder(2, 4, (8,)).x_dist(torch.zeros(10, 2), grey()),
            ValueError,
            "x must be binary (every entry 0 or 1) for a Bernoulli likelihood, but x[2, 1] = 0.25",
        ),
        Case(
            "pvae.fit",
            "continuous Bernoulli model, `data` with 1.5 at [1, 1]",
            lambda tmp: fit("continuous-bernoulli", outside()),
            ValueError,
            f"data must lie in [0, 1] {unit}, but data[1, 1] = 1.5; scale grey levels to "
            "[0, 1] (pvae.data.from_levels) or use a Normal likelihood",
        ),
        Case(
            "pvae.fit",
            "continuous Bernoulli model, `data` with -0.1 at [1, 1]",
            lambda tmp: fit("continuous-bernoulli", put(points(), (1, 1), -0.1)),
            ValueError,
            f"data must lie in [0, 1] {unit}, but data[1, 1] = -0.1",
        ),
        Case(
            "pvae.log_marginal",
            "continuous Bernoulli model, `x` with 1.5 at [1, 1]",
            lambda tmp: estimate(model_name="continuous-bernoulli", x=outside()),
            ValueError,
            f"x must lie in [0, 1] {unit}, but x[1, 1] = 1.5",
        ),
        Case(
            "pvae.diagnostics.diagnose",
            "continuous Bernoulli model, `x` with 1.5 at [1, 1]",
            lambda tmp: estimate(diagnostics.diagnose, "continuous-bernoulli", outside()),
            ValueError,
            f"x must lie in [0, 1] {unit}, but x[1, 1] = 1.5",
        ),
        Case(
            "ContinuousBernoulliDecoder.check_data",
            "`x` with NaN at [3, 2]",
            lambda tmp: ContinuousBernoulliDecoder(2, 4, (8,)).check_data(
                put(points(), (3, 2), NAN)
            ),
            ValueError,
            f"x must lie in [0, 1] {unit}, but x[3, 2] = nan",
        ),
    ]


def estimator_argument_cases() -> list[Case]:
    def lm(bad, error, message, **options):
        return Case("pvae.log_marginal", bad, lambda tmp: estimate(**options), error, message)

    positive = "must be a positive integer, got"
    memory = "max_memory must be an integer number of bytes or a string like '512MiB' or '2GB', got"
    cases = [
        lm(
            f"`num_samples={value!r}`",
            ValueError,
            f"num_samples {positive} {value!r}",
            num_samples=value,
        )
        for value in (0, -1, 1.5, True, "3", None)
    ]
    cases += [
        lm(
            f"`chunk_size={value!r}`",
            ValueError,
            f"chunk_size {positive} {value!r}",
            chunk_size=value,
        )
        for value in (0, -1, 1.5, True)
    ]
    cases += [
        lm(f"`max_memory={value!r}`", ValueError, f"{memory} {value!r}", max_memory=value)
        for value in (1.5, True, "lots", "0MiB", "-1GB", "1 PB", INF)
    ]
    cases += [
        lm("`max_memory=0`", ValueError, "max_memory must be at least 1 byte, got 0", max_memory=0),
        lm(
            "`max_memory=-1`",
            ValueError,
            "max_memory must be at least 1 byte, got -1",
            max_memory=-1,
        ),
        lm(
            "`max_memory='1.5'` (too small)",
            ValueError,
            "max_memory='1.5' is too small for this pair and data",
            max_memory="1.5",
        ),
        lm(
            "`chunk_size=4` and `max_memory='1GB'`",
            ValueError,
            "give chunk_size (4) or max_memory ('1GB'), not both",
            chunk_size=4,
            max_memory="1GB",
        ),
        lm("`seed=-1`", ValueError, "seed must be in [0, 4611686018427387903], got -1", seed=-1),
        lm("`seed=1.5`", ValueError, "seed must be an integer, got 1.5", seed=1.5),
        lm("`seed=True`", ValueError, "seed must be an integer, got True", seed=True),
        lm("`seed='0'`", ValueError, "seed must be an integer, got '0'", seed="0"),
        lm(
            "`vectorize=1`", ValueError, "vectorize must be True, False or None, got 1", vectorize=1
        ),
        lm(
            "`vectorize='yes'`",
            ValueError,
            "vectorize must be True, False or None, got 'yes'",
            vectorize="yes",
        ),
        lm(
            "`proposal='Guide'`",
            ValueError,
            "proposal must be one of ['guide', 'prior'], got 'Guide'",
            proposal="Guide",
        ),
        lm(
            "`return_log_weights='no'`",
            ValueError,
            "return_log_weights must be True or False, got 'no'",
            return_log_weights="no",
        ),
        lm(
            "`progress=1`",
            ValueError,
            "progress must be True or False, got 1",
            progress=1,
        ),
        Case(
            "pvae.log_marginal",
            "`guide=None` with `proposal='guide'`",
            lambda tmp: pvae.log_marginal(pair()[0], None, points(), progress=False),
            ValueError,
            "guide is None, but proposal='guide' needs a guide",
        ),
        Case(
            "pvae.log_marginal",
            "a point-mass guide (DeltaGuide)",
            lambda tmp: pvae.log_marginal(*pair(guide="delta"), points(), progress=False),
            ValueError,
            "the guide's site 'z' is a point mass (Delta): importance weights "
            "need a guide with a density",
        ),
        Case(
            "pvae.log_marginal",
            "`vectorize=True` for a pair that cannot broadcast",
            lambda tmp: pvae.log_marginal(
                non_broadcasting_model,
                non_broadcasting_guide,
                points(),
                num_samples=2,
                vectorize=True,
                progress=False,
            ),
            pvae.ContractError,
            "vectorize=True, but the pair does not broadcast over a plate of samples",
        ),
        Case(
            "pvae.iwae_bound",
            "`num_repeats=0`",
            lambda tmp: estimate(pvae.iwae_bound, num_samples=2, num_repeats=0),
            ValueError,
            f"num_repeats {positive} 0",
        ),
        Case(
            "pvae.iwae_bound",
            "`num_samples=True`",
            lambda tmp: estimate(pvae.iwae_bound, num_samples=True),
            ValueError,
            f"num_samples {positive} True",
        ),
        Case(
            "pvae.elbo_per_point",
            "`num_samples=0`",
            lambda tmp: estimate(pvae.elbo_per_point, num_samples=0),
            ValueError,
            f"num_samples {positive} 0",
        ),
        Case(
            "pvae.elbo_terms",
            "`chunk_size=0`",
            lambda tmp: estimate(pvae.elbo_terms, chunk_size=0),
            ValueError,
            f"chunk_size {positive} 0",
        ),
        Case(
            "pvae.elbo_terms",
            "`chunk_size=True`",
            lambda tmp: estimate(pvae.elbo_terms, chunk_size=True),
            ValueError,
            f"chunk_size {positive} True",
        ),
        Case(
            "pvae.elbo_terms",
            "`x` float64, guide in float32 (model float64)",
            lambda tmp: pvae.elbo_terms(pair()[0], pair()[1].float(), points()),
            TypeError,
            "x has dtype torch.float64 but the guide's parameters are torch.float32",
        ),
        Case(
            "pvae.bits_per_dim",
            "`data_dim=0`",
            lambda tmp: pvae.bits_per_dim(torch.tensor([-1.0]), 0),
            ValueError,
            f"data_dim {positive} 0",
        ),
        Case(
            "pvae.bits_per_dim",
            "`data_dim=True`",
            lambda tmp: pvae.bits_per_dim(torch.tensor([-1.0]), True),
            ValueError,
            f"data_dim {positive} True",
        ),
        Case(
            "pvae.bits_per_dim",
            "`num_levels=1`",
            lambda tmp: pvae.bits_per_dim(torch.tensor([-1.0]), 4, num_levels=1),
            ValueError,
            "num_levels must be an integer >= 2, got 1",
        ),
        Case(
            "pvae.bits_per_dim",
            "`num_levels=2.5`",
            lambda tmp: pvae.bits_per_dim(torch.tensor([-1.0]), 4, num_levels=2.5),
            ValueError,
            "num_levels must be an integer >= 2, got 2.5",
        ),
        Case(
            "pvae.bits_per_dim",
            "`log_px='1.0'` (a str)",
            lambda tmp: pvae.bits_per_dim("1.0", 4),
            TypeError,
            "log_px must be a number or a tensor, got str",
        ),
    ]
    return cases


def non_broadcasting_model(x):
    import pyro
    import pyro.distributions as dist

    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
        loc = z.reshape(x.shape[0], 2) @ x.new_ones(2, x.shape[1])  # drops leading dims
        pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


def non_broadcasting_guide(x):
    import pyro
    import pyro.distributions as dist

    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))


def fit_argument_cases() -> list[Case]:
    def case(bad, error, message, **options):
        return Case("pvae.fit", bad, lambda tmp: fit(**options), error, message)

    positive = "must be a positive integer, got"
    cases = [
        case(f"`{key}={value!r}`", ValueError, f"{key} {positive} {value!r}", **{key: value})
        for key, value in (
            ("epochs", 0),
            ("epochs", True),
            ("epochs", 2.0),
            ("batch_size", 0),
            ("batch_size", True),
            ("num_particles", 1.5),
            ("max_plate_nesting", 0),
        )
    ]
    cases += [
        case(
            f"`{key}=2**64`",
            ValueError,
            f"{key} must be at most 2**63 - 1 = {2**63 - 1} (torch's largest size), got {2**64}",
            **{key: 2**64},
        )
        for key in ("num_particles", "batch_size")
    ]
    cases += [
        case(
            f"`lr={value!r}`",
            ValueError,
            f"lr must be a finite real number, got {value!r}",
            lr=value,
        )
        for value in ("0.1", NAN, True)
    ]
    cases += [
        case("`lr=0`", ValueError, "lr must be > 0, got 0", lr=0),
        case("`lr=-1.0`", ValueError, "lr must be > 0, got -1.0", lr=-1.0),
        case(
            "`elbo='Trace'`",
            ValueError,
            "elbo must be one of ['iwae', 'iwae-dreg', 'meanfield', 'trace'], got 'Trace'",
            elbo="Trace",
        ),
        case(
            "`kl_weight='1'`",
            ValueError,
            "kl_weight must be a finite real number, got '1'",
            kl_weight="1",
        ),
        case(
            "`kl_weight=inf`",
            ValueError,
            "kl_weight must be a finite real number, got inf",
            kl_weight=INF,
        ),
        case("`kl_weight=-0.5`", ValueError, "kl_weight must be >= 0, got -0.5", kl_weight=-0.5),
        case(
            "`kl_weight=` a schedule returning NaN",
            ValueError,
            "kl_weight(0) must be a finite real number, got nan",
            kl_weight=lambda epoch: NAN,
        ),
        case(
            "`monitor_size=-1`",
            ValueError,
            "monitor_size must be a non-negative integer, got -1",
            monitor_size=-1,
        ),
        case(
            "`monitor_size=True`",
            ValueError,
            "monitor_size must be a non-negative integer, got True",
            monitor_size=True,
        ),
        case(
            "`validate_every_step=1`",
            ValueError,
            "validate_every_step must be True or False, got 1",
            validate_every_step=1,
        ),
        case(
            "`validation_data` with 3 columns",
            ValueError,
            "validation_data must have 4 entries per point (data_dim), got shape (5, 3)",
            validation_data=points(5, 3),
        ),
        case(
            "`validation_data` with NaN at [3, 2]",
            ValueError,
            "validation_data contains a non-finite value nan at index [3, 2]",
            validation_data=put(points(), (3, 2), NAN),
        ),
        case(
            "`validation_data` empty",
            ValueError,
            "validation_data is empty: shape (0, 4)",
            validation_data=points()[:0],
        ),
        case(
            "`validation_data` float32",
            TypeError,
            "validation_data has dtype torch.float32 but the model's parameters are torch.float64",
            validation_data=points().float(),
        ),
        case(
            "`seed=-1`",
            ValueError,
            f"seed {SEED_RANGE}, got -1",
            seed=-1,
        ),
        case(
            "`seed=1.5`",
            ValueError,
            "seed must be an integer, got 1.5",
            seed=1.5,
        ),
        case(
            "`seed=True`",
            ValueError,
            "seed must be an integer, got True",
            seed=True,
        ),
        case(
            f"`seed=2**32` ({SEED_LIMIT})",
            ValueError,
            f"seed {SEED_RANGE}, got {SEED_LIMIT}",
            seed=SEED_LIMIT,
        ),
        case(
            "`watchdog='yes'`",
            TypeError,
            "watchdog must be True, False or a pvae.training.Watchdog, got 'yes'",
            watchdog="yes",
        ),
        case(
            "`watchdog=0`",
            TypeError,
            "watchdog must be True, False or a pvae.training.Watchdog, got 0",
            watchdog=0,
        ),
        case(
            "`callback=3`",
            TypeError,
            "callback must be callable or None, got int",
            callback=3,
        ),
        case(
            "`optimizer='adam'`",
            TypeError,
            "optimizer must be a pyro.optim.PyroOptim (e.g. pvae.training.JointOptim or "
            "pyro.optim.Adam), got str",
            optimizer="adam",
        ),
        case(
            "`progress='no'`",
            ValueError,
            "progress must be True or False, got 'no'",
            progress="no",
        ),
    ]
    return cases


def schedule_cases() -> list[Case]:
    def case(function, args, options, error, message):
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in options.items())])
        return Case(
            f"pvae.{function.__name__}",
            f"`{function.__name__}({shown})`",
            lambda tmp: function(*args, **options),
            error,
            message,
        )

    return [
        case(kl_warmup, (0,), {}, ValueError, "epochs must be a positive integer, got 0"),
        case(kl_warmup, (1.5,), {}, ValueError, "epochs must be a positive integer, got 1.5"),
        case(kl_warmup, (True,), {}, ValueError, "epochs must be a positive integer, got True"),
        case(kl_warmup, (2,), {"start": -0.1}, ValueError, "start must be >= 0, got -0.1"),
        case(kl_warmup, (2,), {"start": 1.5}, ValueError, "start must be in [0, 1], got 1.5"),
        case(
            kl_warmup,
            (2,),
            {"start": "0"},
            ValueError,
            "start must be a finite real number, got '0'",
        ),
        case(kl_cyclical, (0,), {}, ValueError, "period must be a positive integer, got 0"),
        case(kl_cyclical, (4,), {"ramp": 0}, ValueError, "ramp must be > 0, got 0"),
        case(kl_cyclical, (4,), {"ramp": 1.5}, ValueError, "ramp must be in (0, 1], got 1.5"),
        case(
            kl_cyclical, (4,), {"cycles": 0}, ValueError, "cycles must be a positive integer, got 0"
        ),
        case(
            kl_cyclical,
            (4,),
            {"cycles": True},
            ValueError,
            "cycles must be a positive integer, got True",
        ),
    ]


def builder_cases() -> list[Case]:
    def model(args, options, error, message, entry="pvae.build_model"):
        shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in options.items())])
        return Case(
            entry,
            f"`build_model({shown})`",
            lambda tmp: pvae.build_model(*args, **options),
            error,
            message,
        )

    def guide(name, options, error, message, hidden=(8,), shown=None):
        """``options()`` makes the options (tensors fresh in the test's dtype); ``shown``
        describes them in the table, by default as their repr."""
        if shown is None:
            shown = ", ".join(f"{k}={v!r}" for k, v in options().items())
        call = f"build_guide({name!r}, model, {hidden!r}{', ' if shown else ''}{shown})"
        return Case(
            "pvae.build_guide",
            f"`{call}`, model a normal-fixed VAE with data_dim 4",
            lambda tmp: pvae.build_guide(name, pair()[0], hidden, **options()),
            error,
            message,
        )

    names = "['bernoulli', 'continuous-bernoulli', 'linear-gaussian', 'normal-fixed', "
    positive = "must be a positive integer, got"
    cases = [
        model(("gaussian", 4, 2), {}, ValueError, f"model must be one of {names}"),
        model(("Normal-Fixed", 4, 2), {}, ValueError, "got 'Normal-Fixed'"),
        model((None, 4, 2), {}, ValueError, "model must be one of ['bernoulli', "),
        model((["normal-fixed"], 4, 2), {}, ValueError, "got ['normal-fixed']"),
        model(("normal-fixed", 0, 2), {}, ValueError, f"data_dim {positive} 0"),
        model(("normal-fixed", "4", 2), {}, ValueError, f"data_dim {positive} '4'"),
    ]
    cases += [
        model(("normal-fixed", 4, value), {}, ValueError, f"latent_dim {positive} {value!r}")
        for value in (0, -1, 1.5, True)
    ]
    cases += [
        model(
            ("normal-fixed", 4, 2, 8),
            {},
            ValueError,
            "hidden_sizes must be a sequence of positive integers, got 8",
        ),
        model(
            ("normal-fixed", 4, 2, "8"),
            {},
            ValueError,
            "hidden_sizes must be a sequence of positive integers, got '8'",
        ),
        model(
            ("normal-fixed", 4, 2, (8, 0)),
            {},
            ValueError,
            f"every entry of hidden_sizes {positive} 0",
        ),
        model(
            ("normal-fixed", 4, 2, (8.0,)),
            {},
            ValueError,
            f"every entry of hidden_sizes {positive} 8.0",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": 0},
            ValueError,
            "variance_floor must be > 0, got 0",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": -1e-3},
            ValueError,
            "variance_floor must be > 0, got -0.001",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": "1e-3"},
            ValueError,
            "variance_floor must be a finite real number, got '1e-3'",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": NAN},
            ValueError,
            "variance_floor must be a finite real number, got nan",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": True},
            ValueError,
            "variance_floor must be a finite real number, got True",
        ),
        model(
            ("normal-shared", 4, 2),
            {"variance_floor": -1e-3},
            ValueError,
            "variance_floor must be >= 0, got -0.001",
        ),
        model(
            ("normal-shared", 4, 2),
            {"init_variance": 0},
            ValueError,
            "init_variance must be > 0, got 0",
        ),
        model(("normal-fixed", 4, 2), {"scale": 0}, ValueError, "scale must be > 0, got 0"),
        model(
            ("normal-fixed", 4, 2),
            {"scale": 1e200},
            ValueError,
            "scale must lie in [1.5e-154, 6.7e+153] in torch.float64 (where its square and the "
            "square's reciprocal are normal numbers), got 1e+200",
        ),
        model(
            ("normal-fixed", 4, 2),
            {"scale": 1e-200},
            ValueError,
            "scale must lie in [1.5e-154, 6.7e+153] in torch.float64 (where its square and the "
            "square's reciprocal are normal numbers), got 1e-200",
        ),
        model(
            ("normal-shared", 4, 2),
            {"init_variance": 1e308},
            ValueError,
            "init_variance must lie in [2.2e-308, 4.5e+307] in torch.float64 (where it and its "
            "reciprocal are normal numbers), got 1e+308",
        ),
        model(
            ("normal-shared", 4, 2),
            {"variance_floor": 1e308},
            ValueError,
            "variance_floor must lie in [2.2e-308, 4.5e+307] in torch.float64 (where it and its "
            "reciprocal are normal numbers) or be 0, got 1e+308",
        ),
        model(
            ("normal-floor", 4, 2),
            {"variance_floor": 1e308},
            ValueError,
            "variance_floor must lie in [2.2e-308, 4.5e+307] in torch.float64 (where it and its "
            "reciprocal are normal numbers) or be 0, got 1e+308",
        ),
        model(
            ("linear-gaussian", 4, 2, ()),
            {"variance": 1e308},
            ValueError,
            "variance must lie in [2.2e-308, 4.5e+307] in torch.float64 (where it and its "
            "reciprocal are normal numbers), got 1e+308",
        ),
        model(
            ("linear-gaussian", 4, 2, ()),
            {"init_scale": 1e200},
            ValueError,
            "init_scale must lie in [1.5e-154, 6.7e+153] in torch.float64",
        ),
        model(("normal-fixed", 4, 2), {"scale": -1}, ValueError, "scale must be > 0, got -1"),
        model(
            ("normal-fixed", 4, 2),
            {"variance_floor": 1e-3},
            ValueError,
            "model 'normal-fixed' has no option 'variance_floor'; its options are ['scale']",
        ),
        model(
            ("normal-network", 4, 2),
            {"variance_floor": 1e-3},
            ValueError,
            "model 'normal-network' has no option 'variance_floor'; normal-network is the "
            "unconstrained per-pixel variance; for a floor ξ use normal-floor",
        ),
        model(
            ("normal-fixed", 4, 2),
            {"variance": "shared"},
            ValueError,
            "model 'normal-fixed' has no option 'variance'",
        ),
        model(
            ("normal-fixed", 4, 2),
            {"bogus": 1},
            ValueError,
            "model 'normal-fixed' has no option 'bogus'; its options are ['scale']",
        ),
        model(
            ("bernoulli", 4, 2),
            {"variance_floor": 1e-3},
            ValueError,
            "model 'bernoulli' has no option 'variance_floor'; it takes no options",
        ),
        model(
            ("linear-gaussian", 4, 2, ()),
            {"variance": 0},
            ValueError,
            "variance must be > 0, got 0",
        ),
        model(
            ("linear-gaussian", 4, 2, ()),
            {"learn_variance": "no"},
            ValueError,
            "learn_variance must be True or False, got 'no'",
        ),
        model(
            ("linear-gaussian", 4, 2, (8,)),
            {},
            ValueError,
            "the linear-gaussian model has an affine decoder: hidden_sizes must be (), got (8,)",
        ),
        guide(
            "nope",
            lambda: {},
            ValueError,
            "guide must be one of ['delta', 'diag-normal', 'exact', 'per-point'], got 'nope'",
        ),
        guide(
            "exact",
            lambda: {},
            ValueError,
            "guide 'exact' does not fit a VAE model; choose one of ['diag-normal', 'delta', "
            "'per-point']",
            hidden=(),
        ),
        guide(
            "diag-normal",
            lambda: {},
            ValueError,
            f"every entry of hidden_sizes {positive} 0",
            hidden=(0,),
        ),
        guide(
            "diag-normal", lambda: {"scale_floor": 0}, ValueError, "scale_floor must be > 0, got 0"
        ),
        guide(
            "diag-normal",
            lambda: {"scale_floor": -1},
            ValueError,
            "scale_floor must be > 0, got -1",
        ),
        guide(
            "diag-normal",
            lambda: {"scale_floor": 1e200},
            ValueError,
            "scale_floor must lie in [1.5e-154, 6.7e+153] in torch.float64 (where its square and "
            "the square's reciprocal are normal numbers), got 1e+200",
        ),
        guide(
            "diag-normal",
            lambda: {"scale_floor": "1e-4"},
            ValueError,
            "scale_floor must be a finite real number, got '1e-4'",
        ),
        guide(
            "diag-normal",
            lambda: {"bogus": 1},
            ValueError,
            "guide 'diag-normal' has no option 'bogus'; its options are ['scale_floor']",
        ),
        guide(
            "per-point",
            lambda: {},
            ValueError,
            "the per-point guide needs data=<the training points>",
            hidden=(),
        ),
        guide(
            "per-point",
            lambda: {"data": points(d=3)},
            ValueError,
            "data must have 4 entries per point (data_dim), got shape (10, 3)",
            hidden=(),
            shown="data=<10 points with 3 columns>",
        ),
        guide(
            "per-point",
            lambda: {"data": put(points(), (3, 2), NAN)},
            ValueError,
            "data contains a non-finite value nan at index [3, 2]",
            hidden=(),
            shown="data=<10 points, NaN at [3, 2]>",
        ),
        guide(
            "per-point",
            lambda: {"num_points": 0},
            ValueError,
            f"num_points {positive} 0",
            hidden=(),
        ),
        guide(
            "per-point",
            lambda: {"num_points": True},
            ValueError,
            f"num_points {positive} True",
            hidden=(),
        ),
        Case(
            "pvae.build_guide",
            "`model` a plain function",
            lambda tmp: pvae.build_guide("diag-normal", non_broadcasting_model),
            TypeError,
            "model must state its data_dim (an integer), as the models of "
            "pvae.build_model do; got a function without one",
        ),
        Case(
            "NormalDecoder",
            "`variance='learned'`",
            lambda tmp: NormalDecoder(2, 4, variance="learned"),
            ValueError,
            "variance must be one of ['fixed', 'network', 'optimal', 'shared'], got 'learned'",
        ),
        Case(
            "NormalDecoder",
            "`variance='network', variance_floor=-1e-3`",
            lambda tmp: NormalDecoder(2, 4, variance="network", variance_floor=-1e-3),
            ValueError,
            "variance_floor must be >= 0, got -0.001",
        ),
        Case(
            "NormalDecoder",
            "`variance='network', variance_floor=inf`",
            lambda tmp: NormalDecoder(2, 4, variance="network", variance_floor=INF),
            ValueError,
            "variance_floor must be a finite real number, got inf",
        ),
        Case(
            "NormalDecoder",
            "`variance='fixed', variance_floor=1e-3`",
            lambda tmp: NormalDecoder(2, 4, variance_floor=1e-3),
            ValueError,
            "variance_floor applies to learned variances; with variance='fixed' set the "
            "variance through scale",
        ),
        Case(
            "NormalDecoder",
            "`scale=nan`",
            lambda tmp: NormalDecoder(2, 4, scale=NAN),
            ValueError,
            "scale must be a finite real number, got nan",
        ),
        Case(
            "NormalDecoder",
            "`latent_dim=True`",
            lambda tmp: NormalDecoder(True, 4),
            ValueError,
            f"latent_dim {positive} True",
        ),
        Case(
            "BernoulliDecoder",
            "`latent_dim=2.0`",
            lambda tmp: BernoulliDecoder(2.0, 4),
            ValueError,
            f"latent_dim {positive} 2.0",
        ),
        Case(
            "ContinuousBernoulliDecoder",
            "`hidden_sizes='8'`",
            lambda tmp: ContinuousBernoulliDecoder(2, 4, "8"),
            ValueError,
            "hidden_sizes must be a sequence of positive integers, got '8'",
        ),
        Case(
            "DiagNormalGuide",
            "`scale_floor=-5`",
            lambda tmp: DiagNormalGuide(4, 2, scale_floor=-5),
            ValueError,
            "scale_floor must be > 0, got -5",
        ),
        Case(
            "JointOptim",
            "`lr_decay=1.5`",
            lambda tmp: JointOptim(torch.optim.Adam, {"lr": 1e-3}, lr_decay=1.5),
            ValueError,
            "lr_decay must be in (0, 1], got 1.5",
        ),
    ]
    return cases


def gradient_and_diagnostic_cases() -> list[Case]:
    def grad(bad, message, **options):
        options = {"num_draws": 2, "progress": False, **options}
        return Case(
            "pvae.gradient_variance",
            bad,
            lambda tmp: estimate(pvae.gradient_variance, **options),
            ValueError,
            message,
        )

    def diag(bad, message, error=ValueError, **options):
        return Case(
            "pvae.diagnostics.diagnose",
            bad,
            lambda tmp: estimate(diagnostics.diagnose, **options),
            error,
            message,
        )

    too_many = f"must be at most 2**63 - 1 = {2**63 - 1} (torch's largest size), got {2**64}"
    more = [
        grad("`num_draws=2**64`", f"num_draws {too_many}", num_draws=2**64),
        diag("`num_samples=2**64`", f"num_samples {too_many}", num_samples=2**64),
    ]

    def report(bad, call, error, message):
        return Case("pvae.diagnostics.collapse_report", bad, call, error, message)

    def latent():
        return estimate(diagnostics.diagnose)

    return [
        *more,
        grad(
            "`num_draws=1`",
            "num_draws must be at least 2 to estimate a variance, got 1",
            num_draws=1,
        ),
        grad("`num_draws=True`", "num_draws must be a positive integer, got True", num_draws=True),
        grad(
            "`num_particles=0`", "num_particles must be a positive integer, got 0", num_particles=0
        ),
        grad(
            "`elbo='x'`",
            "elbo must be one of ['iwae', 'iwae-dreg', 'meanfield', 'trace'], got 'x'",
            elbo="x",
        ),
        grad("`progress='no'`", "progress must be True or False, got 'no'", progress="no"),
        diag("`threshold=0`", "threshold must be > 0, got 0", threshold=0),
        diag(
            "`threshold=True`", "threshold must be a finite real number, got True", threshold=True
        ),
        diag("`num_samples=0`", "num_samples must be a positive integer, got 0", num_samples=0),
        diag("`chunk_size=1.5`", "chunk_size must be a positive integer, got 1.5", chunk_size=1.5),
        diag(
            "`site='w'` (not a latent site)",
            "site must be a latent site of the pair, got 'w'",
            site="w",
        ),
        diag("`site=3`", "site must be the name of a latent site (a str), got 3", site=3),
        report(
            "`diagnostics='x'`",
            lambda tmp: diagnostics.collapse_report("x"),
            TypeError,
            "diagnostics must be a LatentDiagnostics, got str",
        ),
        report(
            "`reference_error=0`",
            lambda tmp: diagnostics.collapse_report(latent(), reference_error=0),
            ValueError,
            "reference_error must be > 0, got 0",
        ),
        report(
            "`reference_error=nan`",
            lambda tmp: diagnostics.collapse_report(latent(), reference_error=NAN),
            ValueError,
            "reference_error must be a finite real number, got nan",
        ),
    ]


def data_loader_cases() -> list[Case]:
    def levels(n=20, d=4):
        return torch.randint(0, 17, (n, d), generator=torch.Generator().manual_seed(0)).to(
            torch.get_default_dtype()
        )

    def from_levels(bad, error, message, make=levels, num_levels=17, **options):
        return Case(
            "pvae.data.from_levels",
            bad,
            lambda tmp: data.from_levels(make(), num_levels, **options),
            error,
            message,
        )

    def digits(bad, error, message, **options):
        return Case(
            "pvae.load_digits", bad, lambda tmp: pvae.load_digits(**options), error, message
        )

    def array(bad, error, message, make, **options):
        return Case(
            "pvae.data.load_array",
            bad,
            lambda tmp: load_array(tmp, make(), **options),
            error,
            message,
        )

    def npz(bad, error, message, **arrays):
        return Case(
            "pvae.data.load_array",
            bad,
            lambda tmp: load_npz(tmp, **{k: v() for k, v in arrays.items()}),
            error,
            message,
        )

    def mnist(bad, error, message, **options):
        return Case(
            "pvae.data.load_mnist", bad, lambda tmp: data.load_mnist(tmp, **options), error, message
        )

    whole = "levels must be whole numbers in [0, 16] (num_levels=17), but levels[1, 1] ="
    images = np.arange(80).reshape(20, 4) % 256
    dtype = "must be a floating-point torch.dtype, torch.float32 or torch.float64"
    return [
        from_levels(
            "`levels` with 0.5 at [1, 1]",
            ValueError,
            f"{whole} 0.5",
            make=lambda: put(levels(), (1, 1), 0.5),
        ),
        from_levels(
            "`levels` with 17 at [1, 1] (17 levels)",
            ValueError,
            f"{whole} 17",
            make=lambda: put(levels(), (1, 1), 17.0),
        ),
        from_levels(
            "`levels` with -1 at [1, 1]",
            ValueError,
            f"{whole} -1",
            make=lambda: put(levels(), (1, 1), -1.0),
        ),
        from_levels(
            "`levels` with NaN at [3, 2]",
            ValueError,
            "levels contains a non-finite value nan at index [3, 2]",
            make=lambda: put(levels(), (3, 2), NAN),
        ),
        from_levels(
            "`levels` int64",
            TypeError,
            "levels must be a floating-point tensor, got dtype torch.int64",
            make=lambda: levels().long(),
        ),
        from_levels(
            "`levels` float16",
            ValueError,
            f"levels.dtype {dtype}, got torch.float16",
            make=lambda: levels().half(),
        ),
        from_levels(
            "`levels` 1-D",
            ValueError,
            "levels must have shape (num_points, *event_shape), e.g. (num_points, data_dim) or "
            "(num_points, 1, height, width), got shape (4,)",
            make=lambda: levels()[0],
        ),
        from_levels(
            "`levels` empty", ValueError, "levels is empty: shape (0, 4)", make=lambda: levels()[:0]
        ),
        *(
            from_levels(
                f"`num_levels={value!r}`",
                ValueError,
                f"num_levels must be an integer >= 2, got {value!r}",
                num_levels=value,
            )
            for value in (1, 0, 2.5, True, "17")
        ),
        from_levels(
            "`binarize=True, dequantize=True`",
            ValueError,
            "binarize and dequantize exclude each other; choose one",
            binarize=True,
            dequantize=True,
        ),
        from_levels(
            "`binarize='yes'`",
            ValueError,
            "binarize must be True or False, got 'yes'",
            binarize="yes",
        ),
        from_levels(
            "`dequantize=1`", ValueError, "dequantize must be True or False, got 1", dequantize=1
        ),
        from_levels(
            "`test_fraction=0`",
            ValueError,
            "test_fraction must be in (0, 1), got 0",
            test_fraction=0,
        ),
        from_levels(
            "`test_fraction=1.5`",
            ValueError,
            "test_fraction must be in (0, 1), got 1.5",
            test_fraction=1.5,
        ),
        from_levels(
            "`test_fraction='0.2'`",
            ValueError,
            "test_fraction must be a finite real number, got '0.2'",
            test_fraction="0.2",
        ),
        from_levels("`seed=-1`", ValueError, f"seed {SEED_RANGE}, got -1", seed=-1),
        from_levels("`seed=1.5`", ValueError, "seed must be an integer, got 1.5", seed=1.5),
        from_levels(
            "`labels` 2-D, shape (20, 2)",
            ValueError,
            "labels must have one entry per point, shape (20,), got shape (20, 2)",
            labels=torch.zeros(20, 2, dtype=torch.long),
        ),
        from_levels(
            "`labels` of 19 for 20 images",
            ValueError,
            "labels must have one entry per point, shape (20,), got shape (19,)",
            labels=torch.zeros(19, dtype=torch.long),
        ),
        from_levels(
            "`labels` float",
            TypeError,
            "labels must be integer class labels, got dtype torch.float64",
            labels=torch.arange(20.0, dtype=torch.float64),
        ),
        from_levels(
            "`labels` a list",
            TypeError,
            "labels must be a torch.Tensor, got list",
            labels=list(range(20)),
        ),
        Case(
            "pvae.data.split",
            "`test_fraction=0.1` of 2 points",
            lambda tmp: data.split(points(2), test_fraction=0.1),
            ValueError,
            "test_fraction=0.1 of 2 points leaves an empty split",
        ),
        Case(
            "pvae.data.split",
            "`labels` 0-D",
            lambda tmp: data.split(points(), torch.tensor(3)),
            ValueError,
            "labels must have one entry per point, shape (10,), got shape ()",
        ),
        digits(
            "`dtype=torch.float16`",
            ValueError,
            f"dtype {dtype} (or None), got torch.float16",
            dtype=torch.float16,
        ),
        digits(
            "`dtype=torch.int64`",
            ValueError,
            f"dtype {dtype} (or None), got torch.int64",
            dtype=torch.int64,
        ),
        digits(
            "`dtype='float32'`",
            ValueError,
            f"dtype {dtype} (or None), got 'float32'",
            dtype="float32",
        ),
        digits("`seed=-1`", ValueError, f"seed {SEED_RANGE}, got -1", seed=-1),
        digits("`binarize=1`", ValueError, "binarize must be True or False, got 1", binarize=1),
        Case(
            "pvae.data.load_array",
            "a missing file",
            lambda tmp: data.load_array(tmp / "missing.npy"),
            FileNotFoundError,
            "missing.npy' does not exist (or is not a file)",
        ),
        Case(
            "pvae.data.load_array",
            "a folder",
            lambda tmp: data.load_array(tmp),
            FileNotFoundError,
            "does not exist (or is not a file)",
        ),
        Case(
            "pvae.data.load_array",
            "`path=3`",
            lambda tmp: data.load_array(3),
            TypeError,
            "path must be a file path, got int",
        ),
        Case(
            "pvae.data.load_array",
            "a .txt file",
            lambda tmp: data.load_array(damaged(tmp, b"1", "x.txt")),
            ValueError,
            "data file must be .npy or .npz, got",
        ),
        Case(
            "pvae.data.load_array",
            "a .npy header claiming 10^12 bytes (the file holds 20)",
            lambda tmp: data.load_array(damaged(tmp, crafted_npy(), "x.npy")),
            ValueError,
            "x.npy' declares 1000000000000 bytes of data but holds 20: truncated, padded or "
            "crafted, refused before reading",
        ),
        Case(
            "pvae.data.read_idx",
            "a header declaring 10^10 data bytes",
            lambda tmp: data.read_idx(
                damaged(tmp, b"\x00\x00\x08\x02" + struct.pack(">II", 10**5, 10**5), "x.idx")
            ),
            ValueError,
            "x.idx' declares shape (100000, 100000) of uint8, 10000000000 data bytes, more than "
            "max_bytes = 1073741824; pass a larger max_bytes to read it",
        ),
        Case(
            "pvae.data.load_array",
            "a .npy file that is not one",
            lambda tmp: data.load_array(damaged(tmp, b"junk", "x.npy")),
            ValueError,
            "x.npy' could not be read:",
        ),
        array(
            "an object array (pickled)",
            ValueError,
            "x.npy' could not be read: Object arrays cannot be loaded when allow_pickle=False",
            lambda: np.array([[1, "a"]] * 20, dtype=object),
        ),
        array(
            "an array of strings",
            ValueError,
            "must be numeric grey levels (bool, integer or float), got dtype <U1",
            lambda: np.array([["1", "2"]] * 20),
        ),
        array(
            "a complex array",
            ValueError,
            "must be numeric grey levels (bool, integer or float), got dtype complex128",
            lambda: np.ones((20, 4), complex),
        ),
        array(
            "1-D, shape (20,)",
            ValueError,
            "must be a non-empty (n, ...) array of images, got shape (20,)",
            lambda: np.arange(20),
        ),
        array(
            "0 images, shape (0, 4)",
            ValueError,
            "must be a non-empty (n, ...) array of images, got shape (0, 4)",
            lambda: np.zeros((0, 4)),
        ),
        array(
            "NaN at [0, 1]",
            ValueError,
            "levels contains a non-finite value nan at index [0, 1]",
            lambda: np.array([[1.0, NAN]] * 20),
        ),
        array(
            "300 in 8-bit images",
            ValueError,
            "levels must be whole numbers in [0, 255] (num_levels=256), but levels[0, 0] = 300",
            lambda: np.full((20, 4), 300),
        ),
        array("-3", ValueError, "but levels[0, 0] = -3", lambda: np.full((20, 4), -3)),
        array(
            "fractional levels 0.5",
            ValueError,
            "but levels[0, 0] = 0.5",
            lambda: np.full((20, 4), 0.5),
        ),
        array(
            "`dtype=torch.float16`",
            ValueError,
            f"dtype {dtype} (or None), got torch.float16",
            lambda: images,
            dtype=torch.float16,
        ),
        array(
            "`num_levels=1`",
            ValueError,
            "num_levels must be an integer >= 2, got 1",
            lambda: images,
            num_levels=1,
        ),
        npz("a .npz without 'x'", ValueError, "has no array 'x' (it has ['a'])", a=lambda: images),
        npz(
            "labels 'y' 2-D, shape (20, 2)",
            ValueError,
            "labels 'y' in",
            x=lambda: images,
            y=lambda: np.zeros((20, 2), dtype=np.int64),
        ),
        npz(
            "labels 'y' float",
            ValueError,
            "must be integer classes, one per image, shape (20,), got shape (20,) of float64",
            x=lambda: images,
            y=lambda: np.arange(20) + 0.5,
        ),
        npz(
            "19 labels 'y' for 20 images",
            ValueError,
            "got shape (19,) of int64",
            x=lambda: images,
            y=lambda: np.zeros(19, dtype=np.int64),
        ),
        mnist(
            "`kind='kmnist'`",
            ValueError,
            "kind must be one of ['fashion-mnist', 'mnist'], got 'kmnist'",
            kind="kmnist",
        ),
        mnist("`seed=-1`", ValueError, f"seed {SEED_RANGE}, got -1", seed=-1),
        mnist(
            "`dtype=torch.float16`",
            ValueError,
            f"dtype {dtype} (or None), got torch.float16",
            dtype=torch.float16,
        ),
        mnist(
            "`binarize='yes'`",
            ValueError,
            "binarize must be True or False, got 'yes'",
            binarize="yes",
        ),
        mnist(
            "`checksums='none'`",
            ValueError,
            "checksums must be 'official', None or a dict file name -> md5, got 'none'",
            checksums="none",
        ),
        Case(
            "pvae.data.load_mnist",
            "a missing folder",
            lambda tmp: data.load_mnist(tmp / "missing"),
            FileNotFoundError,
            "missing' does not exist (or is not a folder)",
        ),
        Case(
            "pvae.data.load_mnist",
            "a folder without the IDX files",
            lambda tmp: data.load_mnist(tmp),
            FileNotFoundError,
            "neither 'train-images-idx3-ubyte.gz' nor 'train-images-idx3-ubyte' is in the "
            "MNIST folder",
        ),
        Case(
            "pvae.data.load_mnist",
            "`root=3`",
            lambda tmp: data.load_mnist(3),
            TypeError,
            "root must be a folder or a base URL, got int",
        ),
        Case(
            "pvae.data.read_idx",
            "a file that is not IDX",
            lambda tmp: data.read_idx(damaged(tmp, b"\x01\x02\x08\x01", "x.idx")),
            ValueError,
            "is not an IDX file: it must start with bytes 00 00, got 01 02",
        ),
        Case(
            "pvae.data.write_idx",
            "a bool array",
            lambda tmp: data.write_idx(tmp / "x.idx", np.ones(3, bool)),
            ValueError,
            "array has dtype bool, which IDX cannot store",
        ),
        Case(
            "pvae.data.fetch",
            "`md5='xyz'`",
            lambda tmp: data.fetch(damaged(tmp, b"1", "x.bin"), md5="xyz"),
            ValueError,
            "md5 must be an md5 digest of 32 hex digits or None, got 'xyz'",
        ),
        Case(
            "pvae.data.fetch",
            "an ftp:// URL",
            lambda tmp: data.fetch("ftp://host/x.gz"),
            ValueError,
            "source URL must be http://, https:// or file://, got 'ftp://host/x.gz'",
        ),
        Case(
            "pvae.data.linear_gaussian_data",
            "`num_points=0`",
            lambda tmp: data.linear_gaussian_data(0, 4, 2),
            ValueError,
            "num_points must be a positive integer, got 0",
        ),
        Case(
            "pvae.data.linear_gaussian_data",
            "`noise_variance=0`",
            lambda tmp: data.linear_gaussian_data(10, 4, 2, noise_variance=0),
            ValueError,
            "noise_variance must be > 0, got 0",
        ),
        Case(
            "pvae.data.linear_gaussian_data",
            "`seed=1.5`",
            lambda tmp: data.linear_gaussian_data(10, 4, 2, seed=1.5),
            ValueError,
            "seed must be an integer, got 1.5",
        ),
        Case(
            "pvae.data.linear_gaussian_data",
            "`dtype=torch.int64`",
            lambda tmp: data.linear_gaussian_data(10, 4, 2, dtype=torch.int64),
            ValueError,
            f"dtype {dtype} (or None), got torch.int64",
        ),
        Case(
            "pvae.data.data_with_spectrum",
            "eigenvalues with NaN",
            lambda tmp: data.data_with_spectrum([1.0, NAN], 10),
            ValueError,
            "eigenvalues must be finite and >= 0, got [1.0, nan]",
        ),
        Case(
            "pvae.data.data_with_spectrum",
            "`eigenvalues='ab'`",
            lambda tmp: data.data_with_spectrum("ab", 10),
            ValueError,
            "eigenvalues must be a non-empty 1-D sequence of numbers, got 'ab'",
        ),
        Case(
            "pvae.data.data_with_spectrum",
            "`num_points` = d",
            lambda tmp: data.data_with_spectrum([1.0, 2.0], 2),
            ValueError,
            "num_points must exceed the dimension 2 (one more for the mean), got 2",
        ),
        Case(
            "pvae.data.data_with_spectrum",
            "`dtype=torch.int64`",
            lambda tmp: data.data_with_spectrum([1.0, 2.0], 10, dtype=torch.int64),
            ValueError,
            f"dtype {dtype} (or None), got torch.int64",
        ),
    ]


def checkpoint_cases() -> list[Case]:
    return [
        Case(
            "pvae.load",
            "a missing file",
            lambda tmp: pvae.load(tmp / "missing.pt"),
            FileNotFoundError,
            "missing.pt' does not exist",
        ),
        Case(
            "pvae.load",
            "a folder",
            lambda tmp: pvae.load(tmp),
            pvae.checkpoint.CheckpointError,
            "is a directory, not a checkpoint file",
        ),
        Case(
            "pvae.load",
            "an empty file",
            lambda tmp: pvae.load(damaged(tmp, b"")),
            pvae.checkpoint.CheckpointError,
            "is empty (0 bytes)",
        ),
        Case(
            "pvae.load",
            "a file that is not a torch file",
            lambda tmp: pvae.load(damaged(tmp, b"not a checkpoint")),
            pvae.checkpoint.CheckpointError,
            "could not be read: it is not a torch file (it begins with b'not a checkpoint')",
        ),
        Case(
            "pvae.load",
            "a truncated checkpoint",
            lambda tmp: pvae.load(damaged(tmp, checkpoint(tmp).read_bytes()[:2000], "cut.pt")),
            pvae.checkpoint.CheckpointError,
            "could not be read: it is truncated or corrupt",
        ),
        Case(
            "pvae.load",
            "a bare state_dict",
            lambda tmp: pvae.load(save_torch(tmp, {"weight": torch.zeros(2)})),
            pvae.checkpoint.CheckpointError,
            "is not a pvae checkpoint: it is a torch file holding a dict with keys ['weight']",
        ),
        Case(
            "pvae.load",
            "`path=None`",
            lambda tmp: pvae.load(None),
            TypeError,
            "path must be a file path (str or os.PathLike), got NoneType",
        ),
        Case(
            "pvae.save",
            "a plain-function model",
            lambda tmp: pvae.save(tmp / "x.pt", non_broadcasting_model, pair()[1]),
            ValueError,
            "model was not built by pvae.build_model/build_guide",
        ),
        Case(
            "pvae.save",
            "a model with a NaN weight",
            lambda tmp: pvae.save(tmp / "x.pt", *poisoned_pair()),
            ValueError,
            "holds 1 NaN and 0 infinite values; refusing to write a non-finite checkpoint",
        ),
        Case(
            "pvae.save",
            "`config` holding a tensor",
            lambda tmp: pvae.save(tmp / "x.pt", *pair(), config={"a": torch.zeros(2)}),
            TypeError,
            "config['a'] is a Tensor",
        ),
        Case(
            "pvae.save",
            "`optimizer='adam'`",
            lambda tmp: pvae.save(tmp / "x.pt", *pair(), optimizer="adam"),
            TypeError,
            "optimizer must be a pyro.optim.PyroOptim (with get_state()), got str",
        ),
        Case(
            "pvae.save",
            "`config=[1, 2]` (not a dict)",
            lambda tmp: pvae.save(tmp / "x.pt", *pair(), config=[1, 2]),
            TypeError,
            "config must be a dict of plain values, got list",
        ),
        Case(
            "pvae.save",
            "`history='abc'` (not a list of dicts)",
            lambda tmp: pvae.save(tmp / "x.pt", *pair(), history="abc"),
            TypeError,
            "history must be a list of per-epoch dicts (pvae.fit's History), got str",
        ),
        Case(
            "pvae.save",
            "model and guide swapped",
            lambda tmp: pvae.save(tmp / "x.pt", *reversed(pair())),
            ValueError,
            "model was built by pvae.build_guide ('diag-normal'), not pvae.build_model",
        ),
    ]


def save_torch(tmp: Path, payload) -> Path:
    torch.save(payload, tmp / "other.pt")
    return tmp / "other.pt"


def poisoned_pair():
    model, guide = pair()
    with torch.no_grad():
        next(model.parameters())[0, 0] = NAN
    return model, guide


def collapse_cases() -> list[Case]:
    def prop(bad, call, error, message, entry="pvae.theory.proposition1"):
        return Case(entry, bad, call, error, message)

    def sweep(bad, error, message, x=None, variances=(1.0,), **options):
        options = {"latent_dim": 2, "epochs": 1, "progress": False, **options}
        return Case(
            "pvae.experiments.gamma_sweep",
            bad,
            lambda tmp: experiments.gamma_sweep(
                points() if x is None else x(), variances, **options
            ),
            error,
            message,
        )

    equal = "data must have points that differ (a positive variance about their mean), got"
    theta = lambda: theory.proposition1()  # noqa: E731
    return [
        prop(
            "`alpha=-1`",
            lambda tmp: theory.proposition1(-1),
            ValueError,
            "alpha must be >= 0, got -1",
        ),
        prop(
            "`alpha=True`",
            lambda tmp: theory.proposition1(True),
            ValueError,
            "alpha must be a finite real number, got True",
        ),
        prop(
            "`data` with NaN at [3, 2]",
            lambda tmp: theory.proposition1(data=put(points(), (3, 2), NAN)),
            ValueError,
            "data contains a non-finite value nan at index [3, 2]",
        ),
        prop(
            "`data` one point",
            lambda tmp: theory.proposition1(data=points(1)),
            ValueError,
            f"{equal} 1 point(s) all equal to",
        ),
        prop(
            "`data` all points equal",
            lambda tmp: theory.proposition1(data=torch.ones(3, 2)),
            ValueError,
            f"{equal} 3 point(s) all equal to [1.0, 1.0]",
        ),
        prop(
            "`theta` of the wrong shape",
            lambda tmp: theta().energy(torch.zeros(3)),
            ValueError,
            "theta must be a vector of shape (9,) like flat(), got (3,)",
            "pvae.theory.Proposition1.energy",
        ),
        prop(
            "`theta` with NaN",
            lambda tmp: theta().load(torch.full((9,), NAN)),
            ValueError,
            "theta must be finite, but theta[0] (loc[0, 0]) = nan",
            "pvae.theory.Proposition1.load",
        ),
        prop(
            "`delta=0`",
            lambda tmp: theta().set_reconstructing(0),
            ValueError,
            "delta must be > 0, got 0",
            "pvae.theory.Proposition1.set_reconstructing",
        ),
        prop(
            "`data` all points equal",
            lambda tmp: theory.collapsed_log_likelihood(torch.ones(3, 2)),
            ValueError,
            f"{equal} 3 point(s)",
            "pvae.theory.collapsed_log_likelihood",
        ),
        prop(
            "`eigenvalues` with NaN",
            lambda tmp: theory.active_dimensions(torch.tensor([1.0, NAN]), 1.0, 2),
            ValueError,
            "eigenvalues must be finite, but eigenvalues[1] = nan",
            "pvae.theory.active_dimensions",
        ),
        prop(
            "`eigenvalues` a list",
            lambda tmp: theory.active_dimensions([1.0, 2.0], 1.0, 2),
            ValueError,
            "eigenvalues must be a 1-D torch.Tensor, got list",
            "pvae.theory.active_dimensions",
        ),
        prop(
            "`variance=0`",
            lambda tmp: theory.active_dimensions(torch.ones(2), 0, 2),
            ValueError,
            "variance must be > 0, got 0",
            "pvae.theory.active_dimensions",
        ),
        sweep(
            "`variances=[0.0]`",
            ValueError,
            "every entry of variances must be > 0, got 0.0",
            variances=[0.0],
        ),
        sweep(
            "`variances=1.0` (not a sequence)",
            ValueError,
            "variances must be a sequence of numbers γ > 0, got 1.0",
            variances=1.0,
        ),
        sweep("`variances=[]`", ValueError, "variances must name at least one γ", variances=[]),
        sweep(
            "`variances=[0.1, 0.1]`",
            ValueError,
            "variances must not repeat a γ, got [0.1, 0.1]",
            variances=[0.1, 0.1],
        ),
        sweep("`seed=-1`", ValueError, f"seed {SEED_RANGE}, got -1", seed=-1),
        sweep("`seed=1.5`", ValueError, "seed must be an integer, got 1.5", seed=1.5),
        sweep(
            "`data` one point",
            ValueError,
            "data needs at least 2 points for a covariance, got shape (1, 4)",
            x=lambda: points(1),
        ),
        Case(
            "pvae.guides.per_point_normal.exact_posterior_guide",
            "a VAE (not linear-Gaussian)",
            lambda tmp: pvae.guides.exact_posterior_guide(pair()[0], points()),
            TypeError,
            "model must be a pvae.models.LinearGaussian, got VAE",
        ),
        Case(
            "pvae.guides.per_point_normal.exact_posterior_guide",
            "`data` with 3 columns for data_dim 4",
            lambda tmp: pvae.guides.exact_posterior_guide(
                pair("linear-gaussian", "exact")[0], points(d=3)
            ),
            ValueError,
            "data must have 4 entries per point (data_dim), got shape (10, 3)",
        ),
        Case(
            "pvae.likelihoods.SoftThresholdDecoder",
            "`alpha=nan`",
            lambda tmp: likelihoods.SoftThresholdDecoder(1, 2, alpha=NAN),
            ValueError,
            "alpha must be a finite real number, got nan",
        ),
    ]


def depth_cases() -> list[Case]:
    def setting(bad, error, message, **changes):
        return Case(
            "pvae.experiments.CollapseDepthSettings",
            bad,
            lambda tmp: settings(**changes),
            error,
            message,
        )

    split = lambda n=10: data.split(points(n))  # noqa: E731
    return [
        setting(
            "`depths=()`", ValueError, "depths must name at least one depth, got ()", depths=()
        ),
        setting(
            "`depths=(1, 1)`",
            ValueError,
            "depths must not repeat a depth, got (1, 1)",
            depths=(1, 1),
        ),
        setting(
            "`depths=(0,)`",
            ValueError,
            "every entry of depths must be a positive integer, got 0",
            depths=(0,),
        ),
        setting(
            "`depths=1`",
            ValueError,
            "depths must be a sequence of positive integers, got 1",
            depths=1,
        ),
        setting(
            "`variants=('gan',)`",
            ValueError,
            "variants must name one or more of ['ae', 'vae', 'vae-warmup'], none twice, got "
            "('gan',)",
            variants=("gan",),
        ),
        setting(
            "`seeds=(1, 1)`",
            ValueError,
            "seeds must name at least one seed, none twice, got (1, 1)",
            seeds=(1, 1),
        ),
        setting(
            "`seeds=(-1,)`",
            ValueError,
            f"every entry of seeds must be in [0, {TOP}], got -1",
            seeds=(-1,),
        ),
        setting("`width=0`", ValueError, "width must be a positive integer, got 0", width=0),
        setting("`lr=0`", ValueError, "lr must be > 0, got 0", lr=0),
        setting(
            "`epochs=2, warmup_epochs=2`",
            ValueError,
            "warmup_epochs must be < epochs (=2)",
            epochs=2,
            warmup_epochs=2,
        ),
        setting("`seed=-1`", ValueError, f"seed {SEED_RANGE}, got -1", seed=-1),
        setting("`seed=True`", ValueError, "seed must be an integer, got True", seed=True),
        setting("`data=''`", ValueError, "data must be a non-empty name, got ''", data=""),
        setting(
            "`data_root=3`",
            ValueError,
            "data_root must be a folder or base URL (a str) or None, got 3",
            data_root=3,
        ),
        setting(
            "`max_points=0`",
            ValueError,
            "max_points must be a positive integer, got 0",
            max_points=0,
        ),
        setting("`init_gamma=0`", ValueError, "init_gamma must be > 0, got 0", init_gamma=0),
        Case(
            "pvae.experiments.collapse_depth.load_data",
            "`data='fashion-mnist'` without `data_root`",
            lambda tmp: collapse_depth.load_data(settings(data="fashion-mnist")),
            ValueError,
            "data fashion-mnist needs data_root, the folder (or base URL) of its four IDX files",
        ),
        Case(
            "pvae.experiments.collapse_depth.load_data",
            "`data='cifar'`",
            lambda tmp: collapse_depth.load_data(settings(data="cifar")),
            ValueError,
            "data must be one of ['digits', 'fashion-mnist', 'linear-gaussian', 'mnist'] or the "
            "path of a .npy or .npz file, got 'cifar'",
        ),
        Case(
            "pvae.experiments.run_collapse_depth",
            "`settings='x'`",
            lambda tmp: experiments.run_collapse_depth(tmp, settings="x"),
            TypeError,
            "settings must be a CollapseDepthSettings, got str",
        ),
        Case(
            "pvae.experiments.run_collapse_depth",
            "`data` a tensor",
            lambda tmp: experiments.run_collapse_depth(tmp, data=points()),
            TypeError,
            "data must be a pvae.data.Split, got Tensor",
        ),
        Case(
            "pvae.experiments.run_collapse_depth",
            "`max_points=1`",
            lambda tmp: tiny_depth_run(tmp, split(), max_points=1),
            ValueError,
            "the training data need at least 2 points (γ starts at their variance), got 1",
        ),
        Case(
            "pvae.experiments.run_collapse_depth",
            "`progress='no'`",
            lambda tmp: experiments.run_collapse_depth(tmp, data=split(), progress="no"),
            ValueError,
            "progress must be True or False, got 'no'",
        ),
        Case(
            "pvae.fit",
            "`model=None`",
            lambda tmp: pvae.fit(None, pair()[1], points(), progress=False),
            TypeError,
            "model must be a Pyro model, a callable such as a PyroModule or a function of x, "
            "got NoneType",
        ),
        Case(
            "pvae.fit",
            "`guide=None`",
            lambda tmp: pvae.fit(pair()[0], None, points(), progress=False),
            TypeError,
            "guide must be a Pyro guide, a callable such as a PyroModule or a function of x, "
            "got NoneType",
        ),
        Case(
            "pvae.log_marginal",
            "`guide=3`",
            lambda tmp: pvae.log_marginal(pair()[0], 3, points(), progress=False),
            TypeError,
            "guide must be a Pyro guide, a callable such as a PyroModule or a function of x (or "
            "None for a prior proposal), got int",
        ),
        Case(
            "pvae.log_marginal",
            "`obs_site=3`",
            lambda tmp: estimate(obs_site=3),
            ValueError,
            "obs_site must be the name of a sample site (a str) or None, got 3",
        ),
        Case(
            "pvae.log_marginal",
            "`obs_site='y'` (the model observes 'x')",
            lambda tmp: estimate(obs_site="y"),
            pvae.ContractError,
            "obs_site must name an observed site of the model inside the data plate, got 'y'; "
            "its observed sites are ['x']",
        ),
        Case(
            "pvae.diagnostics.reconstruction_error",
            "`site=3`",
            lambda tmp: estimate(diagnostics.reconstruction_error, site=3),
            ValueError,
            "site must be the name of a latent site (a str), got 3",
        ),
        Case(
            "pvae.diagnostics.mean_error",
            "`x` with NaN at [3, 2]",
            lambda tmp: diagnostics.mean_error(put(points(), (3, 2), NAN)),
            ValueError,
            "x contains a non-finite value nan at index [3, 2]",
        ),
    ]


def iwae_vs_elbo_cases() -> list[Case]:
    from pvae.experiments import iwae_vs_elbo

    def setting(bad, message, **changes):
        return Case(
            "pvae.experiments.iwae_vs_elbo.IWAEvsELBOSettings",
            bad,
            lambda tmp: iwae_vs_elbo.IWAEvsELBOSettings(**changes),
            ValueError,
            message,
        )

    return [
        setting(
            "`num_particles=1`",
            "num_particles must be at least 2 (with K = 1 IWAE_K is the ELBO), got 1",
            num_particles=1,
        ),
        setting(
            "`seeds=(0, 0)`",
            "seeds must name at least one seed, none twice, got (0, 0)",
            seeds=(0, 0),
        ),
        setting("`seeds=0`", "seeds must be a sequence of seeds, got 0", seeds=0),
        setting(
            "`ais_steps=-1`",
            "ais_steps must be a non-negative integer (0: no AIS), got -1",
            ais_steps=-1,
        ),
        Case(
            "pvae.experiments.iwae_vs_elbo.run_iwae_vs_elbo",
            "`settings='x'`",
            lambda tmp: iwae_vs_elbo.run_iwae_vs_elbo(tmp, settings="x"),
            TypeError,
            "settings must be an IWAEvsELBOSettings, got str",
        ),
        Case(
            "pvae.experiments.iwae_vs_elbo.run_iwae_vs_elbo",
            "`data` a tensor",
            lambda tmp: iwae_vs_elbo.run_iwae_vs_elbo(tmp, data=points()),
            TypeError,
            "data must be a pvae.data.Split, got Tensor",
        ),
    ]


def construction_cases() -> list[Case]:
    from pvae.guides.one_dimensional import OneDimensionalGuide
    from pvae.models.mattei_frellsen import MatteiFrellsen
    from pvae.models.one_dimensional import OneDimensional

    def mf(bad, error, message, **options):
        return Case(
            "pvae.models.mattei_frellsen.MatteiFrellsen",
            bad,
            lambda tmp: MatteiFrellsen(points(), **options),
            error,
            message,
        )

    return [
        mf(
            "`point=10` (10 points)",
            ValueError,
            "point must be an index into data (0..9), got 10",
            point=10,
        ),
        mf(
            "`point=True`",
            ValueError,
            "point must be an index into data (0..9), got True",
            point=True,
        ),
        mf("`sharpness=-1`", ValueError, "sharpness must be >= 0, got -1", sharpness=-1),
        mf(
            "`variance_floor=2`",
            ValueError,
            "variance_floor must be in [0, 1], got 2",
            variance_floor=2,
        ),
        Case(
            "pvae.log_marginal",
            "MatteiFrellsen model (data_dim 4), `x` with 3 columns",
            lambda tmp: pvae.log_marginal(
                MatteiFrellsen(points()),
                None,
                points(d=3),
                proposal="prior",
                num_samples=2,
                progress=False,
            ),
            ValueError,
            "x has 3 columns (shape (10, 3)) but the model expects data_dim = 4",
        ),
        Case(
            "pvae.models.mattei_frellsen.MatteiFrellsen.log_prob",
            "`x` with 3 columns",
            lambda tmp: MatteiFrellsen(points()).log_prob(points(d=3)),
            ValueError,
            "x must have 4 entries per point (data_dim), got shape (10, 3)",
        ),
        Case(
            "pvae.models.one_dimensional.OneDimensional",
            "`weight='a'`",
            lambda tmp: OneDimensional("a", 0.0, 1.0),
            ValueError,
            "weight must be a finite real number, got 'a'",
        ),
        Case(
            "pvae.models.one_dimensional.OneDimensional",
            "`bias=nan`",
            lambda tmp: OneDimensional(1.0, NAN, 1.0),
            ValueError,
            "bias must be a finite real number, got nan",
        ),
        Case(
            "pvae.models.one_dimensional.OneDimensional",
            "`precision=0`",
            lambda tmp: OneDimensional(1.0, 0.0, 0),
            ValueError,
            "precision must be > 0, got 0",
        ),
        Case(
            "pvae.models.one_dimensional.OneDimensional.elbo",
            "`scale=0`",
            lambda tmp: OneDimensional(1.0, 0.0, 1.0).elbo(torch.zeros(1, 1), 0.0, 0.0),
            ValueError,
            "scale must be > 0, got 0.0",
        ),
        Case(
            "pvae.guides.one_dimensional.OneDimensionalGuide",
            "`loc=nan`",
            lambda tmp: OneDimensionalGuide(NAN, 1.0),
            ValueError,
            "loc must be a finite real number, got nan",
        ),
        Case(
            "pvae.log_marginal",
            "OneDimensional model, `x` with 2 columns",
            lambda tmp: pvae.log_marginal(
                OneDimensional(1.0, 0.0, 1.0),
                OneDimensionalGuide(0.0, 1.0),
                torch.zeros(3, 2),
                num_samples=2,
                progress=False,
            ),
            ValueError,
            "x has 2 columns (shape (3, 2)) but the model expects data_dim = 1",
        ),
    ]


def task_cases() -> list[Case]:
    """pvae.tasks.run_tasks, sharded_log_marginal and tune_trainable: checked before any Ray."""
    from pvae.tasks import Task, run_tasks

    one = [Task("a", print)]

    def tasks(bad, message, items=one, **options):
        return Case(
            "pvae.tasks.run_tasks",
            bad,
            lambda tmp: run_tasks(items, progress=False, **options),
            ValueError,
            message,
        )

    def sharded(bad, message, **options):
        return Case(
            "pvae.sharded_log_marginal",
            bad,
            lambda tmp: pvae.sharded_log_marginal(
                *pair(), points(), ray=None, progress=False, **options
            ),
            ValueError,
            message,
        )

    def tuner(bad, error, message, build=lambda config: pair(), held=None, **options):
        return Case(
            "pvae.tune_trainable",
            bad,
            lambda tmp: pvae.tune_trainable(
                build, points(), points() if held is None else held, **options
            ),
            error,
            message,
        )

    return [
        tasks("two tasks named `a`", "tasks must have different names, got ['a', 'a']", one * 2),
        tasks(
            "`ray=''`",
            "ray must be None (this process), True (a local or the default Ray) or an address "
            "such as 'auto' or 'ray://HOST:10001', got ''",
            ray="",
        ),
        tasks("`cpus_per_task=0`", "cpus_per_task must be > 0, got 0", cpus_per_task=0),
        tasks("`gpus_per_task=-1`", "gpus_per_task must be", gpus_per_task=-1),
        tasks(
            "`gpus_per_task=1.5`",
            "gpus_per_task above 1 must be a whole number of GPUs (a fraction shares one), got 1.5",
            ray=True,
            gpus_per_task=1.5,
        ),
        tasks(
            "`gpus_per_task=0.5` with `ray=None`",
            "gpus_per_task=0.5 sets a Ray task's resources, but ray=None runs the tasks in this "
            "process: pass ray=True (or an address)",
            gpus_per_task=0.5,
        ),
        tasks("`retries=-1`", "retries must be an int >= 0, got -1", retries=-1),
        tasks(
            "`resume=True` without a record",
            "resume=True needs a record folder to resume from, got record=None",
            resume=True,
        ),
        sharded(
            "`num_shards=11` for 10 points",
            "num_shards must be at most the number of points (10), got 11",
            num_shards=11,
        ),
        sharded("`num_shards=0`", "num_shards must be a positive integer, got 0", num_shards=0),
        sharded(
            "`first_point=3`",
            "first_point is set by sharded_log_marginal itself (got first_point=3)",
            first_point=3,
        ),
        sharded("`seed=-1`", "seed must be in [0, 4611686018427387903], got -1", seed=-1),
        sharded(
            "`num_samples=0` (refused here, not in each shard)",
            "num_samples must be a positive integer, got 0",
            num_samples=0,
        ),
        sharded(
            "`proposal='bogus'`",
            "proposal must be one of ['guide', 'prior'], got 'bogus'",
            proposal="bogus",
        ),
        Case(
            "pvae.sharded_log_marginal",
            "a Delta guide (no density; refused here, not in each shard)",
            lambda tmp: pvae.sharded_log_marginal(
                *pair(guide="delta"), points(), ray=None, progress=False
            ),
            ValueError,
            "the guide's site 'z' is a point mass (Delta): importance weights need a guide with "
            "a density",
        ),
        Case(
            "pvae.sharded_log_marginal",
            "an unknown keyword `foo=1`",
            lambda tmp: pvae.sharded_log_marginal(*pair(), points(), ray=None, foo=1),
            TypeError,
            "log_marginal got an unexpected keyword argument 'foo'",
        ),
        tuner("`epochs=0`", ValueError, "epochs must be a positive integer, got 0", epochs=0),
        tuner(
            "`callback=print`",
            ValueError,
            "callback is set by tune_trainable itself, got callback=<built-in function print>",
            epochs=1,
            callback=print,
        ),
        tuner(
            "`held_out` of another width",
            ValueError,
            "held_out",
            epochs=1,
            held=points(d=3),
        ),
        tuner(
            "`held_out` float16 beside float64 `train`",
            TypeError,
            "held_out must have train's dtype and device (torch.float64, cpu), got "
            "torch.float16, cpu",
            epochs=1,
            held=points().half(),
        ),
        tuner(
            "`elbo='bogus'` (refused here, not in each trial)",
            ValueError,
            "elbo must be one of",
            epochs=1,
            elbo="bogus",
        ),
        tuner("`lr=-1`", ValueError, "lr must be", epochs=1, lr=-1),
        tuner(
            "an unknown keyword `foo=1`",
            TypeError,
            "fit got an unexpected keyword argument 'foo'",
            epochs=1,
            foo=1,
        ),
        tuner(
            "`build_pair=None`",
            TypeError,
            "build_pair must be a function config → (model, guide), got None",
            build=None,
            epochs=1,
        ),
    ]


def plot_cases() -> list[Case]:
    def case(entry, bad, call, error, message):
        return Case(f"pvae.plots.{entry}", bad, lambda tmp: call(), error, message)

    images = np.zeros((3, 4))
    return [
        case(
            "plot_history",
            "`history=[]`",
            lambda: plots.plot_history([]),
            ValueError,
            "history is empty: nothing to plot",
        ),
        case(
            "plot_history",
            "`history=[{}]`",
            lambda: plots.plot_history([{}]),
            ValueError,
            "history must be a list of per-epoch dicts with 'epoch' and 'loss'",
        ),
        case(
            "plot_khat",
            "`khat='abc'`",
            lambda: plots.plot_khat("abc"),
            TypeError,
            "khat must be a tensor or an array of real numbers, got str",
        ),
        case(
            "plot_khat",
            "`khat` 3-D",
            lambda: plots.plot_khat(np.zeros((2, 2, 2))),
            ValueError,
            "khat must have shape (n,) or (series, n), got shape (2, 2, 2)",
        ),
        case(
            "plot_log_marginal",
            "`results={'a': 3}`",
            lambda: plots.plot_log_marginal({"a": 3}),
            TypeError,
            "results['a'] must be an ImportanceEstimate or its summary dict, got int",
        ),
        case(
            "plot_reconstructions",
            "3 images, 2 reconstructions",
            lambda: plots.plot_reconstructions(images, images[:2], image_shape=(2, 2)),
            ValueError,
            "reconstructions must have one image per image of x (3), got 2",
        ),
        case(
            "plot_reconstructions",
            "`image_shape=(3, 2)` for 4 pixels",
            lambda: plots.plot_reconstructions(images, images, image_shape=(3, 2)),
            ValueError,
            "x has 4 pixels per image (shape (3, 4)), but image_shape (3, 2) has 6",
        ),
        case(
            "plot_samples",
            "images with NaN",
            lambda: plots.plot_samples(np.full((3, 4), NAN), image_shape=(2, 2)),
            ValueError,
            "images contains a non-finite value nan at index [0, 0]",
        ),
        case(
            "plot_latent_scatter",
            "float labels",
            lambda: plots.plot_latent_scatter(np.zeros((3, 2)), [0.5, 1, 2]),
            ValueError,
            "labels must be integer class labels, got labels[0] = 0.5",
        ),
        case(
            "latent_grid_codes",
            "`grid_size=1`",
            lambda: plots.latent_grid_codes(1, (-1, 1)),
            ValueError,
            "grid_size must be at least 2, got 1",
        ),
        case(
            "plot_scale_histograms",
            "a negative scale",
            lambda: plots.plot_scale_histograms({"a": np.array([-1.0])}),
            ValueError,
            "scales['a'] must be ≥ 0, got -1.0",
        ),
        case(
            "plot_gamma_sweep",
            "rows without 'active'",
            lambda: plots.plot_gamma_sweep({"a": [{"gamma": 1.0}]}),
            ValueError,
            "sweeps['a'][0] must be a dict with the keys ['gamma', 'active'] "
            "(pvae.experiments.gamma_sweep); it lacks ['active']",
        ),
        case(
            "plot_demo",
            "a run without 'history'",
            lambda: plots.plot_demo({("n=100", "a"): {}}),
            ValueError,
            "runs[('n=100', 'a')] must be a dict with a 'history', got {}",
        ),
        case(
            "plot_construction",
            "`rows=[{}]`",
            lambda: plots.plot_construction([{}]),
            ValueError,
            "rows[0] must be a dict with the keys ['k', 'free_log_px', "
            "'floored_log_px', 'bound'] (pvae.experiments.demo.construction_table)",
        ),
        case(
            "plot_collapse_depth",
            "`rows=[{}]`",
            lambda: plots.plot_collapse_depth([{}], {}),
            ValueError,
            "rows[0] must be a dict with the keys ['variant', 'depth', ",
        ),
        case(
            "plot_proposition1",
            "`slices={}`",
            lambda: plots.plot_proposition1({}, ([1.0], [1.0]), collapsed=0.0),
            ValueError,
            "slices must be a non-empty dict label → (steps, energies), got {}",
        ),
        case(
            "plot_proposition1",
            "a family of 2 deltas and 1 energy",
            lambda: plots.plot_proposition1(
                {"a": ([0.0], [1.0])}, ([1.0, 2.0], [1.0]), collapsed=0.0
            ),
            ValueError,
            "family must pair as many x values as energies, got 2 and 1",
        ),
    ]


def cli_cases() -> list[Case]:
    def flag(command, bad, call, message):
        entry = " ".join(part for part in ("pvae", command, "(CLI)") if part)
        return Case(entry, bad, call, ExitStatus, message)

    cases = [
        flag(
            "train",
            f"`{' '.join(argv)}`",
            lambda tmp, argv=argv: train(tmp, *argv),
            f"exit 2: pvae train: error: {message}",
        )
        for argv, message in (
            (("--latent-dim", "0"), "argument --latent-dim: must be > 0, got '0'"),
            (("--latent-dim", "1.5"), "argument --latent-dim: invalid parse value: '1.5'"),
            (("--epochs", "0"), "argument --epochs: must be > 0, got '0'"),
            (("--lr", "0"), "argument --lr: must be > 0, got '0'"),
            (("--lr", "nan"), "argument --lr: must be > 0, got 'nan'"),
            (("--lr", "abc"), "argument --lr: invalid parse value: 'abc'"),
            (("--batch-size", "0"), "argument --batch-size: must be > 0, got '0'"),
            (("--hidden", "8,0"), "argument --hidden: --hidden sizes must be positive, got '8,0'"),
            (
                ("--hidden", "8,x"),
                "argument --hidden: --hidden must be comma-separated "
                "integers such as 256,256 (or 'none'), got '8,x'",
            ),
            (("--variance-floor", "0"), "argument --variance-floor: must be > 0, got '0'"),
            (("--variance-floor", "-1"), "argument --variance-floor: must be > 0, got '-1'"),
            (("--model", "nope"), "argument --model: invalid choice: 'nope'"),
            (("--guide", "nope"), "argument --guide: invalid choice: 'nope'"),
            (("--data", "mnist"), "--data mnist needs --data-root, the folder (or base URL)"),
            (("--elbo", "x"), "argument --elbo: invalid choice: 'x'"),
            (("--num-particles", "0"), "argument --num-particles: must be > 0, got '0'"),
            (("--seed", "1.5"), "argument --seed: invalid int value: '1.5'"),
            (("--eval-samples", "-1"), "argument --eval-samples: must be >= 0, got '-1'"),
            (("--eval-points", "0"), "argument --eval-points: must be > 0, got '0'"),
            (
                ("--model", "bernoulli"),
                "data must be binary (every entry 0 or 1) for a "
                "Bernoulli likelihood, but data[0, 2] = 0.125",
            ),
            (
                ("--model", "continuous-bernoulli", "--data", "linear-gaussian"),
                "data must lie in [0, 1] for a continuous Bernoulli likelihood, but data[0, 0] =",
            ),
            (
                ("--model", "normal-floor", "--variance-floor", "1e308"),
                "variance_floor (--variance-floor) must lie in [",
            ),
            (
                ("--model", "normal-network", "--variance-floor", "1e-3"),
                "variance_floor (--variance-floor) applies to model (--model) normal-floor, "
                "normal-shared or normal-optimal, not normal-network",
            ),
            (
                ("--binarize", "--dequantize"),
                "binarize and dequantize exclude each other; choose one",
            ),
            (
                ("--data", "linear-gaussian", "--binarize"),
                "binarize and dequantize (--binarize, --dequantize) apply to images, not to "
                "data (--data) linear-gaussian",
            ),
            (("--guide", "exact"), "guide 'exact' does not fit a VAE model"),
            (
                ("--guide", "per-point"),
                "--guide per-point has no posterior for the held-out points",
            ),
            (("--config", "missing.toml"), "config file 'missing.toml' does not exist"),
        )
    ]
    cases += [
        flag(
            "train",
            "`--out run.toml` (the config's own name)",
            lambda tmp: train(tmp, "--out", str(tmp / "run.toml")),
            "would be overwritten by the run's other files; give the checkpoint another "
            "suffix, e.g. .pt",
        ),
        flag(
            "train",
            "`--lr inf`",
            lambda tmp: train(tmp, "--lr", "inf"),
            "exit 2: pvae train: error: argument --lr: must be finite, got 'inf'",
        ),
        flag(
            "train",
            "`--seed -1`",
            lambda tmp: train(tmp, "--seed", "-1"),
            "exit 2: pvae train: error: argument --seed: must be an integer in "
            f"[0, {TOP}], got '-1'",
        ),
        flag(
            "train",
            "`--data-seed -1`",
            lambda tmp: train(tmp, "--data-seed", "-1"),
            "exit 2: pvae train: error: argument --data-seed: must be an integer in "
            f"[0, {TOP}], got '-1'",
        ),
        flag(
            "train",
            "`--out ''`",
            lambda tmp: train(tmp, "--out", ""),
            "exit 2: pvae train: error: argument --out: must name a file, got ''",
        ),
        flag(
            "train",
            "`--out .`",
            lambda tmp: train(tmp, "--out", "."),
            "exit 2: pvae train: error: --out '.' is a directory; name the checkpoint file, "
            "e.g. 'model.pt'",
        ),
        flag(
            "train",
            "`--out notes.txt/run.pt` (under a file)",
            lambda tmp: train(tmp, "--out", str(blocker(tmp) / "run.pt")),
            "notes.txt', which is a file, not a folder",
        ),
        flag(
            "train",
            "`--out` a name of 233 bytes",
            lambda tmp: train(tmp, "--out", str(tmp / ("x" * 230 + ".pt"))),
            "the file name is 233 bytes; this file system allows 232 here (255 less the 23 of "
            "the temporary file it is written to first)",
        ),
        flag(
            "train",
            "`--hidden 99999999999`",
            lambda tmp: train(tmp, "--hidden", "99999999999"),
            # 136 H + 69 parameters for d = 64, q = 2 (encoder 64-H-4, decoder 2-H-64, and γ)
            "exit 2: pvae train: error: --hidden 99999999999 and --latent-dim 2 ask for a model "
            "and guide of 13,599,999,999,933 parameters",
        ),
        flag(
            "train",
            "`--epochs 18446744073709551616` (2**64)",
            lambda tmp: train(tmp, "--epochs", str(2**64)),
            f"exit 2: pvae train: error: epochs must be at most 2**63 - 1 = {2**63 - 1}",
        ),
    ]
    cases += [
        flag(
            "train",
            f"config file `{text.strip()}` (and no --out flag)",
            lambda tmp, text=text: config_alone(tmp, text),
            message,
        )
        for text, message in (
            ("out = '.'\n", "exit 2: pvae train: error: --out '.' is a directory"),
            (
                "hidden = [99999999999]\n",
                "exit 2: pvae train: error: --hidden 99999999999 and --latent-dim 2 ask for a "
                "model and guide of 13,599,999,999,933 parameters",
            ),
            (
                f"num_particles = {2**64}\n",
                f"exit 2: pvae train: error: num_particles must be at most 2**63 - 1 = {2**63 - 1}",
            ),
            (
                "model = 'normal-floor'\nvariance_floor = 1e308\n",
                "exit 2: pvae train: error: variance_floor (--variance-floor) must lie in [",
            ),
        )
    ]
    cases += [
        flag(
            "train",
            f"config file `{text.strip()}`",
            lambda tmp, text=text: config(tmp, text),
            message,
        )
        for text, message in (
            ("latent_dim = 0\n", "latent_dim must be a positive integer, got 0"),
            ("latent_dim = true\n", "latent_dim must be a positive integer, got True"),
            ("lr = nan\n", "lr must be a positive number, got nan"),
            ("variance_floor = 0.0\n", "variance_floor must be a positive number, got 0.0"),
            ("latent = 3\n", "unknown key 'latent' (did you mean 'latent_dim'?)"),
            (
                "hidden = 8\n",
                "hidden must be a list of positive integers such as [256, 256] "
                "([] for none), got 8",
            ),
            ("model = 'nope'\n", "model must be one of ['normal-fixed', "),
            ("lr = \n", "is not valid TOML"),
            (
                "seed = -1\n",
                f"seed must be an integer in [0, {TOP}], got -1",
            ),
        )
    ]
    cases += [
        flag(
            "evaluate",
            f"`{' '.join(argv)}`",
            lambda tmp, argv=argv: evaluate(tmp, *argv),
            f"exit 2: pvae evaluate: error: {message}",
        )
        for argv, message in (
            (("--num-samples", "0"), "argument --num-samples: must be > 0, got '0'"),
            (("--num-samples", "1.5"), "argument --num-samples: invalid parse value: '1.5'"),
            (("--num-points", "0"), "argument --num-points: must be > 0, got '0'"),
            (("--proposal", "x"), "argument --proposal: invalid choice: 'x'"),
            (("--seed", "x"), "argument --seed: invalid int value: 'x'"),
            (
                ("--max-memory", "lots"),
                "argument --max-memory: --max-memory must be an integer number "
                "of bytes or a string like '512MiB' or '2GB', got 'lots'",
            ),
            (
                ("--max-memory", "0"),
                "argument --max-memory: --max-memory must be an integer number of "
                "bytes or a string like '512MiB' or '2GB', got '0'",
            ),
            (("--max-memory", "1"), "max_memory='1' is too small for this pair and data"),
        )
    ]
    cases += [
        flag(
            "evaluate",
            "a missing checkpoint",
            lambda tmp: cli("evaluate", str(tmp / "missing.pt")),
            "missing.pt' does not exist",
        ),
        flag(
            "evaluate",
            "a folder",
            lambda tmp: cli("evaluate", str(tmp)),
            "is a directory, not a checkpoint file",
        ),
        flag(
            "evaluate",
            "`--table` a folder",
            lambda tmp: evaluate(tmp, "--table", str(tmp)),
            "is a folder; name a file in it",
        ),
        flag(
            "evaluate",
            "`--figures` a file",
            lambda tmp: evaluate(tmp, "--figures", str(blocker(tmp))),
            "notes.txt' is a file; the results go into a folder",
        ),
        flag(
            "demo",
            "`--out` a file",
            lambda tmp: cli("demo", "--quick", "--out", str(blocker(tmp))),
            "notes.txt' is a file; the results go into a folder",
        ),
        flag(
            "experiment collapse-depth",
            "`--out` a file",
            lambda tmp: cli("experiment", "collapse-depth", "--out", str(blocker(tmp))),
            "notes.txt' is a file; the results go into a folder",
        ),
        flag(
            "experiment iwae-vs-elbo",
            "`--out` under a file",
            lambda tmp: cli("experiment", "iwae-vs-elbo", "--out", str(blocker(tmp) / "x")),
            "notes.txt', which is a file, not a folder",
        ),
        flag(
            "evaluate",
            "a file that is not a checkpoint",
            lambda tmp: cli("evaluate", str(damaged(tmp, b"junk"))),
            "could not be read: it is not a torch file (it begins with b'junk')",
        ),
        flag(
            "demo",
            "`--levels 10` with the digits",
            lambda tmp: cli("demo", "--out", str(tmp), "--levels", "10", "--no-progress"),
            "exit 2: pvae demo: error: --levels applies to a .npy or .npz file; 'digits' knows "
            "its own grey levels",
        ),
        flag(
            "demo",
            "`--data fashion-mnist` without `--data-root`",
            lambda tmp: cli("demo", "--out", str(tmp), "--data", "fashion-mnist"),
            "exit 2: pvae demo: error: --data fashion-mnist needs --data-root, the folder (or "
            "base URL) of its four IDX files",
        ),
        flag(
            "demo",
            "`--data-root` with the digits",
            lambda tmp: cli("demo", "--out", str(tmp), "--data-root", str(tmp)),
            "exit 2: pvae demo: error: --data-root applies to --data fashion-mnist or mnist, "
            "not 'digits'",
        ),
        flag(
            "train",
            "`--data cifar`",
            lambda tmp: train(tmp, "--data", "cifar"),
            "exit 2: pvae train: error: --data must be one of ['digits', 'fashion-mnist', "
            "'linear-gaussian', 'mnist'] or the path of a .npy or .npz file, got 'cifar'",
        ),
        flag(
            "demo",
            "`--quick --epochs 2`",
            lambda tmp: cli("demo", "--out", str(tmp), "--quick", "--epochs", "2"),
            "exit 2: pvae demo: error: --quick runs 20 epochs; leave out --epochs or --quick",
        ),
        flag(
            "demo",
            "`--epochs 0`",
            lambda tmp: cli("demo", "--epochs", "0"),
            "exit 2: pvae demo: error: argument --epochs: must be > 0, got '0'",
        ),
        flag(
            "demo",
            "`--data missing.npy`",
            lambda tmp: cli("demo", "--out", str(tmp), "--data", str(tmp / "missing.npy")),
            "missing.npy' does not exist (or is not a file)",
        ),
        flag(
            "demo",
            "`--data` a file of levels 3 with `--levels 2`",
            lambda tmp: cli(
                "demo",
                "--quick",
                "--no-progress",
                "--out",
                str(tmp),
                "--data",
                str(save_array(tmp, np.full((30, 4), 3))),
                "--levels",
                "2",
            ),
            "levels must be whole numbers in [0, 1] (num_levels=2), but levels[0, 0] = 3",
        ),
        flag(
            "demo",
            "`--seed -1`",
            lambda tmp: cli("demo", "--quick", "--no-progress", "--out", str(tmp), "--seed", "-1"),
            f"exit 2: pvae demo: error: argument --seed: must be an integer in [0, {TOP}], "
            "got '-1'",
        ),
        flag(
            "evaluate",
            "`--shards 2` without `--ray`",
            lambda tmp: evaluate(tmp, "--shards", "2"),
            "exit 2: pvae evaluate: error: --shards 2 splits the points into Ray tasks; add --ray",
        ),
        flag(
            "evaluate",
            "`--ray --method ais`",
            lambda tmp: evaluate(tmp, "--ray", "--method", "ais"),
            "exit 2: pvae evaluate: error: --ray shards importance sampling (--method is); AIS "
            "(--method ais) runs in this process",
        ),
        flag(
            "evaluate",
            "`--seed -1`",
            lambda tmp: evaluate(tmp, "--seed", "-1"),
            f"exit 2: pvae evaluate: error: argument --seed: must be an integer in [0, {TOP}], "
            "got '-1'",
        ),
    ]
    experiment = ["experiment", "collapse-depth", "--no-progress"]
    cases += [
        flag(
            "experiment collapse-depth",
            f"`{' '.join(argv)}`",
            lambda tmp, argv=argv: cli(*experiment, "--out", str(tmp), *argv),
            f"exit 2: pvae experiment collapse-depth: error: {message}",
        )
        for argv, message in (
            (("--epochs", "1"), "--epochs must be at least 2"),
            (("--epochs", "0"), "argument --epochs: must be > 0, got '0'"),
            (("--depths", "0"), "argument --depths: --depths must be positive, got '0'"),
            (("--depths", "1,1"), "argument --depths: --depths must not repeat a depth"),
            (("--depths", "x"), "argument --depths: --depths must be comma-separated integers"),
            (("--max-points", "0"), "argument --max-points: must be > 0, got '0'"),
            (("--fashion-mnist", "missing"), "MNIST folder 'missing' does not exist"),
            (
                ("--variants", "ae,gan"),
                "argument --variants: must be comma-separated names of "
                "ae, vae, vae-warmup, none twice, got 'ae,gan'",
            ),
            (("--seeds", "1,1"), "argument --seeds: must not repeat a seed, got '1,1'"),
            (("--cpus-per-task", "2"), "--cpus-per-task 2 sets a Ray task's resources; add --ray"),
            (
                ("--ray", "model.pt"),
                "argument --ray: must be a Ray address: auto, local, "
                "ray://HOST:PORT or HOST:PORT, got 'model.pt'",
            ),
        )
    ]
    cases += [
        flag(
            "experiment gamma-sweep",
            f"`{' '.join(argv)}`",
            lambda tmp, argv=argv: cli("experiment", "gamma-sweep", "--out", str(tmp), *argv),
            f"exit 2: pvae experiment gamma-sweep: error: {message}",
        )
        for argv, message in (
            (
                ("--gammas", "0.1,0"),
                "argument --gammas: every γ must be a finite number > 0, got '0.1,0'",
            ),
            (
                ("--gammas", "a"),
                "argument --gammas: must be comma-separated numbers such as 0.05,0.1,0.5, got 'a'",
            ),
            (
                ("--gpus-per-task", "0.5"),
                "--gpus-per-task 0.5 sets a Ray task's resources; add --ray",
            ),
            (
                ("--gammas", "0.1,0.1"),
                "argument --gammas: must not repeat a γ, got '0.1,0.1'",
            ),
            (
                ("--ray", "--gpus-per-task", "1.5"),
                "argument --gpus-per-task: above 1 must be a whole number of GPUs (a fraction "
                "shares one), got '1.5'",
            ),
            (
                ("--ray", "--gpus-per-task", "-1"),
                "argument --gpus-per-task: must be a finite number >= 0, got '-1'",
            ),
        )
    ]
    cases.append(
        flag(
            "experiment collapse-depth",
            "`--seed -1`",
            lambda tmp: cli(*experiment, "--out", str(tmp), "--seed", "-1"),
            "exit 2: pvae experiment collapse-depth: error: argument --seed: must be an integer "
            f"in [0, {TOP}], got '-1'",
        )
    )
    cases += [
        flag(
            "experiment",
            "an unknown experiment",
            lambda tmp: cli("experiment", "nope"),
            "exit 2: pvae experiment: error: argument experiment: invalid choice: 'nope'",
        ),
        flag(
            "",
            "an unknown command",
            lambda tmp: cli("nope"),
            "exit 2: pvae: error: argument command: invalid choice: 'nope'",
        ),
    ]
    return cases


def imputation_cases() -> list[Case]:
    """pvae.impute and its masks: every mask, data and setting it refuses."""

    def impute(x=None, mask=None, **options):
        model, guide = pair("linear-gaussian", "exact")
        x = points() if x is None else x
        if mask is None:
            mask = pvae.make_mask(x.shape, "random", fraction=0.5, seed=0)
        options = {"num_steps": 2, "num_samples": 2, "progress": False, **options}
        return pvae.impute(model, guide, x, mask, **options)

    half = lambda: pvae.make_mask((10, 4), "random", fraction=0.5, seed=0)  # noqa: E731

    def reads_the_data(x):  # a prior centred on the data: p(x^m | z, x^o) is not p(x^m | z)
        import pyro
        import pyro.distributions as dist

        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x[:, :2], 1.0).to_event(1))
            loc = torch.cat([z, z], -1)
            return pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def prior_guide(x):
        import pyro
        import pyro.distributions as dist

        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    entry = "pvae.impute"
    return [
        Case(
            entry,
            "`mask` of shape (10, 3) for x of (10, 4)",
            lambda tmp: impute(mask=half()[:, :3]),
            ValueError,
            "mask must have the data's shape (10, 4) (one flag per entry), got shape (10, 3)",
        ),
        Case(
            entry,
            "`mask` of 0/1 floats",
            lambda tmp: impute(mask=half().double()),
            TypeError,
            "mask must have dtype torch.bool (True where observed), got torch.float64; convert it "
            "explicitly, e.g. mask == 1",
        ),
        Case(
            entry,
            "`mask` a NumPy array",
            lambda tmp: impute(mask=half().numpy()),
            TypeError,
            "mask must be a torch.Tensor of dtype torch.bool (True where observed), got ndarray",
        ),
        Case(
            entry,
            "`mask` with every entry of point 3 missing",
            lambda tmp: impute(mask=put(half(), 3, False)),
            ValueError,
            "mask marks every entry of point 3 missing (1 such point(s)): imputation conditions on "
            "the observed entries, and there are none",
        ),
        Case(
            entry,
            "`x` with NaN at an observed entry [0, 1]",
            lambda tmp: impute(
                mask=torch.ones(10, 4, dtype=torch.bool), x=put(points(), (0, 1), math.nan)
            ),
            ValueError,
            "x has a non-finite value nan at index [0, 1], which mask marks observed; mark it "
            "missing (False) or give its value",
        ),
        Case(
            entry,
            "`x` all NaN, no mask (every entry missing)",
            lambda tmp: pvae.impute(
                *pair("linear-gaussian", "exact"), torch.full((10, 4), math.nan)
            ),
            ValueError,
            "mask marks every entry of point 0 missing (10 such point(s))",
        ),
        Case(
            entry,
            "`method='gibbs'`",
            lambda tmp: impute(method="gibbs"),
            ValueError,
            "method must be one of",
        ),
        Case(
            entry,
            "`num_steps=0`",
            lambda tmp: impute(num_steps=0),
            ValueError,
            "num_steps must be a positive integer, got 0",
        ),
        Case(
            entry,
            "`num_samples=1.5`",
            lambda tmp: impute(num_samples=1.5),
            ValueError,
            "num_samples must be a positive integer, got 1.5",
        ),
        Case(
            entry,
            "`init=nan`",
            lambda tmp: impute(init=math.nan),
            ValueError,
            "init must be a finite number or a tensor, got nan",
        ),
        Case(
            entry,
            "`init` of shape (10, 3)",
            lambda tmp: impute(init=torch.zeros(10, 3)),
            ValueError,
            "init must be a number or a tensor of x's shape (10, 4) and dtype torch.float64, got "
            "shape (10, 3)",
        ),
        Case(
            entry,
            "`guide=None`",
            lambda tmp: pvae.impute(pair("linear-gaussian", "exact")[0], None, points(), half()),
            TypeError,
            "guide must be a Pyro guide, a callable such as a PyroModule or a function of x, "
            "got NoneType",
        ),
        Case(
            entry,
            "`x` of integers, no mask",
            lambda tmp: pvae.impute(
                *pair("linear-gaussian", "exact"), torch.ones(10, 4, dtype=torch.long)
            ),
            TypeError,
            "x must be a floating-point tensor, got dtype torch.int64",
        ),
        Case(
            entry,
            "a model whose prior reads the data",
            lambda tmp: pvae.impute(reads_the_data, prior_guide, points(), half(), progress=False),
            pvae.ContractError,
            "the model's site 'z' has a distribution that depends on the data's values, not only "
            "on the latents",
        ),
        Case(
            "pvae.make_mask",
            "`pattern='left'`",
            lambda tmp: pvae.make_mask((2, 64), "left"),
            ValueError,
            "pattern must be one of",
        ),
        Case(
            "pvae.make_mask",
            "`fraction=1.0`",
            lambda tmp: pvae.make_mask((2, 64), fraction=1.0),
            ValueError,
            "fraction must be in (0, 1), got 1.0",
        ),
        Case(
            "pvae.make_mask",
            "`pattern='top'` for flat points, no image_shape",
            lambda tmp: pvae.make_mask((2, 64), "top"),
            ValueError,
            "pattern='top' needs image_shape=(height, width) for flat points of shape (64,)",
        ),
        Case(
            "pvae.make_mask",
            "`image_shape=(5, 5)` for 64 entries",
            lambda tmp: pvae.make_mask((2, 64), "top", image_shape=(5, 5)),
            ValueError,
            "image_shape=(5, 5) does not tile points of shape (64,)",
        ),
    ]


CASES: list[Case] = [
    *data_cases(),
    *likelihood_cases(),
    *overflow_cases(),
    *estimator_argument_cases(),
    *fit_argument_cases(),
    *schedule_cases(),
    *builder_cases(),
    *gradient_and_diagnostic_cases(),
    *data_loader_cases(),
    *checkpoint_cases(),
    *collapse_cases(),
    *depth_cases(),
    *iwae_vs_elbo_cases(),
    *construction_cases(),
    *imputation_cases(),
    *task_cases(),
    *plot_cases(),
    *cli_cases(),
]


def _parameters():
    for number, case in enumerate(CASES, 1):
        yield pytest.param(case, id=f"{number}-{case.entry}-{case.bad}")


@pytest.mark.parametrize("case", list(_parameters()))
def test_bad_input(case: Case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI's relative paths ('missing.toml') land here
    with pytest.raises(case.error) as raised:
        case.call(tmp_path)
    assert case.message in str(raised.value)


def test_cases_are_distinct():
    rows = [(case.entry, case.bad) for case in CASES]
    assert len(set(rows)) == len(rows), [row for row in rows if rows.count(row) > 1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    """The docs table of :data:`CASES`, one row per case, in order."""
    lines = [
        "| # | entry point | bad input | error | message (stable part, verbatim) |",
        "| ---: | --- | --- | --- | --- |",
    ]
    for number, case in enumerate(CASES, 1):
        error = "exit status 2" if case.error is ExitStatus else case.error.__name__
        message = case.message.removeprefix("exit 2: ")
        lines.append(
            f"| {number} | {_cell(case.entry)} | {_cell(case.bad)} | {error} | `{_cell(message)}` |"
        )
    return "\n".join(lines)


def test_the_docs_table_lists_every_case():
    text = DOCS.read_text()
    assert BEGIN in text and END in text, f"{DOCS} lacks the markers {BEGIN} ... {END}"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == table(), f"{DOCS} is out of date: run python tests/test_bad_inputs.py"


def write_docs() -> None:
    """Replace the table between the markers of ``docs/bad_inputs.md`` with :func:`table`."""
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOCS.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    write_docs()
    print(f"wrote {len(CASES)} rows to {DOCS}", file=sys.stderr)
