"""The README stays true: its example runs, and CI runs its set-up and test commands."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks():
    return re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = next(block for block in bash_blocks() if "pytest" in block)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_main_job_command_installs_and_runs_pvae():
    main_job = bash_blocks()[0]
    assert "pip install -c constraints.txt -e ." in main_job and "pvae " in main_job
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def test_readme_has_no_unfilled_placeholders():
    assert not re.search(r"\b[A-Z]+_TABLE\b", README)


@pytest.mark.slow
def test_readme_example_runs(capsys):
    import pyro
    import torch

    torch.set_default_dtype(torch.float32)  # as a user runs it
    code = re.search(r"```python\n(.*?)\n```", README, flags=re.S).group(1)
    pyro.clear_param_store()
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    elbo = float(re.search(r"held-out ELBO (-?[\d.]+)", out).group(1))
    summary = re.search(r"'log_marginal': (-?[\d.]+)", out).group(1)
    # The IS estimate is at least the ELBO on average (Jensen), by a margin far above its stderr.
    assert float(summary) > elbo


@pytest.mark.slow
def test_readme_authoring_example_runs(capsys):
    # The "Writing a model and a guide of your own" block: a user's PyroModule model with a
    # Laplace likelihood goes through check_contract, fit, log_marginal and diagnose.
    import math

    import pyro
    import torch

    torch.set_default_dtype(torch.float32)  # as a user runs it
    blocks = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)
    code = next(block for block in blocks if "class LaplaceVAE" in block)
    pyro.clear_param_store()
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    log_px = float(re.search(r"held-out log p̂\(x\) = (-?[\d.]+) nats", out).group(1))
    assert math.isfinite(log_px)
    assert re.search(r"active units: \d of 4", out)
    assert "(v) a bad local minimum" in out


def test_readme_counts_the_bad_inputs_the_table_lists():
    rows = re.findall(r"^\| \d+ \|", (ROOT / "docs" / "bad_inputs.md").read_text(), flags=re.M)
    claimed = re.search(r"lists the (\d+) bad inputs tried", README.replace("\n", " "))
    assert claimed is not None and int(claimed.group(1)) == len(rows)


@pytest.mark.slow
def test_readme_imputation_example_runs(capsys):
    # The "Missing data" block: MWG with the exact posterior of probabilistic PCA accepts
    # every proposal, and its mean is within a few se of the closed-form conditional.
    import pyro
    import torch

    blocks = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)
    code = next(block for block in blocks if "pvae.impute(" in block)
    pyro.clear_param_store()
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        torch.set_default_dtype(torch.float64)  # the test policy's
    out = capsys.readouterr().out
    assert "acceptance [1.0, 1.0, 1.0, 1.0]" in out
    assert "Imputation by Metropolis-within-Gibbs" in out
    gap = float(re.search(r"largest gap to the closed form: ([\d.]+) se", out).group(1))
    assert gap < 4
