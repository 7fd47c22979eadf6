"""One run per output: the lock of ``pvae train`` (pvae.files.run_lock), against a second
run, a killed holder and a dead run's temporaries."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pvae import checkpoint
from pvae.cli import main
from pvae.files import RunLocked, run_lock

HOLD = "import sys; from pvae.files import {lock}\nwith {lock}(sys.argv[1]):\n"
HOLD += "    print('held', flush=True); sys.stdin.read()\n"


@contextlib.contextmanager
def holding(path: Path, lock: str = "run_lock"):
    """Another process holding ``pvae.files.<lock>`` on ``path`` (a checkpoint, or with
    ``folder_lock`` a results folder) for the block (or until killed)."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD.format(lock=lock), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout.readline().strip() == "held"
        try:
            yield child
        finally:
            if child.poll() is None:
                child.stdin.close()
            child.wait()


def test_a_second_holder_is_refused_naming_the_first_and_the_lock_is_reusable(tmp_path):
    out = tmp_path / "run.pt"
    with run_lock(out) as lock:
        assert lock == tmp_path / "run.pt.lock"
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(RunLocked, match=rf"another pvae run \(pid {os.getpid()}\) is writing"):
            with run_lock(out):
                pass
    with run_lock(out):  # released when the block ends
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run.pt"
    with holding(out) as child:
        with pytest.raises(RunLocked, match=rf"pid {child.pid}\)"):
            with run_lock(out):
                pass
        child.send_signal(signal.SIGKILL)
        child.wait()
    with run_lock(out):  # the kernel dropped the dead process's lock
        pass


def test_a_dead_runs_temporaries_are_removed_on_the_next_start(tmp_path):
    out = tmp_path / "run.pt"
    stray = [tmp_path / ".run.pt.0123abcd.part", tmp_path / ".run.toml.99ff.part"]
    kept = tmp_path / ".other.pt.0123.part"  # another run's: not this one's to remove
    for path in (*stray, kept):
        path.write_bytes(b"partial")
    with run_lock(out, names=("run.toml",)):
        assert not any(path.exists() for path in stray)
    assert kept.exists()


def _train(out: Path, seed: int, epochs: int) -> list[str]:
    return ["train", "--model", "bernoulli", "--binarize", "--hidden", "8", "--latent-dim", "2",
            "--epochs", str(epochs), "--eval-samples", "0", "--seed", str(seed),
            "--out", str(out), "--no-progress"]  # fmt: skip


def test_pvae_train_refuses_an_output_another_run_is_writing(tmp_path, capsys):
    out = tmp_path / "run.pt"
    with holding(out) as child:
        assert main(_train(out, seed=1, epochs=1)) == 2
    error = capsys.readouterr().err
    assert f"pvae train: error: another pvae run (pid {child.pid}) is writing" in error
    assert not out.exists() and not out.with_suffix(".toml").exists()  # nothing written
    assert main(_train(out, seed=1, epochs=1)) == 0  # free again


def test_two_concurrent_trainings_on_one_out_keep_the_first_ones_results(tmp_path, capsys):
    out = tmp_path / "run.pt"
    with subprocess.Popen(
        [sys.executable, "-m", "pvae.cli", *_train(out, seed=7, epochs=3)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ) as first:
        lock = tmp_path / "run.pt.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        assert main(_train(out, seed=8, epochs=1)) == 2
        assert f"pid {first.pid}" in capsys.readouterr().err
        assert first.wait(timeout=300) == 0, first.stderr.read()
    loaded = checkpoint.load(out)
    assert loaded.config["seed"] == 7 and len(loaded.history) == 3  # the first run's own
    assert "seed = 7" in out.with_suffix(".toml").read_text()
    assert torch.isfinite(torch.tensor([r["elbo"] for r in loaded.history])).all()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--quick"],
        ["experiment", "collapse-depth", "--depths", "1", "--epochs", "2"],
        ["experiment", "iwae-vs-elbo", "--epochs", "1"],
    ],
)
def test_a_second_experiment_into_one_folder_is_refused_before_writing(tmp_path, capsys, argv):
    """The results folder of an experiment has the same lock as a checkpoint: a second run
    into it is refused (status 2, naming the first run's pid) and writes nothing there."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "demo.csv").write_text("the first run's table\n")
    with holding(folder, "folder_lock") as child:
        status = main([*argv, "--out", str(folder), "--no-progress"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert f"another pvae run (pid {child.pid}) is writing {str(folder)!r}" in error
    assert len(error.splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == [".pvae.lock", "demo.csv"]
    assert (folder / "demo.csv").read_text() == "the first run's table\n"


def test_the_folder_lock_removes_a_dead_runs_temporaries_and_only_them(tmp_path):
    from pvae.files import folder_lock

    folder = tmp_path / "results"
    folder.mkdir()
    stray = folder / ".demo.png.0123456789abcdef.part"
    stray.write_bytes(b"half a figure")
    (folder / "demo.png").write_bytes(b"a whole figure")
    with folder_lock(folder) as lock:
        assert lock == folder / ".pvae.lock"
        assert not stray.exists()
        assert (folder / "demo.png").read_bytes() == b"a whole figure"


def test_an_experiment_into_a_file_is_refused(tmp_path):
    from pvae.experiments.iwae_vs_elbo import run_iwae_vs_elbo

    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    with pytest.raises(ValueError, match=r"out_dir '.*notes\.txt' is a file; the results go"):
        run_iwae_vs_elbo(path)
    assert path.read_text() == "mine\n"


def test_an_experiment_refused_before_writing_leaves_no_folder_it_made(tmp_path):
    from pvae.experiments.iwae_vs_elbo import run_iwae_vs_elbo

    with pytest.raises(TypeError, match="settings must be an IWAEvsELBOSettings"):
        run_iwae_vs_elbo(tmp_path / "new", settings="x")
    assert list(tmp_path.iterdir()) == []


def test_an_experiment_into_the_current_folder_locks_inside_it(tmp_path, monkeypatch):
    """``--out .``: the lock is ./.pvae.lock, not a file beside the folder (in its parent)."""
    from pvae.files import folder_lock, locking_folder

    monkeypatch.chdir(tmp_path)
    seen = []

    @locking_folder
    def experiment(out_dir):
        with pytest.raises(RunLocked):
            with folder_lock(out_dir):
                pass
        seen.append(sorted(p.name for p in Path(out_dir).iterdir()))

    experiment(".")
    assert seen == [[".pvae.lock"]]
