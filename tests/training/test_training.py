"""fit: minibatch scaling, particles, KL weight, monitoring without side effects, determinism."""

import logging
import math

import pyro
import pytest
import torch
from pyro import poutine

import pvae
import pvae.training.optim
from pvae.guides import DiagNormalGuide, LinearGaussianPosterior
from pvae.registry import build_guide, build_model
from pvae.training import JointOptim, KLWeight, kl_cyclical, kl_warmup


@pytest.mark.parametrize("batch_size", [7, 64, 300])
@pytest.mark.parametrize("elbo,num_particles", [("trace", 1), ("meanfield", 3)])
def test_minibatch_loss_is_the_full_data_objective(ppca, batch_size, elbo, num_particles):
    # With the exact posterior as guide every particle's ELBO is exactly log p(x), so the
    # scaled minibatch losses average to −mean log p(x) with no Monte Carlo error at all.
    # lr = 1e-12 keeps the parameters fixed to ~1e-10 over the epoch.
    model, data = ppca
    exact = -model.log_prob(data).mean().item()
    history = pvae.fit(
        model,
        LinearGaussianPosterior(model),
        data,
        epochs=1,
        batch_size=batch_size,
        lr=1e-12,
        elbo=elbo,
        num_particles=num_particles,
        progress=False,
    )
    assert history[0]["loss"] == pytest.approx(exact, rel=1e-8)
    assert history[0]["elbo"] == pytest.approx(-exact, rel=1e-8)


def test_kl_weight_scales_latent_sites_only(ppca):
    model, data = ppca
    with KLWeight(0.3):
        trace = poutine.trace(model).get_trace(data[:5])
    assert trace.nodes["z"]["scale"] == pytest.approx(0.3)
    assert trace.nodes["x"]["scale"] == 1.0


def test_kl_weight_enters_the_loss_as_beta_times_kl(ppca):
    # loss(β) = −recon + β·KL with the analytic KL (meanfield, diagonal guide): the difference
    # between two β is exactly (β₁ − β₀)·KL up to the recon term's Monte Carlo noise, which
    # we remove by using the same random numbers for both runs.
    model, data = ppca
    guide = DiagNormalGuide(6, 2, hidden_sizes=(8,))
    losses = []
    for beta in (0.0, 1.0):
        pyro.set_rng_seed(5)
        history = pvae.fit(
            model,
            guide,
            data,
            epochs=1,
            batch_size=300,
            lr=1e-12,
            kl_weight=beta,
            seed=None,
            monitor_size=0,
            progress=False,
        )
        losses.append(history[0]["loss"])
    kl = pvae.elbo_terms(model, guide, data)["kl"].mean().item()
    assert losses[1] - losses[0] == pytest.approx(kl, rel=1e-6)


def test_kl_cyclical_schedule():
    schedule = kl_cyclical(4, ramp=0.5, cycles=2)
    # period 4, β reaches 1 after 2 epochs of each period; after 2 periods it stays at 1
    assert [schedule(e) for e in range(10)] == [0, 0.5, 1, 1, 0, 0.5, 1, 1, 1, 1]
    assert [kl_cyclical(2, ramp=1.0)(e) for e in range(5)] == [0, 0.5, 0, 0.5, 0]
    with pytest.raises(ValueError, match="ramp must be in"):
        kl_cyclical(4, ramp=1.5)
    with pytest.raises(ValueError, match="period"):
        kl_cyclical(0)


def test_kl_warmup_schedule():
    schedule = kl_warmup(4, start=0.2)
    assert [schedule(e) for e in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    model, data = build_model("normal-fixed", 6, 2, (8,)), torch.rand(40, 6)
    history = pvae.fit(
        model,
        build_guide("diag-normal", model, (8,)),
        data,
        epochs=3,
        kl_weight=schedule,
        progress=False,
    )
    assert history.column("kl_weight") == pytest.approx([0.2, 0.4, 0.6])


def snapshot(*modules):
    return [t.detach().clone() for m in modules for t in list(m.parameters()) + list(m.buffers())]


def test_evaluation_never_changes_parameters_or_buffers():
    # The σ-VAE decoder refits γ* from every batch in training mode; evaluation must not.
    model = build_model("normal-optimal", 6, 2, (8,))
    guide = build_guide("diag-normal", model, (8,))
    train, held_out = torch.rand(50, 6), torch.rand(20, 6) + 3.0
    pvae.fit(model, guide, train, epochs=2, progress=False)
    model.train()
    before = snapshot(model, guide)
    pvae.log_marginal(model, guide, held_out, num_samples=10, progress=False)
    pvae.elbo_per_point(model, guide, held_out, num_samples=10)
    pvae.iwae_bound(model, guide, held_out, num_samples=5, num_repeats=2)
    pvae.elbo_terms(model, guide, held_out)
    after = snapshot(model, guide)
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert model.training and guide.training  # modes restored


def test_validation_monitoring_does_not_change_training():
    def run(validation):
        model = build_model("normal-shared", 6, 2, (8,))
        guide = build_guide("diag-normal", model, (8,))
        torch.manual_seed(0)
        model.load_state_dict(reference_model)
        guide.load_state_dict(reference_guide)
        pvae.fit(model, guide, data, epochs=3, validation_data=validation, progress=False)
        return snapshot(model, guide)

    data = torch.rand(60, 6)
    reference = build_model("normal-shared", 6, 2, (8,))
    reference_model = reference.state_dict()
    reference_guide = build_guide("diag-normal", reference, (8,)).state_dict()
    with_validation, without = run(torch.rand(30, 6)), run(None)
    assert all(torch.equal(a, b) for a, b in zip(with_validation, without, strict=True))


def test_same_seed_same_history_and_estimates():
    def run():
        torch.manual_seed(1)
        model = build_model("normal-network", 6, 2, (8,))
        guide = build_guide("diag-normal", model, (8,))
        history = pvae.fit(model, guide, data, epochs=3, batch_size=16, seed=4, progress=False)
        estimate = pvae.log_marginal(model, guide, data[:5], num_samples=30, progress=False)
        return history, estimate.estimate

    data = torch.rand(50, 6)
    (history_a, estimate_a), (history_b, estimate_b) = run(), run()
    assert list(history_a) == list(history_b)
    assert torch.equal(estimate_a, estimate_b)


def test_history_records_and_logging(caplog):
    model = build_model("normal-network", 6, 2, (8,))
    guide = build_guide("diag-normal", model, (8,))
    data = torch.rand(40, 6)
    with caplog.at_level(logging.INFO, logger="pvae.training"):
        history = pvae.fit(model, guide, data, epochs=2, validation_data=data[:10], progress=False)
    assert [r["epoch"] for r in history] == [1, 2]
    expected = {"loss", "kl_weight", "elbo", "recon", "kl", "min_variance"}
    assert expected | {f"val_{k}" for k in ("elbo", "recon", "kl", "min_variance")} <= set(
        history[0]
    )
    assert all(math.isfinite(v) for v in history.column("min_variance"))
    assert history[0]["elbo"] == pytest.approx(history[0]["recon"] - history[0]["kl"])
    assert sum("epoch 2" in message for message in caplog.messages) == 1
    with pytest.raises(KeyError, match="no column 'nope'"):
        history.column("nope")


def test_progress_bars_can_be_shown_and_hidden(capsys):
    model = build_model("normal-fixed", 6, 2, (8,))
    guide = build_guide("diag-normal", model, (8,))
    data = torch.rand(20, 6)
    pvae.fit(model, guide, data, epochs=1, progress=False)
    pvae.log_marginal(model, guide, data, num_samples=5, progress=False)
    assert capsys.readouterr().err == ""
    pvae.fit(model, guide, data, epochs=1, progress=True)
    pvae.log_marginal(model, guide, data, num_samples=5, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "log p(x)" in err and "100%" in err


def train_copies(optimizers, steps=5):
    """Train identical pairs, one per optimizer, on the same data and random numbers."""
    data = torch.rand(64, 6)
    finals = []
    for make_optimizer in optimizers:
        pyro.clear_param_store()
        torch.manual_seed(2)
        model = build_model("normal-shared", 6, 2, (8,))
        guide = build_guide("diag-normal", model, (8,))
        pvae.fit(
            model,
            guide,
            data,
            epochs=steps,
            batch_size=16,
            optimizer=make_optimizer(),
            seed=3,
            monitor_size=0,
            progress=False,
        )
        finals.append(snapshot(model, guide))
    return finals


def test_joint_optimizer_updates_like_pyro_adam():
    joint, per_parameter = train_copies(
        [lambda: JointOptim(torch.optim.Adam, {"lr": 1e-2}), lambda: pyro.optim.Adam({"lr": 1e-2})]
    )
    for a, b in zip(joint, per_parameter, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_default_optimizer_is_fused_adam_with_pyro_adams_update():
    # fit's default: one fused torch Adam over all parameters (torch >= 2.4 on CPU), the same
    # update as Pyro's per-parameter Adam up to float rounding.
    assert pvae.training.optim.adam_args(1e-2, torch.zeros(1)) == {"lr": 1e-2, "fused": True}
    fused, per_parameter = train_copies(
        [
            lambda: JointOptim(torch.optim.Adam, {"lr": 1e-2, "fused": True}),
            lambda: pyro.optim.Adam({"lr": 1e-2}),
        ]
    )
    for a, b in zip(fused, per_parameter, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("validation", [True, False])
@pytest.mark.parametrize("every_step", [True, False])
def test_pyro_checks_run_on_each_epochs_first_step(ppca, validation, every_step):
    # A model that records, at every step, whether distributions validate their arguments:
    # the user's pyro.enable_validation setting on the first step of each epoch, and on every
    # step with validate_every_step=True.
    model, data = ppca
    seen = []

    def recording_model(x):
        seen.append(torch.distributions.Distribution._validate_args)
        return model(x)

    pyro.enable_validation(validation)
    pvae.fit(
        recording_model,
        LinearGaussianPosterior(model),
        data,
        epochs=2,
        batch_size=100,
        monitor_size=0,
        validate_every_step=every_step,
        progress=False,
    )
    seen = seen[3:]  # the contract, data-support and module checks before training
    first_steps = [True, False, False] * 2
    expected = [validation and (every_step or first) for first in first_steps]
    assert seen == expected
    assert torch.distributions.Distribution._validate_args is validation  # restored


def test_joint_optimizer_state_round_trips_through_pyro_param_names(ppca):
    # Two fits with one optimizer equal two fits with a state hand-over to a fresh optimizer
    # in between (the same seeds, so the same random numbers); without the hand-over they differ.
    model, data = ppca
    guide = DiagNormalGuide(6, 2, hidden_sizes=(8,))
    initial = [{k: v.clone() for k, v in m.state_dict().items()} for m in (model, guide)]

    def run(hand_over):
        model.load_state_dict(initial[0])
        guide.load_state_dict(initial[1])
        optimizer = JointOptim(torch.optim.Adam, {"lr": 1e-2})
        for seed in (1, 2):
            pvae.fit(
                model,
                guide,
                data,
                epochs=5,
                batch_size=100,
                optimizer=optimizer,
                seed=seed,
                monitor_size=0,
                progress=False,
            )
            state = optimizer.get_state()
            if hand_over is not None:
                optimizer = JointOptim(torch.optim.Adam, {"lr": 1e-2})
                if hand_over:
                    optimizer.set_state(state)
        return snapshot(model, guide), state

    straight, state = run(hand_over=None)
    resumed, _ = run(hand_over=True)
    restarted, _ = run(hand_over=False)
    assert set(state) == {name for name, _ in pyro.get_param_store().named_parameters()}
    for a, b in zip(straight, resumed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert not all(torch.allclose(a, b) for a, b in zip(straight, restarted, strict=True))


def test_joint_optimizer_lr_decay_is_geometric():
    # After n steps the learning rate is lr·decay^n (exactly, up to float rounding).
    model = build_model("normal-shared", 6, 2, (8,))
    guide = build_guide("diag-normal", model, (8,))
    optimizer = JointOptim(torch.optim.Adam, {"lr": 1e-2}, lr_decay=0.9)
    pvae.fit(
        model,
        guide,
        torch.rand(64, 6),
        epochs=2,
        batch_size=16,
        optimizer=optimizer,
        monitor_size=0,
        progress=False,
    )
    assert optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.9**8, rel=1e-12)
    decayed, constant = train_copies(
        [
            lambda: JointOptim(torch.optim.Adam, {"lr": 1e-2}, lr_decay=0.5),
            lambda: JointOptim(torch.optim.Adam, {"lr": 1e-2}),
        ]
    )
    assert not all(torch.allclose(a, b) for a, b in zip(decayed, constant, strict=True))
    # A parameter that first appears later joins at the decayed rate, not the initial one.
    late = torch.nn.Parameter(torch.zeros(2))
    late.grad = torch.ones(2)
    optimizer([late])
    assert [g["lr"] for g in optimizer.optimizer.param_groups] == pytest.approx([1e-2 * 0.9**9] * 2)
    with pytest.raises(ValueError, match=r"lr_decay must be in \(0, 1\], got 1.5"):
        JointOptim(torch.optim.Adam, {"lr": 1e-2}, lr_decay=1.5)
