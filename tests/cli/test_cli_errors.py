"""The CLI's errors: one line naming the file or flag, a non-zero status, no traceback
(``--debug`` shows it)."""

import importlib

import pytest

from pvae.cli import main

cli_main = importlib.import_module("pvae.cli.main")  # the module (pvae.cli.main is main too)

TINY = ["--model", "bernoulli", "--binarize", "--hidden", "8", "--latent-dim", "2",
        "--eval-samples", "0", "--no-progress"]  # fmt: skip


def _one_line(capsys) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error
    lines = [line for line in error.splitlines() if line.strip()]
    assert len(lines) == 1, error
    return lines[0]


def test_a_diverging_run_ends_in_one_line_with_status_1(tmp_path, capsys):
    out = tmp_path / "run.pt"
    flags = ["--hidden", "8", "--latent-dim", "2", "--eval-samples", "0", "--no-progress"]
    code = main(["train", *flags, "--epochs", "2", "--lr", "1e6", "--out", str(out)])
    assert code == 1
    line = _one_line(capsys)
    assert line.startswith("pvae train: error: ") and "--debug shows the traceback" in line


def test_out_a_directory_is_refused_before_training(tmp_path, capsys):
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path)]) == 2
    line = _one_line(capsys)
    assert f"--out {str(tmp_path)!r} is a directory" in line


def test_out_under_a_file_names_the_path(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    code = main(["train", *TINY, "--epochs", "1", "--out", str(blocker / "run.pt")])
    assert code == 2
    line = _one_line(capsys)
    assert line == (
        f"pvae train: error: --out {str(blocker / 'run.pt')!r} is under {str(blocker)!r}, "
        "which is a file, not a folder"
    )
    assert blocker.read_text() == "mine"  # nothing lost


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        main(["--debug", "train", *TINY, "--epochs", "1", "--out", str(tmp_path)])


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_main.__dict__, "train_command", interrupted)
    assert main(["train", *TINY]) == cli_main.INTERRUPTED == 130
    assert _one_line(capsys) == "pvae train: interrupted"
    # A real Ctrl-C during training: tests/cli/test_resume_cli.py sends SIGINT to a run.


def test_ctrl_c_before_the_first_epoch_ends_leaves_nothing_to_force(tmp_path, monkeypatch, capsys):
    """Interrupted before any epoch was saved: the run says so and removes the TOML it wrote
    (its only file), so the same command runs again without --force."""
    out = tmp_path / "run.pt"
    train = importlib.import_module("pvae.cli.train")
    real_fit = train.fit

    def interrupted_fit(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupted_fit)
    argv = ["train", *TINY, "--epochs", "1", "--out", str(out)]
    assert main(argv) == 130
    assert _one_line(capsys) == (
        "pvae train: interrupted; no epoch had finished, so nothing was saved"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt.lock"]
    monkeypatch.setattr(train, "fit", real_fit)
    assert main(argv) == 0
    assert out.exists()


def test_a_full_disk_reads_as_one_line_naming_the_file(monkeypatch, capsys):
    import errno

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/model.pt")

    monkeypatch.setitem(cli_main.__dict__, "train_command", full)
    assert main(["train", *TINY]) == 1
    line = _one_line(capsys)
    assert line == (
        "pvae train: error: no space left on the device (the disk is full): 'runs/model.pt' "
        "(--debug shows the traceback)"
    )


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from pvae.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_disk_refusing_the_checkpoint_reads_as_one_line_naming_it(tmp_path):
    """A real write failure (a file-size limit, which fails writes as a full disk does):
    before, torch.save's own writer reported "unexpected pos", naming neither the cause nor
    the file; now the OS's reason and the checkpoint's path, status 1, nothing partial left."""
    import subprocess
    import sys

    out = tmp_path / "run.pt"
    argv = ["train", *TINY, "--epochs", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"pvae train: error: File too large: {str(out)!r} (--debug shows the traceback)"
    ]
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _run_python(code: str, argv0: str):
    import subprocess
    import sys

    script = f"import sys; sys.argv[0] = {argv0!r}\n" + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


@pytest.mark.parametrize(
    "raising",
    [
        "raise KeyboardInterrupt",
        # What a Ctrl-C inside torch's import leaves: an ImportError raised while handling it.
        "try:\n    raise KeyboardInterrupt\nexcept KeyboardInterrupt:\n"
        "    raise ImportError('cannot load module more than once per process')",
        # A real Ctrl-C an import swallowed, and a later error that does not chain to it.
        "import signal\ntry:\n    signal.raise_signal(signal.SIGINT)\n"
        "except KeyboardInterrupt:\n    pass\n"
        "raise AttributeError(\"module 'numpy._core' has no attribute '_multiarray_umath'\")",
    ],
)
def test_ctrl_c_while_the_command_starts_is_one_line(raising):
    """Before pvae.cli.main runs (torch and Pyro still importing), a Ctrl-C in the pvae
    command ends with one line and status 130; in any other process it is Python's own."""
    hook = "from pvae.startup import catch_interrupt_while_starting as c\nassert c()\n"
    done = _run_python(hook + raising, "/venv/bin/pvae")
    assert (done.returncode, done.stderr) == (
        130,
        "pvae: interrupted while starting; nothing was run\n",
    )
    other = _run_python(
        "from pvae.startup import catch_interrupt_while_starting as c\nassert not c()\n" + raising,
        "notebook.py",
    )
    assert other.returncode != 130 and "Traceback" in other.stderr


def test_a_real_ctrl_c_soon_after_the_start_is_one_line(tmp_path):
    """SIGINT half a second after ``pvae train`` starts: whether it lands in the imports or
    later, one line, status 130, nothing saved."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    command = [str(Path(sys.executable).with_name("pvae")), "train", *TINY, "--epochs", "50",
               "--out", str(tmp_path / "run.pt")]  # fmt: skip
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        error = process.stderr.read()
    assert process.returncode == 130, error
    assert error.strip() in (
        "pvae: interrupted while starting; nothing was run",
        "pvae train: interrupted; before training began; nothing was saved",
        "pvae train: interrupted; no epoch had finished, so nothing was saved",
    )
    assert not (tmp_path / "run.pt").exists()


def test_the_command_reads_a_ctrl_c_an_import_swallowed_as_an_interruption():
    """Inside an import (numpy's, on the way to a figure), a Ctrl-C can surface as another
    error (an AttributeError of a half-imported module): the console command still ends with
    one line and status 130. In a subprocess: run() sets the process's SIGINT handler."""
    code = """
import importlib, signal, sys
cli = importlib.import_module("pvae.cli.main")  # the module: pvae.cli.main is also main
def swallowed(argv=None):
    try:
        signal.raise_signal(signal.SIGINT)  # handled before the next bytecode
    except KeyboardInterrupt:
        raise AttributeError("module 'numpy._core' has no attribute '_multiarray_umath'")
    return 0
cli.main = swallowed
sys.exit(cli.run())
"""
    done = _run_python(code, "pvae")
    assert (done.returncode, done.stderr) == (130, "pvae: interrupted\n")


def test_an_unreachable_data_url_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    """--fashion-mnist with a base URL nothing answers at (a closed local port: no network
    is used): status 1, one line naming the file it tried to fetch."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the download cache, ~/.cache/pvae, goes here
    url = "http://127.0.0.1:9/"
    argv = ["experiment", "collapse-depth", "--fashion-mnist", url, "--out", str(tmp_path / "r")]
    assert main([*argv, "--no-progress"]) == 1
    line = _one_line(capsys)
    assert line.startswith(
        "pvae experiment collapse-depth: error: could not download "
        f"'{url}train-images-idx3-ubyte.gz'"
    )


def test_a_read_only_file_system_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    """Every file of a run is created by pvae.files.atomic_write; where the file system
    refuses to create it (EROFS, made here by refusing os.open for new files there, as a
    read-only mount does; root ignores permissions), the run ends with status 1 in one line
    naming the file asked for, not its temporary."""
    import errno
    import os

    files = importlib.import_module("pvae.files")
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", read_only)
    out = tmp_path / "run.pt"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 1
    line = _one_line(capsys)
    # The first file the run creates is its lock, before anything else is read or written.
    assert line == (
        f"pvae train: error: Read-only file system: {str(out) + '.lock'!r} "
        "(--debug shows the traceback)"
    )
