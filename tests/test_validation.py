"""Bad input gets an error that names the argument and the offending value."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import pvae
import pvae.guides
from pvae.contract import ContractError
from pvae.data import load_digits, split
from pvae.guides import LinearGaussianPosterior
from pvae.likelihoods import NormalDecoder
from pvae.registry import build_guide, build_model
from pvae.training import kl_warmup


@pytest.fixture
def pair():
    model = build_model("normal-fixed", 4, 2, (8,))
    return model, build_guide("diag-normal", model, (8,))


GOOD = torch.rand(10, 4, dtype=torch.float64)
NAN = GOOD.clone()
NAN[3, 2] = float("nan")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"data": NAN}, ValueError, r"data contains a non-finite value nan at index \[3, 2\]"),
        ({"data": GOOD[0]}, ValueError, r"data must have shape \(num_points, \*event_shape\)"),
        ({"data": GOOD[:0]}, ValueError, "data is empty"),
        ({"data": GOOD.long()}, TypeError, "floating-point tensor, got dtype torch.int64"),
        ({"data": GOOD.float()}, TypeError, "data has dtype torch.float32 but the model's"),
        ({"data": GOOD.numpy()}, TypeError, "data must be a torch.Tensor, got ndarray"),
        ({"epochs": 0}, ValueError, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer, got 2.5"),
        ({"lr": -1.0}, ValueError, "lr must be > 0, got -1.0"),
        ({"elbo": "tracegraph"}, ValueError, "elbo must be one of .* got 'tracegraph'"),
        ({"num_particles": 0}, ValueError, "num_particles must be a positive integer, got 0"),
        ({"kl_weight": -0.5}, ValueError, "kl_weight must be >= 0, got -0.5"),
        ({"kl_weight": lambda e: -1.0}, ValueError, r"kl_weight\(0\) must be >= 0, got -1.0"),
        ({"monitor_size": -1}, ValueError, "monitor_size must be a non-negative integer, got -1"),
        (
            {"validation_data": torch.rand(5, 3)},
            ValueError,
            "validation_data must have 4 entries per point",
        ),
        ({"validation_data": GOOD.float()}, TypeError, "validation_data has dtype torch.float32"),
        ({"kl_weight": kl_warmup(3, start=0.5)}, None, None),
    ],
)
def test_fit_rejects(pair, kwargs, error, match):
    arguments = {"data": GOOD, "progress": False, **kwargs}
    if error is None:  # the control: the same call with good arguments runs
        pvae.fit(*pair, arguments.pop("data"), **arguments)
        return
    with pytest.raises(error, match=match):
        pvae.fit(*pair, arguments.pop("data"), **arguments)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_samples": 0}, "num_samples must be a positive integer, got 0"),
        ({"num_samples": True}, "num_samples must be a positive integer, got True"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
        ({"proposal": "mixture"}, "proposal must be one of .* got 'mixture'"),
        ({"x": NAN}, r"x contains a non-finite value nan at index \[3, 2\]"),
        ({"x": GOOD.float()}, "x has dtype torch.float32 but the model's parameters"),
    ],
)
def test_log_marginal_rejects(pair, kwargs, match):
    arguments = {"x": GOOD, "progress": False, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        pvae.log_marginal(*pair, arguments.pop("x"), **arguments)


def test_guide_proposal_needs_a_guide(pair):
    with pytest.raises(ValueError, match="guide is None"):
        pvae.log_marginal(pair[0], None, GOOD, progress=False)


def test_bernoulli_refuses_grey_levels():
    model = build_model("bernoulli", 4, 2, (8,))
    guide = build_guide("diag-normal", model, (8,))
    data = (GOOD > 0.5).double()
    data[2, 1] = 0.25
    with pytest.raises(ValueError, match=r"data must be binary .* data\[2, 1\] = 0.25"):
        pvae.fit(model, guide, data, progress=False)
    with pytest.raises(ValueError, match=r"x must be binary .* x\[2, 1\] = 0.25"):
        pvae.log_marginal(model, guide, data, progress=False)
    with pytest.raises(
        ValueError, match=r"validation_data must be binary .* validation_data\[2, 1\] = 0.25"
    ):
        pvae.fit(model, guide, (GOOD > 0.5).double(), validation_data=data, progress=False)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"variance": "learned"}, "variance must be one of .* got 'learned'"),
        ({"variance": "network", "variance_floor": -1e-3}, "variance_floor must be >= 0"),
        ({"variance": "fixed", "variance_floor": 1e-3}, "variance_floor applies to learned"),
        ({"scale": 0.0}, "scale must be > 0, got 0.0"),
        ({"hidden_sizes": (8, 0)}, "every entry of hidden_sizes must be a positive integer"),
    ],
)
def test_decoder_rejects(kwargs, match):
    arguments = {"hidden_sizes": (8,), **kwargs}
    with pytest.raises(ValueError, match=match):
        NormalDecoder(2, 4, arguments.pop("hidden_sizes"), **arguments)


def test_registry_rejects_unknown_names_and_wrong_pairs():
    with pytest.raises(ValueError, match=r"model must be one of .* got 'gaussian'"):
        build_model("gaussian", 4, 2)
    model = build_model("normal-fixed", 4, 2, (8,))
    with pytest.raises(ValueError, match="guide 'exact' does not fit a VAE model"):
        build_guide("exact", model)
    with pytest.raises(TypeError, match=r"model must be a pvae\.models\.LinearGaussian, got VAE"):
        LinearGaussianPosterior(model)
    with pytest.raises(ValueError, match="hidden_sizes must be \\(\\)"):
        build_model("linear-gaussian", 4, 2, (8,))


def test_data_rejects():
    with pytest.raises(ValueError, match="binarize and dequantize exclude each other"):
        load_digits(binarize=True, dequantize=True)
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\), got 1\.5"):
        split(GOOD, test_fraction=1.5)
    with pytest.raises(ValueError, match="leaves an empty split"):
        split(GOOD[:2], test_fraction=0.1)
    with pytest.raises(ValueError, match="labels must have one entry per point"):
        split(GOOD, torch.arange(3))


def model_without_plate(x):
    pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(2))
    pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0).to_event(2), obs=x)


def guide_without_plate(x):
    pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 2]).to_event(2))


def model_with_other_name(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("obs", dist.Normal(torch.zeros_like(x), 1.0).to_event(1), obs=x)


def test_the_observed_site_may_have_any_name():
    # Found from the trace: the one observed site inside the data plate (here "obs"). The
    # latent site's prior equals the guide, so every log-weight is log N(x | 0, I) exactly.
    result = pvae.log_marginal(
        model_with_other_name, vae_guide, GOOD, num_samples=3, progress=False
    )
    expected = dist.Normal(torch.zeros_like(GOOD), 1.0).log_prob(GOOD).sum(-1)
    torch.testing.assert_close(result.estimate, expected)


def model_without_event(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0), obs=x)  # no .to_event(1)


def vae_guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))


def guide_with_extra_site(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("w", dist.Normal(0.0, 1.0))


def model_observing_nothing(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))


def vae_model(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", dist.Normal(torch.zeros_like(x), 1.0).to_event(1), obs=x)


@pytest.mark.parametrize(
    "model,guide,error,match",
    [
        (model_without_plate, guide_without_plate, ContractError, r"site 'z' is not inside pyro"),
        # Pyro's own plate check names this one first.
        (model_without_event, vae_guide, ValueError, r"Shape mismatch inside plate\('data'\)"),
        (model_observing_nothing, vae_guide, ContractError, "must observe the data at a sample"),
        (vae_model, guide_with_extra_site, ContractError, "must sample exactly the model's"),
    ],
)
def test_contract_violations_are_named(model, guide, error, match):
    with pytest.raises(error, match=match):
        pvae.log_marginal(model, guide, GOOD, num_samples=2, progress=False)


def test_checkpoint_errors(tmp_path, pair):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pvae.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(pvae.checkpoint.CheckpointError, match="could not be read"):
        pvae.load(junk)
    path = pvae.save(tmp_path / "good.pt", *pair)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(pvae.checkpoint.CheckpointError, match="could not be read"):
        pvae.load(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(pvae.checkpoint.CheckpointError, match="is not a pvae checkpoint"):
        pvae.load(other)
    with pytest.raises(ValueError, match=r"was not built by pvae\.build_model"):
        pvae.save(tmp_path / "x.pt", vae_model, pair[1])


def test_schedule_and_encoder_arguments_are_checked():
    with pytest.raises(ValueError, match=r"start must be in \[0, 1\], got 3"):
        kl_warmup(2, start=3)
    with pytest.raises(ValueError, match="scale_floor must be > 0, got -5"):
        pvae.guides.DiagNormalGuide(4, 2, scale_floor=-5)


def test_fit_checks_the_contract_before_the_first_step():
    calls = []

    def model(x):
        calls.append(x.shape[0])
        vae_model_without_x(x)

    with pytest.raises(ContractError, match=r"must observe the data at a sample site inside"):
        pvae.fit(model, guide_without_plate, GOOD, epochs=3, batch_size=2, progress=False)
    assert calls == [2]  # one check on two points, no training step


def vae_model_without_x(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
