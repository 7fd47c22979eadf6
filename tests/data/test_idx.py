"""IDX files, fetch, and the MNIST / Fashion-MNIST loaders, on small files made here: nothing is
downloaded (URLs are file:// URLs into tmp_path)."""

import gzip
import hashlib
import re
import struct

import numpy as np
import pytest
import torch

from pvae.data import fetch, from_levels, load_fashion_mnist, load_mnist, read_idx, split, write_idx

# (type code, struct format of one entry, dtype, six values that exercise sign and byte order).
# The floats are exactly representable, so equality is exact.
TYPES = [
    (0x08, "B", np.uint8, [0, 1, 127, 128, 255, 7]),
    (0x09, "b", np.int8, [-128, -1, 0, 1, 127, 5]),
    (0x0B, "h", np.int16, [-32768, -1, 0, 258, 32767, 5]),
    (0x0C, "i", np.int32, [-(2**31), -1, 0, 65538, 2**31 - 1, 5]),
    (0x0D, "f", np.float32, [-2.5, 0.0, 1.0, 3.140625, 2.0**100, -(2.0**-100)]),
    (0x0E, "d", np.float64, [-2.5, 0.0, 1.0, 3.140625, 2.0**1000, -(2.0**-1000)]),
]
TYPE_IDS = [np.dtype(t[2]).name for t in TYPES]

TRAIN_LABELS = [3, 1, 4, 1, 5]
TEST_LABELS = [9, 2, 6]
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(code: int, fmt: str, shape, values) -> bytes:
    """An IDX file assembled by hand from the format's description, independent of write_idx."""
    header = bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape)
    return header + struct.pack(f">{len(values)}{fmt}", *values)


def fake_images(num_images: int, offset: int) -> np.ndarray:
    # Pixel (i, r, c) = (offset + 7 i + 28 r + c) mod 256: every grey level occurs, images differ.
    i, r, c = np.ogrid[:num_images, :28, :28]
    return ((offset + 7 * i + 28 * r + c) % 256).astype(np.uint8)


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_mnist(folder, *, gz: bool = True, train_labels=TRAIN_LABELS, test_labels=TEST_LABELS):
    """A fake MNIST folder of 5 training and 3 test images; returns {file name: md5}."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": fake_images(5, offset=0),
        "train_labels": np.array(train_labels, dtype=np.uint8),
        "test_images": fake_images(3, offset=100),
        "test_labels": np.array(test_labels, dtype=np.uint8),
    }
    suffix = ".gz" if gz else ""
    paths = [write_idx(folder / (NAMES[role] + suffix), array) for role, array in arrays.items()]
    return {path.name: md5_of(path) for path in paths}


def expected_levels(num_images: int, offset: int) -> torch.Tensor:
    return torch.from_numpy(fake_images(num_images, offset).reshape(num_images, 784)).double()


# --- IDX reading and writing -----------------------------------------------------------------


@pytest.mark.parametrize(("code", "fmt", "dtype", "values"), TYPES, ids=TYPE_IDS)
def test_read_idx_decodes_hand_built_bytes(tmp_path, code, fmt, dtype, values):
    content = idx_bytes(code, fmt, (2, 3), values)
    (tmp_path / "a.idx").write_bytes(content)
    # gzip is recognised by its magic bytes, not by the file name.
    (tmp_path / "b.idx").write_bytes(gzip.compress(content))
    expected = np.array(values, dtype=dtype).reshape(2, 3)
    for name in ("a.idx", "b.idx"):
        array = read_idx(tmp_path / name)
        assert array.dtype == np.dtype(dtype) and array.dtype.isnative
        assert array.shape == (2, 3) and array.flags.writeable
        np.testing.assert_array_equal(array, expected)
        assert np.array_equal(np.signbit(array), np.signbit(expected))  # -0.0 survives
    # And the writer produces exactly those bytes.
    assert write_idx(tmp_path / "c.idx", expected).read_bytes() == content
    assert gzip.decompress(write_idx(tmp_path / "c.idx.gz", expected).read_bytes()) == content


def test_mnist_headers_carry_the_documented_magic_numbers(tmp_path):
    # LeCun's page: images start with the 32-bit integer 2051, labels with 2049, then the sizes.
    images = write_idx(tmp_path / "images", np.zeros((3, 28, 28), dtype=np.uint8)).read_bytes()
    labels = write_idx(tmp_path / "labels", np.zeros(3, dtype=np.uint8)).read_bytes()
    assert struct.unpack(">4I", images[:16]) == (2051, 3, 28, 28) and len(images) == 16 + 3 * 784
    assert struct.unpack(">2I", labels[:8]) == (2049, 3) and len(labels) == 8 + 3


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4), (0, 5), (1, 1, 1, 1, 2)])
@pytest.mark.parametrize("dtype", [t[2] for t in TYPES], ids=TYPE_IDS)
def test_write_read_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is None:
        array = rng.standard_normal(shape).astype(dtype)
    else:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    path = write_idx(tmp_path / f"x.idx{suffix}", array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    # A big-endian input array is written as the same file.
    big = array.astype(array.dtype.newbyteorder(">"))
    assert write_idx(tmp_path / f"y.idx{suffix}", big).read_bytes() == path.read_bytes()


def test_write_idx_is_deterministic_and_leaves_no_temporary_file(tmp_path):
    a = write_idx(tmp_path / "a.gz", np.arange(10, dtype=np.int16))
    b = write_idx(tmp_path / "b.gz", np.arange(10, dtype=np.int16))
    assert a.read_bytes() == b.read_bytes()  # no time stamp in the gzip header
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gz", "b.gz"]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(3, dtype=np.int64), "dtype int64"),
        (np.zeros(3, dtype=bool), "dtype bool"),
        (np.float64(1.0), r"1 to 255 dimensions.*shape \(\)"),
    ],
)
def test_write_idx_refuses_what_idx_cannot_store(tmp_path, array, message):
    with pytest.raises(ValueError, match=message):
        write_idx(tmp_path / "x.idx", array)
    assert list(tmp_path.iterdir()) == []


GOOD = idx_bytes(0x08, "B", (2, 3), [1, 2, 3, 4, 5, 6])
COMPRESSED = gzip.compress(GOOD * 50, mtime=0)  # long enough to garble the middle of the stream


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD[:-2], r"truncated: shape \(2, 3\) of uint8 needs 6 data bytes, got 4"),
        (GOOD + b"\x00\x07", r"2 trailing bytes: shape \(2, 3\) of uint8 needs 6 data bytes"),
        (b"\x01" + GOOD[1:], "must start with bytes 00 00, got 01 00"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown type code 0x0A"),
        (GOOD[:3] + b"\x00" + GOOD[4:], "declares 0 dimensions"),
        (GOOD[:6], "truncated in its header: 2 dimensions need 12 header bytes, got 6"),
        (b"\x00\x00", "truncated: 2 bytes"),
        (COMPRESSED[:-12], "not a valid gzip stream"),
        (COMPRESSED[:20] + bytes(b ^ 0xFF for b in COMPRESSED[20:40]) + COMPRESSED[40:], "gzip"),
        (COMPRESSED[:-8] + bytes([COMPRESSED[-8] ^ 1]) + COMPRESSED[-7:], r"gzip.*CRC"),
    ],
    ids=[
        "truncated",
        "trailing",
        "magic",
        "type-code",
        "zero-dims",
        "short-header",
        "tiny",
        "cut-gzip",
        "garbled-gzip",
        "gzip-crc",
    ],
)
def test_read_idx_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(repr(str(path))) + ".*" + message):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.gz"))):
        read_idx(tmp_path / "nope.gz")


# --- fetch ----------------------------------------------------------------------------------


def cache_files(cache_dir):
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file())


def test_fetch_downloads_file_urls_into_the_cache_and_reuses_them(tmp_path):
    source = write_idx(tmp_path / "data-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    digest, cache_dir = md5_of(source), tmp_path / "cache"
    path = fetch(source.as_uri(), md5=digest, cache_dir=cache_dir)
    assert path.parent.parent == cache_dir and path.name == source.name
    assert path.read_bytes() == source.read_bytes()
    assert cache_files(cache_dir) == [source.name]  # no temporary file left behind
    source.unlink()
    assert fetch(source.as_uri(), md5=digest.upper(), cache_dir=cache_dir) == path
    assert fetch(source.as_uri(), cache_dir=cache_dir) == path


def test_fetch_local_paths_are_checked_not_copied(tmp_path):
    source = write_idx(tmp_path / "x.gz", np.arange(5, dtype=np.uint8))
    assert fetch(source, md5=md5_of(source)) == source
    assert fetch(str(source)) == source
    wrong = "0" * 32
    with pytest.raises(ValueError, match=f"{re.escape(str(source))}.*expected {wrong}, got"):
        fetch(source, md5=wrong)
    assert source.is_file()  # the user's own file is never deleted
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "y.gz"))):
        fetch(tmp_path / "y.gz")


def test_fetch_md5_mismatch_discards_the_download(tmp_path):
    source = write_idx(tmp_path / "x.gz", np.arange(5, dtype=np.uint8))
    url, wrong, cache_dir = source.as_uri(), "f" * 32, tmp_path / "cache"
    expected = re.escape(url) + f".*expected {wrong}, got {md5_of(source)}"
    with pytest.raises(ValueError, match=expected):
        fetch(url, md5=wrong, cache_dir=cache_dir)
    assert cache_files(cache_dir) == []


def test_fetch_cached_file_with_another_md5_is_downloaded_again(tmp_path):
    source = write_idx(tmp_path / "x.gz", np.arange(5, dtype=np.uint8))
    cache_dir = tmp_path / "cache"
    cached = fetch(source.as_uri(), cache_dir=cache_dir)
    write_idx(source, np.arange(6, dtype=np.uint8))  # the file behind the URL changed
    assert fetch(source.as_uri(), md5=md5_of(source), cache_dir=cache_dir) == cached
    assert cached.read_bytes() == source.read_bytes()


def test_fetch_errors_name_the_url(tmp_path):
    url = (tmp_path / "missing.gz").as_uri()
    with pytest.raises(OSError, match="could not download " + re.escape(repr(url))):
        fetch(url, cache_dir=tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == []
    with pytest.raises(ValueError, match="ftp://"):
        fetch("ftp://example.org/x.gz", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="does not end in a file name"):
        fetch("https://example.org/data/", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="does not end in a file name"):
        fetch("https://example.org/a/..%2F..%2F..", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"md5 must be an md5 digest.*'abc'"):
        fetch(url, md5="abc", cache_dir=tmp_path / "cache")


# --- MNIST ----------------------------------------------------------------------------------


def test_load_mnist_folder_keeps_the_official_split_and_scales_by_255(tmp_path):
    checksums = make_mnist(tmp_path / "mnist")
    data = load_mnist(tmp_path / "mnist", checksums=checksums)
    assert data.train.shape == (5, 784) and data.test.shape == (3, 784)
    assert data.train.dtype == torch.float64
    # Exactly x / 255, in file order: the official training and test sets, not a re-split.
    assert torch.equal(data.train, expected_levels(5, 0) / 255)
    assert torch.equal(data.test, expected_levels(3, 100) / 255)
    assert data.train_labels.dtype == torch.int64 and data.test_labels.dtype == torch.int64
    assert data.train_labels.tolist() == TRAIN_LABELS
    assert data.test_labels.tolist() == TEST_LABELS
    assert data.data_dim == 784


def test_load_mnist_uncompressed_folder(tmp_path):
    checksums = make_mnist(tmp_path / "raw", gz=False)
    reference = load_mnist(tmp_path / "raw", checksums=checksums)
    assert torch.equal(reference.train, expected_levels(5, 0) / 255)
    assert torch.equal(load_mnist(tmp_path / "raw", checksums=None).test, reference.test)
    # "official" checks uncompressed files too, by their contents: these are made up.
    with pytest.raises(ValueError, match="does not hold the official mnist train-images"):
        load_mnist(tmp_path / "raw")
    gz_checksums = {name + ".gz": digest for name, digest in checksums.items()}
    with pytest.raises(ValueError, match="no md5 for 'train-images-idx3-ubyte'"):
        load_mnist(tmp_path / "raw", checksums=gz_checksums)


def test_load_mnist_dtype_binarize_and_dequantize(tmp_path):
    checksums = make_mnist(tmp_path / "mnist")
    levels = expected_levels(5, 0)

    single = load_mnist(tmp_path / "mnist", checksums=checksums, dtype=torch.float32)
    assert single.train.dtype == torch.float32 and single.test.dtype == torch.float32
    assert torch.equal(single.train, levels.float() / 255)

    binary = load_mnist(tmp_path / "mnist", checksums=checksums, binarize=True)
    assert torch.equal(binary.train, (levels / 255 > 0.5).double())
    assert set(binary.train.unique().tolist()) == {0.0, 1.0}

    noisy = load_mnist(tmp_path / "mnist", checksums=checksums, dequantize=True, seed=3)
    assert noisy.train.min() >= 0 and noisy.train.max() < 1
    # (level + u) / 256 with u in [0, 1): the floor recovers the level exactly.
    assert torch.equal(torch.floor(noisy.train * 256), levels)
    again = load_mnist(tmp_path / "mnist", checksums=checksums, dequantize=True, seed=3)
    other = load_mnist(tmp_path / "mnist", checksums=checksums, dequantize=True, seed=4)
    assert torch.equal(noisy.train, again.train) and not torch.equal(noisy.train, other.train)
    # The test images get noise of their own, not a replay of the training images' noise.
    train_noise = noisy.train * 256 - levels
    test_noise = noisy.test * 256 - expected_levels(3, 100)
    assert not torch.allclose(train_noise[:3], test_noise, rtol=0, atol=1e-3)


def test_from_levels_scaling_is_unchanged(tmp_path):
    # The scaling now lives in a helper shared with load_mnist; this is the formula from_levels
    # used before, written out.
    levels = torch.randint(0, 17, (40, 6)).double()
    for seed in (0, 5):
        noise = torch.rand(levels.shape, generator=torch.Generator().manual_seed(seed))
        expected = split((levels + noise) / 17, seed=seed)
        actual = from_levels(levels, 17, dequantize=True, seed=seed)
        assert torch.equal(actual.train, expected.train) and torch.equal(actual.test, expected.test)
    assert torch.equal(from_levels(levels, 17).train, split(levels / 16).train)
    binary = from_levels(levels, 17, binarize=True).train
    assert torch.equal(binary, split((levels / 16 > 0.5).double()).train)


def test_load_mnist_from_a_file_url_uses_the_cache_the_second_time(tmp_path):
    checksums = make_mnist(tmp_path / "site")
    url, cache_dir = (tmp_path / "site").as_uri() + "/", tmp_path / "cache"
    first = load_mnist(url, checksums=checksums, cache_dir=cache_dir)
    assert torch.equal(first.train, expected_levels(5, 0) / 255)
    assert first.test_labels.tolist() == TEST_LABELS
    assert cache_files(cache_dir) == sorted(checksums)
    for name in checksums:
        (tmp_path / "site" / name).unlink()
    second = load_mnist(url.rstrip("/"), checksums=checksums, cache_dir=cache_dir)
    assert torch.equal(second.train, first.train) and torch.equal(second.test, first.test)


@pytest.mark.parametrize(
    ("loader", "kind", "digest"),
    [
        (load_mnist, "mnist", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        (load_mnist, "fashion-mnist", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        (load_fashion_mnist, None, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ],
)
def test_official_checksums_are_the_default(tmp_path, loader, kind, digest):
    checksums = make_mnist(tmp_path / "mnist")
    actual = checksums["train-images-idx3-ubyte.gz"]
    kwargs = {} if kind is None else {"kind": kind}
    expected = f"train-images-idx3-ubyte.gz.*expected {digest}, got {actual}"
    with pytest.raises(ValueError, match=expected):
        loader(tmp_path / "mnist", **kwargs)
    assert loader(tmp_path / "mnist", checksums=None, **kwargs).train.shape == (5, 784)


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    make_mnist(tmp_path / "mnist", train_labels=[3, 1, 4, 1])
    expected = (
        r"train-images-idx3-ubyte\.gz' has 5 images but .*train-labels-idx1-ubyte\.gz' has 4 labels"
    )
    with pytest.raises(ValueError, match=expected):
        load_mnist(tmp_path / "mnist", checksums=None)


def test_load_mnist_labels_must_be_digits(tmp_path):
    make_mnist(tmp_path / "mnist", test_labels=[9, 10, 6])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz'.*0\.\.9.*label 1 is 10"):
        load_mnist(tmp_path / "mnist", checksums=None)


def test_load_mnist_checks_ranks_and_types(tmp_path):
    make_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((5, 784), np.uint8))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz'.*3-D uint8.*\(5, 784\)"):
        load_mnist(tmp_path / "mnist", checksums=None)
    make_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.int32))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz'.*1-D uint8.*int32"):
        load_mnist(tmp_path / "mnist", checksums=None)


def test_load_mnist_missing_files(tmp_path):
    make_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"'t10k-images-idx3-ubyte\.gz'.*mnist"):
        load_mnist(tmp_path / "mnist", checksums=None)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "elsewhere"))):
        load_mnist(tmp_path / "elsewhere")
    with pytest.raises(OSError, match=r"could not download.*t10k-images-idx3-ubyte\.gz"):
        load_mnist((tmp_path / "mnist").as_uri(), checksums=None, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "emnist"}, r"kind must be one of \['fashion-mnist', 'mnist'\], got 'emnist'"),
        ({"binarize": True, "dequantize": True}, "exclude each other"),
        ({"checksums": "md5"}, r"checksums must be 'official', None or a dict.*'md5'"),
        ({"checksums": {"train-images.gz": "0" * 32}}, "'train-images.gz', which is not one"),
        ({"checksums": {"t10k-images-idx3-ubyte": "xyz"}}, r"checksums\['t10k.*'xyz'"),
        ({"dtype": torch.int64}, r"dtype must be a floating-point torch.dtype.*int64"),
        ({"seed": 1.5}, r"seed must be an integer, got 1.5"),
    ],
)
def test_load_mnist_validates_its_arguments(tmp_path, kwargs, message):
    make_mnist(tmp_path / "mnist")
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path / "mnist", **kwargs)


def _bomb(path, header: bytes, zeros: int) -> None:
    """A gzip file holding ``header`` and then ``zeros`` zero bytes, written in chunks."""
    import gzip

    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(header)
        for _ in range(zeros // len(chunk)):
            stream.write(chunk)


def test_a_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    # The header declares 1,000 bytes; the stream expands to 64 MiB more. read_idx reads the
    # declared bytes and counts the rest in 1 MiB chunks: Python never holds more than that.
    import struct
    import tracemalloc

    path = tmp_path / "bomb.gz"
    _bomb(path, b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + bytes(1000), 64 << 20)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"has 67108864 trailing bytes: shape \(1000,\)"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # the whole stream would be 64 MiB


def test_a_header_declaring_more_than_max_bytes_is_refused_before_reading(tmp_path):
    import struct

    path = tmp_path / "huge.idx"
    path.write_bytes(b"\x00\x00\x08\x02" + struct.pack(">II", 100_000, 100_000) + bytes(10))
    declared = r"10000000000 data bytes, more than max_bytes = 1073741824"
    with pytest.raises(ValueError, match=declared):
        read_idx(path)
    with pytest.raises(ValueError, match="is truncated: shape"):
        read_idx(path, max_bytes=10**11)  # allowed, then found short (nothing allocated first)
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        read_idx(path, max_bytes=0)


def test_more_dimensions_than_numpy_has_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "deep.idx"
    path.write_bytes(b"\x00\x00\x08\xff" + b"\x00\x00\x00\x01" * 255 + b"\x00")
    with pytest.raises(ValueError, match=r"deep.idx' declares 255 dimensions; NumPy arrays have"):
        read_idx(path)
