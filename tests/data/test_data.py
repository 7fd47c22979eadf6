"""Bundled digits and synthetic linear-Gaussian data."""

import pytest
import torch

from pvae.data import DIGITS_LEVELS, linear_gaussian_data, load_digits
from pvae.models import LinearGaussian


def test_digits_raw_scaled_to_unit_interval():
    data = load_digits()
    assert data.train.shape == (1438, 64) and data.test.shape == (359, 64)
    assert data.train.dtype == torch.float64
    levels = torch.cat([data.train, data.test]) * (DIGITS_LEVELS - 1)
    assert torch.equal(levels, levels.round()) and levels.min() == 0 and levels.max() == 16
    assert data.train_labels.shape == (1438,) and set(data.test_labels.tolist()) == set(range(10))


def test_digits_split_is_seeded_and_disjoint():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    train_rows = {tuple(row.tolist()) for row in a.train}
    assert sum(tuple(row.tolist()) in train_rows for row in a.test) < 10  # only duplicate images


def test_dequantized_digits_keep_their_grey_level():
    raw, noisy = load_digits(), load_digits(dequantize=True)
    assert noisy.train.min() >= 0 and noisy.train.max() < 1
    # (level + u) / 17 with u in [0, 1): the floor recovers the level exactly.
    recovered = torch.floor(noisy.train * DIGITS_LEVELS)
    torch.testing.assert_close(recovered, raw.train * (DIGITS_LEVELS - 1), rtol=0, atol=0)
    assert len(torch.unique(noisy.train)) > 1000


def test_binarized_digits_are_binary_threshold_at_half():
    raw, binary = load_digits(), load_digits(binarize=True)
    assert set(torch.unique(binary.train).tolist()) == {0.0, 1.0}
    assert torch.equal(binary.train, (raw.train > 0.5).double())


def test_linear_gaussian_data_has_the_model_covariance():
    # Sample covariance of n = 40,000 points: each entry's standard error is below
    # 2·max|Σ|/√n ≈ 0.01·max|Σ|; the tolerance is 5 of those.
    data, model = linear_gaussian_data(40_000, 4, 2, noise_variance=0.3, seed=2)
    expected = model.marginal().covariance_matrix.detach()
    scale = expected.abs().max()
    torch.testing.assert_close(torch.cov(data.T), expected, rtol=0, atol=0.05 * scale)
    torch.testing.assert_close(data.mean(0), model.bias.detach(), rtol=0, atol=0.05 * scale)


def test_maximum_likelihood_ppca_beats_perturbed_parameters():
    # Tipping & Bishop's closed form is the maximum: any small perturbation lowers log p(X).
    data, _ = linear_gaussian_data(2000, 5, 2, noise_variance=0.2, seed=3)
    fitted = LinearGaussian.maximum_likelihood(data, 2)
    best = fitted.log_prob(data).mean().item()
    for parameter in (fitted.weight, fitted.bias, fitted.log_variance):
        original = parameter.detach().clone()
        for _ in range(3):
            with torch.no_grad():
                parameter.copy_(original + 0.02 * torch.randn_like(original))
            assert fitted.log_prob(data).mean().item() < best
        with torch.no_grad():
            parameter.copy_(original)


def test_maximum_likelihood_keeps_the_data_dtype():
    torch.set_default_dtype(torch.float32)
    data = torch.randn(50, 4, dtype=torch.float64)
    fitted = LinearGaussian.maximum_likelihood(data, 2)
    assert {p.dtype for p in fitted.parameters()} == {torch.float64}


def test_from_levels_rejects_what_is_not_a_grey_level():
    from pvae.data import from_levels

    levels = torch.tensor([[0.0, 3.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match=r"levels\[0, 1\] = 3"):
        from_levels(levels, 3)
    with pytest.raises(ValueError, match=r"levels\[1, 1\] = 1.5"):
        from_levels(torch.tensor([[0.0, 1.0], [1.0, 1.5]]), 4)
    with pytest.raises(ValueError, match="num_levels must be an integer >= 2, got 1"):
        from_levels(levels, 1)


def test_load_array_round_trips_npy_and_npz(tmp_path):
    import numpy as np

    from pvae.data import load_array

    images = np.random.default_rng(0).integers(0, 4, size=(50, 3, 5))
    np.save(tmp_path / "images.npy", images)
    np.savez(tmp_path / "images.npz", x=images, y=np.arange(50) % 3)
    from_npy = load_array(tmp_path / "images.npy", 4, test_fraction=0.2, seed=1)
    from_npz = load_array(tmp_path / "images.npz", 4, test_fraction=0.2, seed=1)
    assert from_npy.train.shape == (40, 15) and from_npy.test.shape == (10, 15)
    assert torch.equal(from_npy.train, from_npz.train)
    assert from_npz.train_labels is not None and from_npy.train_labels is None
    # The same split and scaling as the digits loader: levels / (L − 1).
    all_rows = {tuple((row * 3).round().long().tolist()) for row in from_npy.train}
    assert all_rows <= {tuple(image.reshape(-1).tolist()) for image in images}
    noisy = load_array(tmp_path / "images.npy", 4, dequantize=True, seed=1)
    torch.testing.assert_close(torch.floor(noisy.train * 4), from_npy.train * 3)
    np.savez(tmp_path / "bad.npz", data=images)
    with pytest.raises(ValueError, match="has no array 'x'"):
        load_array(tmp_path / "bad.npz", 4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_array(tmp_path / "missing.npy")
