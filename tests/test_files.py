"""Files written whole or not at all (pvae.files.atomic_write), for downloads, IDX files and
checkpoints alike: permissions from the umask, nothing partial left on any exception."""

import errno
import hashlib
import os
import stat

import pytest
import torch

import pvae
from pvae.files import atomic_write, write_atomically, write_text


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as handle:
        handle.write(b"new ")
        assert path.read_bytes() == b"old"  # the target is untouched until the block ends
        handle.write(b"content")
    assert path.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_write_leaves_nothing_on_an_exception(tmp_path, error):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(error), atomic_write(path) as handle:
        handle.write(b"partial")
        raise error("stop")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    with pytest.raises(error), atomic_write(tmp_path / "b.bin") as handle:
        raise error("stop")
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_write_permissions_follow_the_umask(tmp_path, umask_027):
    with atomic_write(tmp_path / "a.bin") as handle:
        handle.write(b"x")
    assert mode(tmp_path / "a.bin") == 0o640


def test_write_atomically_checks_the_md5_and_discards_a_mismatch(tmp_path):
    path = tmp_path / "a.bin"
    digest = hashlib.md5(b"abc", usedforsecurity=False).hexdigest()
    assert write_atomically(path, [b"a", b"bc"], md5=digest) == digest
    assert path.read_bytes() == b"abc"
    with pytest.raises(ValueError, match=r"md5 mismatch for 'http://x/a\.bin': expected 0{32}"):
        write_atomically(path, [b"other"], md5="0" * 32, source="http://x/a.bin")
    assert path.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def small_pair():
    model = pvae.build_model("normal-shared", 4, 2, (8,))
    return model, pvae.build_guide("diag-normal", model, (8,))


def test_checkpoint_permissions_follow_the_umask(tmp_path, umask_027):
    path = pvae.save(tmp_path / "run.pt", *small_pair())
    assert mode(path) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_an_interrupted_checkpoint_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = pvae.save(tmp_path / "run.pt", *small_pair(), config={"n": 1})

    def interrupted(payload, file):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pvae.save(path, *small_pair(), config={"n": 2})
    monkeypatch.undo()
    assert pvae.load(path).config == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_atomic_write_errors_name_the_file_not_its_temporary(tmp_path):
    """A folder where the file should go, or a name too long once the temporary's 23
    characters are added: the error is the OS's, naming the file asked for, and nothing is
    left behind."""
    folder = tmp_path / "table.csv"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as raised:
        write_text(folder, "x")
    assert raised.value.filename == str(folder)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    long = tmp_path / ("x" * (limit - 22))  # fits alone, not with the temporary's 23
    with pytest.raises(OSError) as raised:
        write_text(long, "x")
    assert raised.value.errno == errno.ENAMETOOLONG
    assert raised.value.filename == str(long)
    assert "with the 23 characters of its temporary" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
