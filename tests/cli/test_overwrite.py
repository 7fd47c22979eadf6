"""Nothing overwritten without asking, nothing written through a symlink: ``pvae train``'s
outputs and the atomic writers behind them."""

import pytest

from pvae.cli import main
from pvae.files import write_text
from pvae.tables import write_table

TINY = ["--model", "bernoulli", "--binarize", "--hidden", "8", "--latent-dim", "2",
        "--epochs", "1", "--eval-samples", "0", "--no-progress"]  # fmt: skip


def test_a_users_file_at_out_is_not_replaced_without_force(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["train", *TINY, "--out", str(notes)]) == 2
    error = capsys.readouterr().err
    assert f"{str(notes)!r} already exist(s); pass --force to replace them" in error
    assert notes.read_text() == "my notes"
    assert main(["train", *TINY, "--out", str(notes), "--force"]) == 0
    assert notes.read_bytes()[:2] == b"PK"  # now a checkpoint (a torch zip archive)


def test_an_earlier_run_is_kept_unless_forced(tmp_path, capsys):
    out = tmp_path / "run.pt"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "5", "--out", str(out)]) == 2
    assert f"'pvae train --resume {out}' to continue that run" in capsys.readouterr().err
    assert out.read_bytes() == first
    assert main(["train", *TINY, "--seed", "5", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != first


def test_sidecars_replace_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "run.pt"
    for suffix in (".toml", ".png", ".history.csv"):
        out.with_suffix(suffix).symlink_to(victim)
    assert main(["train", *TINY, "--out", str(out)]) == 2  # they exist: refused
    assert main(["train", *TINY, "--out", str(out), "--force"]) == 0
    assert victim.read_text() == "precious"
    for suffix in (".toml", ".png", ".history.csv"):
        path = out.with_suffix(suffix)
        assert path.is_file() and not path.is_symlink(), path


@pytest.mark.parametrize("name", ["rows.csv", "rows.json"])
def test_tables_and_text_never_write_through_a_symlink(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / name
    link.symlink_to(victim)
    write_table(link, [{"a": 1, "b": 2.5}])
    assert victim.read_text() == "precious" and not link.is_symlink()
    assert "2.5" in link.read_text()
    other = tmp_path / "note.txt"
    other.symlink_to(victim)
    write_text(other, "new")
    assert victim.read_text() == "precious" and other.read_text() == "new"
