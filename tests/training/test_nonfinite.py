"""fit's guard against non-finite steps: diagnosis, the last good state, on_nonfinite."""

import copy
import logging
import math
from contextlib import nullcontext

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, TraceMeanField_ELBO

import pvae
from pvae.registry import build_guide, build_model
from pvae.training import JointOptim, KLWeight, NonFiniteError


def tensors(*modules):
    return [t.detach().clone() for m in modules for t in [*m.parameters(), *m.buffers()]]


def equal(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def store_values():
    return {name: p.detach().clone() for name, p in pyro.get_param_store().named_parameters()}


def vae(name="normal-shared"):
    model = build_model(name, 6, 2, (8,))
    return model, build_guide("diag-normal", model, (8,))


@pytest.mark.parametrize("validation", [True, False])
def test_nan_in_a_decoder_weight_is_named_and_the_last_good_state_restored(validation):
    # A NaN written into one entry of the decoder's first weight after epoch 1: the first step
    # of epoch 2 is non-finite. With Pyro's checks on (the first step of every epoch) the
    # step fails in the model's Normal; without them, at the loss and gradient check. Either
    # way the error names exactly that parameter and entry and the site "x" of the model, and
    # the pair is back at the end of epoch 1 (the state before the injection).
    pyro.enable_validation(validation)
    model, guide = vae()
    weight = model.decoder.net[0].weight
    saved = {}

    def inject(record):
        if record["epoch"] == 1:
            saved["tensors"] = tensors(model, guide)
            with torch.no_grad():
                weight[3, 1] = math.nan

    with (
        pytest.warns(UserWarning, match="Encountered NaN") if not validation else nullcontext(),
        pytest.raises(NonFiniteError) as caught,
    ):
        pvae.fit(
            model,
            guide,
            torch.rand(40, 6),
            epochs=3,
            batch_size=16,
            callback=inject,
            progress=False,
        )
    err = caught.value
    name = pyro.get_param_store().param_name(weight)
    assert list(err.parameters) == [name]
    assert "1 NaN and 0 infinite of 16 entries, the first at index (3, 1)" in err.parameters[name]
    assert (err.epoch, err.step, err.global_step) == (2, 1, 4)  # 3 steps per epoch
    assert (err.site, err.program) == ("x", "model")
    assert "distribution parameter 'loc'" in err.site_detail
    assert repr(name) in str(err) and "epoch 2, step 1" in str(err) and "'x'" in str(err)
    assert "end of epoch 1" in err.restored
    if validation:  # Pyro's check of the Normal's loc raised; fit names it as the cause
        assert isinstance(err.__cause__, ValueError) and err.loss is None
    else:  # the loss and gradient check before the update
        assert err.__cause__ is None and math.isnan(err.loss) and err.gradients
    assert equal(tensors(model, guide), saved["tensors"])
    assert all(torch.isfinite(t).all() for t in tensors(model, guide))


def sqrt_pair():
    """A pair whose guide reads its latent mean as sqrt(root) · mean(x): at root = 0 every
    density is finite, but d sqrt(root)/d root = ∞, so the gradient of ``root`` is not."""

    def model(x):
        loc = pyro.param("loc", torch.zeros(x.shape[-1]))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(loc + z, 1.0).to_event(1), obs=x)

    def guide(x):
        root = pyro.param("root", torch.tensor(1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample(
                "z", dist.Normal(torch.sqrt(root) * x.mean(-1, keepdim=True), 1.0).to_event(1)
            )

    return model, guide


def test_a_non_finite_gradient_stops_the_step_before_its_update():
    # root set to 0 after epoch 1: the loss of the next step is finite, the gradient of root
    # is not. The error names root (and only root) among the gradients, finds no non-finite
    # site, and neither the parameters nor the optimizer state moved.
    model, guide = sqrt_pair()
    optimizer = JointOptim(torch.optim.Adam, {"lr": 1e-2})
    saved = {}

    def zero_root(record):
        if record["epoch"] == 1:
            with torch.no_grad():
                pyro.param("root").unconstrained().zero_()
            saved["values"] = store_values()
            saved["optimizer"] = optimizer.get_state()

    with pytest.raises(NonFiniteError) as caught:
        pvae.fit(
            model,
            guide,
            torch.randn(30, 3) + 1,
            epochs=2,
            batch_size=10,
            optimizer=optimizer,
            callback=zero_root,
            progress=False,
        )
    err = caught.value
    assert list(err.gradients) == ["root"] and err.parameters == {}
    assert (err.epoch, err.step, err.site) == (2, 1, None)
    assert math.isfinite(err.loss)
    assert "backward pass" in str(err) and "not applied" in err.restored
    after = store_values()
    assert after.keys() == saved["values"].keys()
    assert all(torch.equal(after[k], saved["values"][k]) for k in after)
    state = optimizer.get_state()
    assert state.keys() == saved["optimizer"].keys()
    for name, entry in state.items():
        for key, value in entry.items():
            expected = saved["optimizer"][name][key]
            assert torch.equal(value, expected) if torch.is_tensor(value) else value == expected
    assert all(p.grad is None for _, p in pyro.get_param_store().named_parameters())


def diverging_fit(optimizer, on_nonfinite, **kwargs):
    """Plain SGD at lr = 1 on a small shared-variance VAE: its log-variance overflows in the
    first epoch (the shared scale reaches ∞); at lr = 1/32 it trains."""
    pyro.set_rng_seed(0)
    model, guide = vae()
    data = torch.rand(64, 6)
    history = pvae.fit(
        model,
        guide,
        data,
        epochs=4,
        batch_size=16,
        optimizer=optimizer,
        seed=1,
        on_nonfinite=on_nonfinite,
        progress=False,
        **kwargs,
    )
    return model, guide, history


def rates(optimizer):
    """The learning rates in an optimizer's state (JointOptim, per-parameter, scheduler)."""
    found = set()
    for entry in optimizer.get_state().values():
        if JointOptim.LR_KEY in entry:
            found.add(entry[JointOptim.LR_KEY])
        else:
            entry = entry.get("optimizer", entry)  # a scheduler's: its optimizer's state
            found.update(group["lr"] for group in entry["param_groups"])
    return found


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: JointOptim(torch.optim.Adam, {"lr": 1e-2, "fused": True}),
        lambda: pyro.optim.Adam({"lr": 1e-2}),
        lambda: pyro.optim.ExponentialLR(
            {"optimizer": torch.optim.Adam, "optim_args": {"lr": 1e-2}, "gamma": 0.9}
        ),
    ],
    ids=["joint", "per-parameter", "scheduler"],
)
def test_lower_lr_after_an_injected_nan_repeats_the_epoch_without_it(make_optimizer):
    # The NaN written after epoch 1 makes epoch 2 fail; lower-lr goes back to the end of
    # epoch 1 (before the injection), halves the rate and repeats epoch 2, which now passes.
    model, guide = vae()
    optimizer = make_optimizer()

    def inject(record):
        if record["epoch"] == 1:
            with torch.no_grad():
                model.decoder.net[0].weight[0, 0] = math.nan

    history = pvae.fit(
        model,
        guide,
        torch.rand(40, 6),
        epochs=3,
        batch_size=16,
        optimizer=optimizer,
        callback=inject,
        on_nonfinite="lower-lr",
        progress=False,
    )
    assert list(history.column("lr_halvings")) == [0, 1, 0]
    assert all(torch.isfinite(t).all() for t in tensors(model, guide))
    assert rates(optimizer) == {5e-3}


@pytest.mark.parametrize(
    "make_optimizer",
    [lambda: JointOptim(torch.optim.SGD, {"lr": 1.0}), lambda: pyro.optim.SGD({"lr": 1.0})],
    ids=["joint", "per-parameter"],
)
def test_lower_lr_repeats_the_epoch_at_half_the_rate_and_finishes(make_optimizer, caplog):
    with pytest.raises(NonFiniteError, match="epoch 1"):
        diverging_fit(make_optimizer(), "raise")
    optimizer = make_optimizer()
    with caplog.at_level(logging.WARNING, logger="pvae.training"):
        model, guide, history = diverging_fit(optimizer, "lower-lr")
    halvings = history.column("lr_halvings")
    assert halvings[0] >= 1 and halvings.sum() == halvings[0]  # this run fails in epoch 1 only
    assert len(history) == 4 and all(math.isfinite(v) for v in history.column("loss"))
    assert all(torch.isfinite(t).all() for t in tensors(model, guide))
    assert rates(optimizer) == {0.5 ** halvings.sum()}  # the lower rate stays
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == halvings.sum()
    assert all("Repeating epoch 1 from the state before the first step" in w for w in warnings)
    assert "multiplied by 0.5 (halving 1 of at most 10" in warnings[0]


def test_lower_lr_never_hands_on_epoch_end_a_non_finite_state():
    seen = []
    pair = []

    def check(state):
        seen.append((state.epochs_done, all(torch.isfinite(t).all() for t in tensors(*pair))))

    pyro.set_rng_seed(0)
    pair.extend(vae())
    history = pvae.fit(
        *pair,
        torch.rand(64, 6),
        epochs=3,
        batch_size=16,
        optimizer=JointOptim(torch.optim.SGD, {"lr": 1.0}),
        seed=1,
        on_nonfinite="lower-lr",
        on_epoch_end=check,
        progress=False,
    )
    assert history[0]["lr_halvings"] >= 1
    assert seen == [(1, True), (2, True), (3, True)]


def test_lower_lr_gives_up_after_ten_halvings_in_a_row(caplog):
    # At lr = 100 even 100 / 2¹⁰ diverges in the first epoch.
    optimizer = JointOptim(torch.optim.SGD, {"lr": 100.0})
    with caplog.at_level(logging.WARNING, logger="pvae.training"):
        with pytest.raises(NonFiniteError, match="Gave up after 10 halvings") as caught:
            pyro.set_rng_seed(0)
            model, guide = vae()
            pvae.fit(
                model,
                guide,
                torch.rand(64, 6),
                epochs=2,
                batch_size=16,
                optimizer=optimizer,
                on_nonfinite="lower-lr",
                progress=False,
            )
    assert caught.value.halvings == 10 and caught.value.epoch == 1
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 10
    assert all(torch.isfinite(t).all() for t in tensors(model, guide))
    assert rates(optimizer) <= {100.0 * 0.5**10}


def test_an_update_that_overflows_is_caught_at_the_end_of_the_epoch(ppca):
    # SGD at lr = 1e308 turns every gradient entry above ~1.8 into an infinite parameter:
    # the loss and gradients of that one full-batch step were finite, its result is not.
    # Caught before the epoch ends, it names those parameters, and the pair is back where
    # it started; on_epoch_end never ran.
    model, data = ppca
    guide = pvae.guides.DiagNormalGuide(6, 2, hidden_sizes=(8,))
    initial = tensors(model, guide)
    ended = []
    with pytest.raises(NonFiniteError) as caught:
        pvae.fit(
            model,
            guide,
            data,
            epochs=2,
            batch_size=300,
            optimizer=JointOptim(torch.optim.SGD, {"lr": 1e308}),
            on_epoch_end=ended.append,
            progress=False,
        )
    err = caught.value
    assert (err.epoch, err.step) == (1, 1) and err.parameters and not err.gradients
    assert "non-finite parameters after the update of epoch 1, step 1" in str(err)
    assert all("infinite" in where for where in err.parameters.values())
    assert "before the first step" in err.restored
    assert equal(tensors(model, guide), initial)
    assert ended == []


@pytest.mark.parametrize("bad", ["lower_lr", "ignore", None, 1])
def test_on_nonfinite_is_validated(ppca, bad):
    model, data = ppca
    with pytest.raises(ValueError, match=rf"on_nonfinite must be one of .*got {bad!r}"):
        pvae.fit(model, pvae.guides.LinearGaussianPosterior(model), data, on_nonfinite=bad)


@pytest.mark.parametrize("name", ["normal-shared", "normal-optimal"])
def test_the_guard_leaves_a_finite_run_bitwise_unchanged(name):
    # fit against the loop it replaces: Pyro's SVI.step with the same optimizer, elbo, scaling,
    # seeds and batch order (the generator's first draw is the monitoring subset).
    data = torch.rand(50, 6)
    model, guide = vae(name)
    initial = [copy.deepcopy(model), copy.deepcopy(guide)]
    pvae.fit(model, guide, data, epochs=3, batch_size=16, seed=3, monitor_size=0, progress=False)
    guarded = tensors(model, guide)

    pyro.clear_param_store()
    model, guide = initial

    def scaled(program):
        def run(x, scale):
            with poutine.scale(scale=scale), KLWeight(1.0):
                return program(x)

        return run

    pyro.set_rng_seed(3)
    generator = torch.Generator()
    generator.manual_seed(3)
    torch.randperm(50, generator=generator)
    optimizer = JointOptim(torch.optim.Adam, {"lr": 1e-3, "fused": True})
    svi = SVI(scaled(model), scaled(guide), optimizer, TraceMeanField_ELBO(max_plate_nesting=1))
    for _ in range(3):
        for batch in torch.randperm(50, generator=generator).split(16):
            svi.step(data[batch], 50 / batch.shape[0])
    assert equal(guarded, tensors(model, guide))


def test_the_error_pickles_with_its_diagnosis():
    import pickle

    err = NonFiniteError("boom", epoch=2, step=1, parameters={"w": "1 NaN"}, site="x")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "boom" and back.parameters == {"w": "1 NaN"} and back.site == "x"
    assert isinstance(back, FloatingPointError)


class BufferBreaking(pyro.nn.PyroModule):
    """A VAE model whose (unused) buffer turns infinite at the 6th step: only the end-of-epoch
    check sees it, after that step's update was applied."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.register_buffer("steps", torch.zeros(()))

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps == 6:
                self.steps.fill_(math.inf)
        return self.inner(x)


def test_a_bad_buffer_seen_at_the_end_of_the_epoch_rewinds_to_the_epoch_before():
    # At the end of epoch 2 only a buffer is non-finite (it turned during the epoch's last
    # step, 3 steps of 10 points an epoch). That step's update has been applied, so "before
    # the step" is not a good state: the pair goes back to the end of epoch 1, parameters and
    # buffers alike.
    model, guide = vae()
    breaking = BufferBreaking(model)
    ends = {}

    def keep(state):
        ends[state.epochs_done] = tensors(breaking, guide)

    with pytest.raises(NonFiniteError, match="end of epoch 1"):
        pvae.fit(
            breaking,
            guide,
            torch.rand(30, 6),
            epochs=2,
            batch_size=10,
            seed=0,
            monitor_size=0,
            on_epoch_end=keep,
            progress=False,
        )
    assert list(ends) == [1]
    assert equal(tensors(breaking, guide), ends[1])


def test_a_nan_written_by_the_callback_never_reaches_on_epoch_end():
    # The CLI's per-epoch save is an on_epoch_end: a NaN a callback writes after epoch 2 ends
    # the run in NonFiniteError naming the weight, with the state of the end of epoch 2 (before
    # the callback) put back, and on_epoch_end saw only finite states (epoch 1).
    model, guide = vae()
    weight = model.decoder.net[0].weight
    saved, seen = {}, []

    def inject(record):
        if record["epoch"] == 2:
            saved["tensors"] = tensors(model, guide)
            with torch.no_grad():
                weight[0, 0] = math.nan

    def on_epoch_end(state):
        seen.append(
            (state.epochs_done, all(torch.isfinite(t).all() for t in tensors(model, guide)))
        )

    with pytest.raises(NonFiniteError, match="fit's callback left non-finite values") as caught:
        pvae.fit(
            model,
            guide,
            torch.rand(40, 6),
            epochs=3,
            batch_size=16,
            callback=inject,
            on_epoch_end=on_epoch_end,
            progress=False,
        )
    assert seen == [(1, True)]
    name = pyro.get_param_store().param_name(weight)
    assert list(caught.value.parameters) == [name]
    assert "end of epoch 2" in caught.value.restored
    assert equal(tensors(model, guide), saved["tensors"])
