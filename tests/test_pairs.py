"""Every (model, guide) pair pvae exports: one SVI step, gradients everywhere, save/load."""

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

import pvae
import pvae.guides
import pvae.models
from pvae.registry import GUIDES, MODELS, build_guide, build_model, compatible_guides

DATA_DIM, LATENT_DIM, HIDDEN = 6, 2, (8,)
#: Programs with hand-set parameters and closed-form log p(x), not trained from the registry:
#: tests/models/test_constructions.py, tests/models/test_memorizing.py and
#: tests/theory/test_proposition2.py check them against closed forms and quadrature.
CONSTRUCTIONS = {
    "MatteiFrellsen",
    "OneDimensional",
    "OneDimensionalGuide",
    "every_point_shared",
    "exact_posterior_guide",
    "one_point_network",
}


def hidden_for(model_name):
    return () if model_name == "linear-gaussian" else HIDDEN


def all_pairs():
    pairs = []
    for name in MODELS:
        model = build_model(name, DATA_DIM, LATENT_DIM, hidden_for(name))
        pairs += [(name, guide) for guide in compatible_guides(model)]
    return pairs


PAIRS = all_pairs()


def make_pair(model_name, guide_name, x=None):
    model = build_model(model_name, DATA_DIM, LATENT_DIM, hidden_for(model_name))
    if guide_name == "per-point":  # non-amortized: built for its training points
        x = make_data(model_name) if x is None else x
        return model, build_guide(guide_name, model, (), data=x)
    return model, build_guide(guide_name, model, HIDDEN)


def make_data(model_name, num_points=32):
    data = torch.rand(num_points, DATA_DIM)
    return (data > 0.5).double() if model_name == "bernoulli" else data


def test_every_exported_class_is_reached_by_some_pair():
    built = [make_pair(*pair) for pair in PAIRS]
    model_types = {type(model).__name__ for model, _ in built}
    guide_types = {type(guide).__name__ for _, guide in built}
    assert set(pvae.models.__all__) - CONSTRUCTIONS <= model_types
    assert set(pvae.guides.__all__) - CONSTRUCTIONS <= guide_types
    assert {guide for _, guide in PAIRS} == set(GUIDES)


@pytest.mark.parametrize("model_name,guide_name", PAIRS)
def test_svi_step_is_finite_and_reaches_every_parameter(model_name, guide_name):
    x = make_data(model_name)
    model, guide = make_pair(model_name, guide_name, x)
    loss = Trace_ELBO().differentiable_loss(model, guide, x)
    assert torch.isfinite(loss)
    loss.backward()
    parameters = list(model.named_parameters()) + list(guide.named_parameters())
    assert parameters
    for name, parameter in parameters:
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    before = [p.detach().clone() for _, p in parameters]
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    assert torch.isfinite(torch.tensor(svi.step(x)))
    assert any(not torch.equal(b, p) for b, (_, p) in zip(before, parameters, strict=True))


@pytest.mark.parametrize("model_name,guide_name", PAIRS)
def test_fit_then_save_load_round_trip(tmp_path, model_name, guide_name):
    x = make_data(model_name)
    model, guide = make_pair(model_name, guide_name, x)
    history = pvae.fit(model, guide, x, epochs=2, batch_size=16, progress=False)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    path = pvae.save(tmp_path / "pair.pt", model, guide, history=history, config={"k": 1})
    loaded = pvae.load(path)
    assert type(loaded.model) is type(model) and type(loaded.guide) is type(guide)
    np.testing.assert_equal(loaded.history, list(history))  # NaN-aware (Bernoulli: no variance)
    assert loaded.config == {"k": 1}
    for original, copy in ((model, loaded.model), (guide, loaded.guide)):
        state, loaded_state = original.state_dict(), copy.state_dict()
        assert state.keys() == loaded_state.keys()
        for key in state:
            assert torch.equal(state[key], loaded_state[key]), key
    estimates = []
    for pair in ((model, guide), (loaded.model, loaded.guide)):
        pyro.set_rng_seed(3)
        if guide_name == "delta":  # a point mass has no importance weights: compare the ELBO terms
            estimates.append(pvae.elbo_terms(*pair, x)["elbo"])
        else:
            estimates.append(pvae.log_marginal(*pair, x, num_samples=20, progress=False).estimate)
    torch.testing.assert_close(estimates[0], estimates[1], rtol=0, atol=0)


def test_checkpoint_keeps_its_dtype(tmp_path):
    torch.set_default_dtype(torch.float32)
    model, guide = make_pair("normal-shared", "diag-normal")
    path = pvae.save(tmp_path / "float32.pt", model, guide)
    torch.set_default_dtype(torch.float64)
    loaded = pvae.load(path)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    assert {p.dtype for p in loaded.guide.parameters()} == {torch.float32}
    assert torch.get_default_dtype() == torch.float64


def test_autoencoder_objective_is_the_reconstruction_log_likelihood():
    """DeltaGuide + kl_weight=0 is the autoencoder: the loss is −Σ log p(x | f(x)), exactly
    (no sampling), which we recompute by hand from the decoder."""
    model = build_model("normal-shared", DATA_DIM, LATENT_DIM, HIDDEN)
    guide = build_guide("delta", model, HIDDEN)
    x = make_data("normal-shared")
    history = pvae.fit(model, guide, x, epochs=1, batch_size=32, kl_weight=0.0, progress=False)
    assert history[0]["kl_weight"] == 0.0
    loss_fn = pyro.infer.TraceMeanField_ELBO()
    with torch.no_grad():
        expected = -model.decoder.x_dist(guide.encoder(x), x).log_prob(x).sum()
        scaled = pvae.training.KLWeight(0.0)
        loss = loss_fn.loss(scaled(model), scaled(guide), x)
    torch.testing.assert_close(torch.tensor(loss), expected, rtol=1e-12, atol=0)


def test_point_mass_guide_has_no_importance_weights():
    model = build_model("normal-shared", DATA_DIM, LATENT_DIM, HIDDEN)
    guide = build_guide("delta", model, HIDDEN)
    with pytest.raises(ValueError, match="'z' is a point mass"):
        pvae.log_marginal(model, guide, make_data("normal-shared"), progress=False)
