"""pvae train --resume: a run killed with SIGKILL mid-training and resumed reaches bit for bit
the parameters of a run never interrupted; checkpoints are written whole after every epoch."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import pvae
from pvae.checkpoint import CheckpointError
from pvae.cli import main as cli

TRAIN = [
    "train",
    "--model",
    "normal-shared",
    "--hidden",
    "32",
    "--latent-dim",
    "3",
    "--batch-size",
    "32",
    "--seed",
    "5",
    "--eval-samples",
    "0",
    "--no-progress",
]


def pvae_command(*argv: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from pvae.cli import main; sys.exit(main())", *argv]


def epochs_done(path) -> int:
    try:
        state = pvae.load(path).fit_state
    except (FileNotFoundError, CheckpointError):
        return 0
    return 0 if state is None else state.epochs_done


def wait_for_epochs(process: subprocess.Popen, path, count: int, fault: str) -> None:
    """Poll until the checkpoint at ``path`` holds ``count`` epochs (at most 300 s), the
    process still running so that ``fault`` (a signal's effect: "killed") can be sent."""
    deadline = time.monotonic() + 300
    while epochs_done(path) < count:
        assert process.poll() is None, f"the run ended before it could be {fault}"
        assert time.monotonic() < deadline, f"no checkpoint after {count} epochs in 300 s"
        time.sleep(0.02)


def weights(path) -> list[torch.Tensor]:
    loaded = pvae.load(path)
    return [*loaded.model.state_dict().values(), *loaded.guide.state_dict().values()]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    epochs = "30"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole.pt"
    subprocess.run(
        pvae_command(*TRAIN, "--epochs", epochs, "--out", str(whole)), check=True, env=env
    )

    killed = tmp_path / "killed.pt"
    process = subprocess.Popen(
        pvae_command(*TRAIN, "--epochs", epochs, "--out", str(killed)), env=env
    )
    try:
        wait_for_epochs(process, killed, 3, "killed")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    stopped_at = epochs_done(killed)
    assert 3 <= stopped_at < int(epochs)  # killed mid-run, and the file it left is whole

    subprocess.run(
        pvae_command("train", "--resume", str(killed), "--no-progress"), check=True, env=env
    )
    assert epochs_done(killed) == int(epochs)
    for a, b in zip(weights(whole), weights(killed), strict=True):
        assert torch.equal(a, b)  # bitwise: the same draws, the same kernels, one thread
    assert pvae.load(whole).history == pvae.load(killed).history


def test_resume_refuses_settings_and_finished_runs(tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "run.pt"  # created by train
    assert cli([*TRAIN, "--epochs", "2", "--hidden", "8", "--out", str(out)]) == 0
    assert cli(["train", "--resume", str(out), "--lr", "0.1"]) == 2
    assert "--resume continues a run with the settings saved in its checkpoint; --lr" in (
        capsys.readouterr().err
    )
    assert cli(["train", "--resume", str(out), "--epochs", "2"]) == 2
    assert "has already trained 2 epochs; pass --epochs N with N > 2" in capsys.readouterr().err
    # a run killed after its last epoch, before its files: --resume writes them
    out.with_suffix(".png").unlink()
    out.with_suffix(".history.csv").unlink()
    assert cli(["train", "--resume", str(out), "--no-progress"]) == 0
    assert out.with_suffix(".png").is_file() and out.with_suffix(".history.csv").is_file()
    # --epochs extends a finished run: the same as training 3 epochs from the start
    assert cli(["train", "--resume", str(out), "--epochs", "3", "--no-progress"]) == 0
    straight = tmp_path / "straight.pt"
    assert cli([*TRAIN, "--epochs", "3", "--hidden", "8", "--out", str(straight)]) == 0
    for a, b in zip(weights(out), weights(straight), strict=True):
        assert torch.equal(a, b)
    bare = tmp_path / "bare.pt"
    model = pvae.build_model("normal-fixed", 64, 2, (8,))
    pvae.save(bare, model, pvae.build_guide("diag-normal", model, (8,)))
    assert cli(["train", "--resume", str(bare)]) == 2
    assert "holds no fit state to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_stops_after_the_last_whole_epoch_and_the_run_resumes_from_it(tmp_path):
    """SIGINT mid-run: status 130, one line saying which epoch the checkpoint keeps, that
    checkpoint whole and loadable, no temporaries left, and --resume goes on from it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run.pt"
    process = subprocess.Popen(
        pvae_command(*TRAIN, "--epochs", "1000", "--out", str(out)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    with process:
        wait_for_epochs(process, out, 2, "interrupted")
        process.send_signal(signal.SIGINT)
        stderr = process.stderr.read()
    assert process.wait() == 130
    kept = epochs_done(out)
    assert 2 <= kept < 1000
    assert stderr.strip().splitlines() == [
        f"pvae train: interrupted; {str(out)!r} keeps epoch {kept} of 1000, the last whole "
        f"one; 'pvae train --resume {out}' goes on from it"
    ]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    subprocess.run(
        pvae_command("train", "--resume", str(out), "--epochs", str(kept + 1), "--no-progress"),
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    assert epochs_done(out) == kept + 1


def test_a_ctrl_c_whose_keyboard_interrupt_was_lost_stops_after_the_epoch(
    tmp_path, capsys, monkeypatch
):
    # A SIGINT handled while Python runs a finalizer raises inside it, and Python reports and
    # ignores the KeyboardInterrupt (observed once: a run that went on to its last epoch with
    # status 0); the record of it still stops the run at the epoch's end, its checkpoint kept.
    import contextlib

    import pvae.cli.train

    @contextlib.contextmanager
    def one_lost_interrupt():
        yield [signal.SIGINT]

    monkeypatch.setattr(pvae.cli.train, "recording_interrupts", one_lost_interrupt)
    out = tmp_path / "run.pt"
    assert cli([*TRAIN, "--epochs", "5", "--out", str(out)]) == 130
    assert "keeps epoch 1 of 5" in capsys.readouterr().err
    assert epochs_done(out) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_recording_interrupts_keeps_a_sigint_a_finalizer_swallowed():
    from pvae.startup import recording_interrupts

    class RaisesInItsFinalizer:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # handled here: its KeyboardInterrupt is lost
            time.sleep(0.05)

    before = signal.getsignal(signal.SIGINT)
    with recording_interrupts() as received:
        RaisesInItsFinalizer()
        time.sleep(0.05)
        assert received == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):  # a SIGINT elsewhere raises, as before
            # raise_signal: to this thread, handled before it returns (os.kill's signal may
            # reach another thread of the process first)
            signal.raise_signal(signal.SIGINT)
            time.sleep(1)
    assert received == [signal.SIGINT, signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before
