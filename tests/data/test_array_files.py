"""Crafted .npy/.npz files for pvae.data.load_array: refused from their headers, before
NumPy allocates what they claim."""

import io
import zipfile

import numpy as np
import pytest

from pvae.data import load_array


def test_a_npy_header_claiming_a_terabyte_is_refused_before_reading(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros((2, 4), np.uint8))
    crafted = buffer.getvalue().replace(b"(2, 4)", b"(1000000, 1000000)")
    path = tmp_path / "crafted.npy"
    path.write_bytes(crafted)
    claim = r"declares 1000000000000 bytes of data but holds \d+: truncated"
    with pytest.raises(ValueError, match=claim):
        load_array(path)


def test_a_npz_member_that_expands_beyond_its_header_is_refused(tmp_path):
    # A zip bomb: the member's header declares 8 bytes, the deflated member holds 64 MiB.
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros((2, 4), np.uint8))
    header_and_data = buffer.getvalue()
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", header_and_data + bytes(64 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"array 'x.npy' .* declares 8 bytes of data but holds"):
        load_array(path)


def test_negative_labels_are_refused_naming_the_first(tmp_path):
    path = tmp_path / "labelled.npz"
    np.savez(path, x=np.zeros((4, 3), np.uint8), y=np.array([0, 1, -2, 3]))
    with pytest.raises(ValueError, match=r"must be classes 0, 1, \.\.\., got y\[2\] = -2"):
        load_array(path)
