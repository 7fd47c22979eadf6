"""Runs and evaluation shards on Ray (pvae.tasks, pvae.estimation.sharded, pvae.training.tune)
against the same work done in this process: one local Ray with 2 CPUs for the module.

Oracles: the serial run (the grid's table, exactly: every run seeds itself and a Ray task is a
fresh process), one log_marginal call (the shards' draws are keyed to the global point index,
so they agree to float rounding: 1e-12 in float64), and fit + log_marginal by hand (the Tune
trainable's reports).
"""

import dataclasses
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import textwrap
import warnings

import pyro
import pytest
import ray
import torch

import pvae
from pvae.cli import main
from pvae.experiments.collapse_depth import CollapseDepthSettings, format_table, run_collapse_depth
from pvae.experiments.gamma_sweep import gamma_sweep
from pvae.tasks import Task, TasksFailed, run_tasks

# The workers import pvae, not this module: its task functions travel by value (Ray pickles
# with its own copy of cloudpickle).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = CollapseDepthSettings(
    depths=(1, 2),
    variants=("ae", "vae"),
    width=16,
    latent_dim=4,
    epochs=2,
    warmup_epochs=1,
    max_points=120,
    diagnostic_points=100,
)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray of 2 CPUs for this module, torn down after it."""
    ray.init(
        address="local",  # a new one, whatever else runs on the machine
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _python_sigint_handler_kept():
    """Ray Tune's Tuner.fit leaves its own SIGINT handler installed in the driver (it ends a
    Tune run and raises nothing; ray 2.60): Python's is put back for the tests
    this process runs next (a pytest-xdist worker runs other files after this one)."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def _without_seconds(rows):
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def test_the_grid_on_ray_gives_the_serial_table(tmp_path):
    serial = run_collapse_depth(tmp_path / "serial", settings=GRID, progress=False)
    on_ray = run_collapse_depth(tmp_path / "ray", settings=GRID, progress=False, ray=True)
    assert [(row["variant"], row["depth"]) for row in on_ray] == [
        ("ae", 1),
        ("ae", 2),
        ("vae", 1),
        ("vae", 2),
    ]
    assert _without_seconds(on_ray) == _without_seconds(serial)  # exactly, every entry
    assert format_table(on_ray) == format_table(serial)
    for name in ("collapse_depth.csv", "collapse_depth.png", "collapse_depth.json"):
        assert (tmp_path / "ray" / name).stat().st_size > 0


def test_seeds_repeat_the_grid_and_each_seed_equals_its_own_run(tmp_path):
    settings = dataclasses.replace(GRID, depths=(1,), variants=("vae",), seeds=(0, 3))
    rows = run_collapse_depth(tmp_path / "both", settings=settings, progress=False, ray=True)
    assert [row["seed"] for row in rows] == [0, 3]
    alone = run_collapse_depth(
        tmp_path / "alone",
        settings=dataclasses.replace(settings, seeds=(3,)),
        progress=False,
    )
    assert _without_seconds(rows[1:]) == _without_seconds(alone)
    assert rows[0]["train_recon_error"] != rows[1]["train_recon_error"]


def test_the_gamma_sweep_on_ray_gives_the_serial_rows():
    data = pvae.load_digits(seed=0).train[:150]
    options = {"latent_dim": 3, "hidden_sizes": (8,), "epochs": 2, "progress": False}
    serial = gamma_sweep(data, [0.05, 0.5], **options)
    assert gamma_sweep(data, [0.05, 0.5], ray=True, **options) == serial


def test_sharded_log_marginal_over_three_tasks_equals_one_call():
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 64, 4, (32,))
    guide = pvae.build_guide("diag-normal", model, (32,))
    x = pvae.load_digits(seed=0).train[:40]
    options = {"num_samples": 300, "return_log_weights": True, "progress": False}
    one = pvae.log_marginal(model, guide, x, seed=11, **options)
    sharded = pvae.sharded_log_marginal(model, guide, x, seed=11, num_shards=3, **options)
    assert len(sharded) == 40
    for name in ("estimate", "stderr", "ess", "khat", "elbo", "nested", "log_weights"):
        torch.testing.assert_close(
            getattr(sharded, name), getattr(one, name), rtol=0, atol=1e-12, equal_nan=True
        )
    # Without a seed, one is drawn from torch's RNG as log_marginal draws it.
    torch.manual_seed(5)
    drawn = pvae.log_marginal(model, guide, x, **options)
    torch.manual_seed(5)
    sharded = pvae.sharded_log_marginal(model, guide, x, num_shards=2, **options)
    torch.testing.assert_close(sharded.estimate, drawn.estimate, rtol=0, atol=1e-12)


def test_sharded_log_marginal_carries_the_param_store():
    """A pair built on pyro.param: its parameters travel to the workers with the pair."""
    x = pvae.load_digits(seed=0).train[:12]

    def model(x):
        loc = pyro.param("loc", torch.zeros(64))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0).expand([2]).to_event(1))
            mean = loc + z.sum(-1, keepdim=True)
            pyro.sample("x", pyro.distributions.Normal(mean, 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(0.0, 1.0).expand([2]).to_event(1))

    pyro.param("loc", torch.full((64,), 0.3))
    one = pvae.log_marginal(model, guide, x, num_samples=50, seed=2, progress=False)
    sharded = pvae.sharded_log_marginal(
        model, guide, x, num_samples=50, seed=2, num_shards=3, progress=False
    )
    torch.testing.assert_close(sharded.estimate, one.estimate, rtol=0, atol=1e-12)


def _square(value, offset, fail_on=None, marker=None):
    if value == fail_on:
        raise RuntimeError(f"cannot do {value}")
    if marker is not None and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # the worker dies on the first try: Ray reports it, pvae tries again
    return value**2 + offset


def _tasks(values, **kwargs):
    return [
        Task(
            name=f"square {value}",
            fn=_square,
            kwargs={"value": value, **kwargs},
            settings={"value": value},
        )
        for value in values
    ]


def test_a_task_that_raises_is_reported_with_its_settings_and_the_others_kept(tmp_path):
    record = tmp_path / "tasks"
    with pytest.raises(TasksFailed) as caught:
        run_tasks(
            _tasks([1, 2, 3], fail_on=2),
            shared={"offset": 10},
            ray=True,
            record=record,
            progress=False,
        )
    error = caught.value
    assert error.results == {"square 1": 11, "square 3": 19}
    [failure] = error.failures
    assert (failure.name, failure.settings, failure.tries) == ("square 2", {"value": 2}, 2)
    assert "RuntimeError: cannot do 2" in failure.error and "_square" in failure.traceback
    assert "square 2 (value=2) failed 2 times: RuntimeError: cannot do 2" in str(error)
    assert len(list(record.glob("*.pkl"))) == 2
    # Resumed: only the failed task runs again (the finished ones would now raise).
    results = run_tasks(
        _tasks([1, 2, 3], fail_on=3),
        shared={"offset": 10},
        ray=True,
        record=record,
        resume=True,
        progress=False,
    )
    assert results == [11, 14, 19]


def test_a_task_whose_worker_dies_is_retried_once(tmp_path):
    marker = tmp_path / "died once"
    results = run_tasks(
        _tasks([4, 5], marker=str(marker)), shared={"offset": 0}, ray=True, progress=False
    )
    assert results == [16, 25] and marker.exists()


def test_tasks_here_retry_record_and_resume(tmp_path, caplog):
    record = tmp_path / "tasks"
    assert run_tasks(_tasks([1, 2]), shared={"offset": 1}, record=record, progress=False) == [
        2,
        5,
    ]
    # The records are reused only where name, settings and context match, and -v says so.
    changed = [dataclasses.replace(task, context={"budget": 2}) for task in _tasks([1])]
    with caplog.at_level(logging.INFO, logger="pvae.tasks"):
        assert run_tasks(changed, shared={"offset": 100}, record=record, resume=True) == [101]
    assert f"2 records in {record} are of other tasks or settings; not reused" in caplog.text
    assert run_tasks(_tasks([1, 2]), shared={"offset": 7}, record=record, resume=True) == [2, 5]
    # Without resume the record is cleared and everything runs.
    assert run_tasks(_tasks([1]), shared={"offset": 7}, record=record, progress=False) == [8]
    with (record / _tasks([1])[0].record_name()).open("rb") as handle:
        assert pickle.load(handle)["result"] == 8


def test_a_damaged_record_is_warned_about_and_its_task_run_again(tmp_path, caplog):
    record = tmp_path / "tasks"
    tasks = _tasks([1, 2, 3])
    assert run_tasks(tasks, shared={"offset": 1}, record=record, progress=False) == [2, 5, 10]
    cut = record / tasks[0].record_name()
    cut.write_bytes(cut.read_bytes()[:10])  # a write cut short
    (record / tasks[1].record_name()).write_bytes(pickle.dumps([1, 2]))  # not a record
    again = run_tasks(tasks, shared={"offset": 7}, record=record, resume=True, progress=False)
    assert again == [8, 11, 10]  # the two damaged ones ran again with the new offset
    warned = [r.getMessage() for r in caplog.records if r.name == "pvae.tasks"]
    assert any(str(cut) in line and "square 1 is run again" in line for line in warned)
    assert any("it holds a list, not a task's record" in line for line in warned)
    # They were overwritten: a third call reuses all three.
    assert run_tasks(tasks, shared={"offset": 0}, record=record, resume=True) == [8, 11, 10]


def _threads():
    return torch.get_num_threads()


def test_a_task_gets_its_cpus_as_torch_threads_and_impossible_resources_are_refused():
    # The workers inherit the OMP_NUM_THREADS this process had when the module's Ray started
    # (conftest sets it to this worker's share of the cores, 1 or 2 here), and torch would
    # take that; whichever it is, one of the two tasks asks for another number.
    for cpus in (1, 2):
        threads = run_tasks([Task("t", _threads)], ray=True, cpus_per_task=cpus, progress=False)
        assert threads == [cpus]
    # No node of the module's Ray (2 CPUs, no GPU) could ever run these: refused, not queued.
    for resources, asked in (
        ({"cpus_per_task": 3}, "cpus_per_task=3 and gpus_per_task=0"),
        ({"gpus_per_task": 0.5}, "cpus_per_task=1 and gpus_per_task=0.5"),
    ):
        with pytest.raises(ValueError) as caught:
            run_tasks([Task("t", _threads)], ray=True, progress=False, **resources)
        assert f"no node of this Ray cluster can run a task with {asked}" in str(caught.value)
        assert "its nodes have 2 CPUs and 0 GPUs" in str(caught.value)


def test_sharded_log_marginal_warns_where_the_draws_are_not_keyed():
    """A Laplace guide draws from each task's own RNG: the shards' draws differ from one
    call's, and the warning says so (a Normal guide's do not: no warning)."""
    torch.manual_seed(0)
    model = pvae.build_model("normal-shared", 64, 2, (8,))
    x = pvae.load_digits(seed=0).train[:10]

    def laplace_guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample(
                "z", pyro.distributions.Laplace(torch.zeros(x.shape[0], 2), 1.0).to_event(1)
            )

    options = {"num_samples": 20, "seed": 1, "progress": False, "ray": None, "num_shards": 2}
    with pytest.warns(pvae.estimation.UnkeyedDrawsWarning, match=r"sites \['z'\] are not"):
        pvae.sharded_log_marginal(model, laplace_guide, x, **options)
    guide = pvae.build_guide("diag-normal", model, (8,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", pvae.estimation.UnkeyedDrawsWarning)
        pvae.sharded_log_marginal(model, guide, x, **options)


def test_the_grid_resumes_without_running_its_finished_runs(tmp_path, monkeypatch):
    import importlib

    module = importlib.import_module("pvae.experiments.collapse_depth")
    settings = dataclasses.replace(GRID, depths=(1,))
    first = run_collapse_depth(tmp_path, settings=settings, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(module, "train_one", refuse)
    again = run_collapse_depth(tmp_path, settings=settings, progress=False, resume=True)
    assert again == first


def test_the_cli_reports_a_failed_grid_and_resumes_it(tmp_path, capsys, monkeypatch):
    import importlib

    module = importlib.import_module("pvae.experiments.collapse_depth")
    train_one = module.train_one

    def fail_at_depth_2(variant, depth, seed, data, settings):
        if depth == 2:
            raise ValueError("the depth-2 run broke")
        return train_one(variant, depth, seed, data, settings)

    monkeypatch.setattr(module, "train_one", fail_at_depth_2)
    argv = [
        "experiment",
        "collapse-depth",
        "--depths",
        "1,2",
        "--variants",
        "ae",
        "--epochs",
        "2",
        "--max-points",
        "60",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "1 of 2 tasks failed; 1 finished, kept in" in error
    assert "ae, depth 2, seed 0 (variant='ae', depth=2, seed=0) failed 2 times" in error
    monkeypatch.setattr(module, "train_one", train_one)
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^ae\s+1\s", printed, re.M) and re.search(r"^ae\s+2\s", printed, re.M)


def test_evaluate_with_ray_prints_the_table_of_one_process(tmp_path, capsys):
    checkpoint = tmp_path / "m.pt"
    train = ["train", "--epochs", "1", "--hidden", "16", "--latent-dim", "3"]
    assert main([*train, "--out", str(checkpoint), "--eval-samples", "0", "--no-progress"]) == 0
    capsys.readouterr()
    evaluate = ["evaluate", str(checkpoint), "--num-samples", "100", "--num-points", "30"]
    assert main([*evaluate, "--table", str(tmp_path / "one.csv"), "--no-progress"]) == 0
    one = capsys.readouterr().out
    assert main([*evaluate, "--table", str(tmp_path / "ray.csv"), "--ray", "--shards", "3"]) == 0
    assert capsys.readouterr().out == one
    assert (tmp_path / "ray.csv").read_text() == (tmp_path / "one.csv").read_text()


def test_the_tune_trainable_reports_what_fit_and_log_marginal_give(tmp_path):
    from ray import tune

    data = pvae.load_digits(seed=0)
    train, held_out = data.train[:200], data.test[:30]

    def build_pair(config):
        model = pvae.build_model("normal-shared", 64, config["latent_dim"], (16,))
        return model, pvae.build_guide("diag-normal", model, (16,))

    trainable = pvae.tune_trainable(build_pair, train, held_out, epochs=2, num_samples=100)
    tuner = tune.Tuner(
        trainable,
        param_space={"latent_dim": tune.grid_search([2, 3]), "lr": 3e-3, "seed": 4},
        tune_config=tune.TuneConfig(metric="log_marginal", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    for result in results:
        history = result.metrics_dataframe
        assert list(history["epoch"]) == [1, 2] and list(history["training_iteration"]) == [1, 2]
        assert result.metrics["estimator"] == "IS, K = 100"
        shares = [result.metrics[name] for name in ("reliable", "doubtful", "unreliable")]
        assert sum(shares) == pytest.approx(1.0)
        # The same trial by hand, in this process.
        pyro.clear_param_store()
        pyro.set_rng_seed(4)
        model, guide = build_pair(result.config)
        pvae.fit(model, guide, train, epochs=2, lr=3e-3, seed=4, progress=False)
        by_hand = pvae.log_marginal(model, guide, held_out, num_samples=100, seed=0)
        assert result.metrics["log_marginal"] == pytest.approx(
            by_hand.estimate.mean().item(), abs=1e-9
        )


def test_the_tune_trainable_takes_data_above_rays_limit_for_a_function(tmp_path):
    """Ray refuses to pickle a function above 95 MiB: the data (here 103 MB) must reach the
    trials through the object store, not inside the trainable."""
    from ray import tune

    train = torch.rand(33_000, 784, dtype=torch.float32)
    held_out = torch.rand(10, 784, dtype=torch.float32)

    def build_pair(config):
        model = pvae.build_model("normal-shared", 784, 2, (4,))
        return model, pvae.build_guide("diag-normal", model, (4,))

    trainable = pvae.tune_trainable(
        build_pair, train, held_out, epochs=1, num_samples=20, batch_size=33_000
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"seed": 0},
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    assert results[0].metrics["estimator"] == "IS, K = 20"


def test_the_tune_trainable_leaves_combinations_to_the_trials_config(tmp_path):
    """elbo="iwae" needs num_particles >= 2: given by the config, it is not refused up front."""
    from ray import tune

    data = pvae.load_digits(seed=0)

    def build_pair(config):
        model = pvae.build_model("normal-shared", 64, 2, (8,))
        return model, pvae.build_guide("diag-normal", model, (8,))

    trainable = pvae.tune_trainable(
        build_pair, data.train[:60], data.test[:10], epochs=1, num_samples=20, elbo="iwae"
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"num_particles": 4, "seed": 0},
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    assert not tuner.fit().errors


def test_an_address_where_no_ray_answers_is_one_line_naming_it(tmp_path):
    """ray.init would retry a dead HOST:PORT for minutes: pvae tries a TCP connection first.
    In a fresh process: this one's Ray is running, and a running Ray is used as it is."""
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["experiment", "collapse-depth", "--depths", "1", "--variants", "ae"]
    argv += ["--epochs", "2", "--max-points", "8", "--no-progress", "--out", str(tmp_path)]
    argv += ["--ray", f"127.0.0.1:{port}"]
    done = subprocess.run(
        [sys.executable, "-m", "pvae.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert f"error: no Ray cluster answers at '127.0.0.1:{port}' (ray=, --ray)" in done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_imports_ray_without_it(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import pvae
        import pvae.cli.main
        from pvae.experiments.collapse_depth import CollapseDepthSettings, run_collapse_depth
        settings = CollapseDepthSettings(depths=(1,), variants=("ae",), width=8, latent_dim=2,
                                         epochs=2, warmup_epochs=1, max_points=40)
        run_collapse_depth({str(tmp_path)!r}, settings=settings, progress=False)
        assert "ray" not in sys.modules, "ray was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_readme_tune_example_runs(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", readme, flags=re.S)
    code = next(block for block in blocks if "tune_trainable" in block)
    monkeypatch.setenv("HOME", str(tmp_path))  # Tune's default storage, ~/ray_results
    exec(compile(code, "README.md", "exec"), {})
    last = capsys.readouterr().out.strip().splitlines()[-1]  # after Tune's own trial table
    latent_dim, log_marginal, status = last.split(" ", 2)
    assert latent_dim in ("2", "8") and float(log_marginal) < 0 and "reliable" in status


def test_without_ray_installed_the_cli_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    argv = ["experiment", "collapse-depth", "--depths", "1", "--epochs", "2", "--max-points", "8"]
    assert main([*argv, "--out", str(tmp_path), "--ray", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "Ray is not installed; the ray extra installs it: pip install" in error
    assert "pvae-pyro[ray]" in error and "Traceback" not in error
