"""checksums='official' checks what a file holds, not how it was compressed: a recompressed copy
(Debian's dataset-fashion-mnist) loads, a file with one byte changed in its contents does not."""

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import pvae.data.mnist as mnist
from pvae.data import load_fashion_mnist, load_mnist, write_idx

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")
STEMS += ("t10k-labels-idx1-ubyte",)
DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def official(tmp_path, monkeypatch):
    """Official-layout .gz files made here, whose digests stand in for the published ones."""
    rng = np.random.default_rng(0)
    arrays = dict(
        zip(
            STEMS,
            (
                rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                np.arange(5, dtype=np.uint8),
                rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                np.arange(3, dtype=np.uint8),
            ),
            strict=True,
        )
    )
    folder = tmp_path / "official"
    folder.mkdir()
    for stem, array in arrays.items():
        write_idx(folder / (stem + ".gz"), array)
        packed = (folder / (stem + ".gz")).read_bytes()
        monkeypatch.setitem(mnist._OFFICIAL_MD5["fashion-mnist"], stem + ".gz", md5(packed))
        contents = gzip.decompress(packed)
        monkeypatch.setitem(mnist._OFFICIAL_CONTENT_MD5["fashion-mnist"], stem, md5(contents))
    return folder


def repack(source: Path, target: Path, change=None) -> Path:
    """The four files of ``source`` recompressed (another level and time stamp) into ``target``;
    ``change(stem, contents)`` may alter a file's decompressed contents first."""
    target.mkdir()
    for stem in STEMS:
        contents = gzip.decompress((source / (stem + ".gz")).read_bytes())
        if change is not None:
            contents = change(stem, contents)
        (target / (stem + ".gz")).write_bytes(gzip.compress(contents, compresslevel=1, mtime=7))
    return target


def test_a_recompressed_copy_loads_as_the_original(official, tmp_path):
    copy = repack(official, tmp_path / "copy")
    assert md5((copy / "t10k-images-idx3-ubyte.gz").read_bytes()) != md5(
        (official / "t10k-images-idx3-ubyte.gz").read_bytes()
    )
    original, repacked = load_fashion_mnist(official), load_fashion_mnist(copy)
    assert (original.train == repacked.train).all() and (original.test == repacked.test).all()


def test_one_flipped_byte_in_the_contents_is_refused(official, tmp_path):
    def flip(stem, contents):
        if stem != "t10k-images-idx3-ubyte":
            return contents
        changed = bytearray(contents)
        changed[100] ^= 1  # one pixel of the first test image, one bit
        return bytes(changed)

    damaged = repack(official, tmp_path / "damaged", change=flip)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz' does not hold the official"):
        load_fashion_mnist(damaged)
    assert load_fashion_mnist(damaged, checksums=None).test.shape == (3, 784)


def test_an_uncompressed_copy_is_checked_too(official, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for stem in STEMS:
        (plain / stem).write_bytes(gzip.decompress((official / (stem + ".gz")).read_bytes()))
    assert (load_fashion_mnist(plain).train == load_fashion_mnist(official).train).all()
    (plain / "train-labels-idx1-ubyte").write_bytes(
        (plain / "train-labels-idx1-ubyte").read_bytes()[:-1] + b"\x09"
    )
    with pytest.raises(ValueError, match="md5 of its decompressed contents is"):
        load_fashion_mnist(plain)


def test_a_corrupt_gzip_is_named(official, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(official, broken)
    path = broken / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz' cannot be decompressed"):
        load_mnist(broken, kind="fashion-mnist")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_debians_fashion_mnist_loads_and_a_flipped_byte_does_not(tmp_path):
    # The real files: recompressed by Debian (other .gz digests), the official contents.
    data = load_fashion_mnist(DEBIAN)
    assert data.train.shape == (60000, 784) and data.test.shape == (10000, 784)
    assert np.bincount(data.train_labels.numpy()).tolist() == [6000] * 10
    assert np.bincount(data.test_labels.numpy()).tolist() == [1000] * 10

    def flip(stem, contents):
        return (
            contents[:-1] + bytes([contents[-1] ^ 1])
            if stem == "t10k-labels-idx1-ubyte"
            else contents
        )

    with pytest.raises(ValueError, match="does not hold the official fashion-mnist t10k-labels"):
        load_fashion_mnist(repack(DEBIAN, tmp_path / "damaged", change=flip))
