"""fit(resume=...): an interrupted run, continued from its FitState, equals the run that never
stopped, bitwise on CPU."""

import copy
import io
import math
import warnings

import pyro
import pytest
import torch

import pvae
from pvae.registry import build_guide, build_model
from pvae.training import FitState, IllPosedWarning, JointOptim, Watchdog, default_optimizer


def tensors(*modules):
    return [t.detach().clone() for m in modules for t in [*m.parameters(), *m.buffers()]]


def equal(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def vae(name, data_dim=6):
    model = build_model(name, data_dim, 2, (8,))
    return model, build_guide("diag-normal", model, (8,))


def stored(state: FitState, optimizer: JointOptim) -> dict:
    """The state and the optimizer state written and read back as a checkpoint would be."""
    buffer = io.BytesIO()
    torch.save({"fit": state.to_dict(), "optimizer": optimizer.get_state()}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def interrupted(pair, data, stop, total, resume_seed="same", **options):
    """Train ``pair`` for ``stop`` epochs, then continue a copy of it, with a fresh optimizer
    and the global RNG disturbed, to ``total`` epochs; return the copy and the history."""
    pyro.clear_param_store()
    optimizer = default_optimizer(1e-3, data)
    states = []
    pvae.fit(*pair, data, epochs=stop, optimizer=optimizer, on_epoch_end=states.append, **options)
    assert [s.epochs_done for s in states] == list(range(1, stop + 1))
    saved = stored(states[-1], optimizer)
    torch.manual_seed(12345)  # whatever happens in between: resume restores the RNGs

    pyro.clear_param_store()  # the copy takes the same Pyro names
    pair = copy.deepcopy(pair)
    fresh = default_optimizer(1e-3, data)
    fresh.set_state(saved["optimizer"])
    if resume_seed != "same":
        options = {**options, "seed": resume_seed}
    history = pvae.fit(
        *pair,
        data,
        epochs=total,
        optimizer=fresh,
        resume=FitState.from_dict(saved["fit"]),
        **options,
    )
    return pair, history


@pytest.mark.parametrize("name", ["normal-shared", "normal-optimal"])
@pytest.mark.parametrize("monitor", [False, True], ids=["unmonitored", "monitored"])
def test_a_resumed_run_equals_the_uninterrupted_one(name, monitor):
    # normal-optimal keeps its closed-form γ* as a running average in buffers, updated by
    # every training step: the weights carry it.
    data = torch.rand(50, 6)
    options = {"batch_size": 16, "seed": 3, "progress": False}
    if monitor:
        options.update(monitor_size=20, validation_data=torch.rand(15, 6))
    else:
        options.update(monitor_size=0)
    initial = vae(name)

    pyro.clear_param_store()
    straight_pair = copy.deepcopy(initial)
    straight = pvae.fit(*straight_pair, data, epochs=4, **options)

    resumed_pair, resumed = interrupted(copy.deepcopy(initial), data, 2, 4, **options)
    assert equal(tensors(*straight_pair), tensors(*resumed_pair))
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]
    assert list(resumed) == list(straight)
    if monitor:
        assert all(math.isfinite(r["val_elbo"]) for r in resumed)

    # seed=None continues the stored seed as well; the run differs without the hand-over
    none_pair, _ = interrupted(copy.deepcopy(initial), data, 2, 4, resume_seed=None, **options)
    assert equal(tensors(*straight_pair), tensors(*none_pair))
    pyro.clear_param_store()
    restarted = copy.deepcopy(initial)
    pvae.fit(*restarted, data, epochs=2, **options)
    pvae.fit(*restarted, data, epochs=2, **options)
    assert not equal(tensors(*straight_pair), tensors(*restarted))


def test_a_resumed_run_warns_as_the_whole_run_would():
    # A pixel that is 0 in every point: the per-pixel variance network shrinks its variance
    # there, and a watchdog with a high threshold warns once (measured: in epoch 3 of 8, at a
    # variance of 0.04, which falls to 0.01 by epoch 5). Resumed after epoch 3, the run does
    # not warn again; a watchdog started afresh at the interruption, with the variance there
    # as its baseline, would.
    data = torch.rand(64, 6)
    data[:, 0] = 0.0
    options = {"batch_size": 16, "seed": 0, "lr": 3e-2, "monitor_size": 64, "progress": False}
    initial = vae("normal-network")

    def watching():
        return Watchdog(variance_threshold=0.05)

    with pytest.warns(IllPosedWarning, match="epoch 3:") as caught:
        pyro.clear_param_store()
        straight = pvae.fit(*copy.deepcopy(initial), data, epochs=8, watchdog=watching(), **options)
    assert len(caught) == 1
    assert straight[-1]["min_variance"] < straight[2]["min_variance"]

    states = []
    pyro.clear_param_store()
    pair = copy.deepcopy(initial)
    optimizer = default_optimizer(3e-2, data)
    with pytest.warns(IllPosedWarning):
        pvae.fit(
            *pair,
            data,
            epochs=3,
            optimizer=optimizer,
            watchdog=watching(),
            on_epoch_end=states.append,
            **options,
        )
    assert states[-1].watchdog["warned"] == ["variance"]
    saved = optimizer.get_state()  # keyed by param-store names: before clearing the store
    for watchdog, expected in ((states[-1].watchdog, 0), (None, 1)):
        state = FitState.from_dict({**states[-1].to_dict(), "watchdog": watchdog})
        pyro.clear_param_store()
        fresh = default_optimizer(3e-2, data)
        fresh.set_state(saved)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", IllPosedWarning)
            resumed = pvae.fit(
                *copy.deepcopy(pair),
                data,
                epochs=8,
                optimizer=fresh,
                watchdog=watching(),
                resume=state,
                **options,
            )
        assert sum(issubclass(w.category, IllPosedWarning) for w in seen) == expected
        assert list(resumed) == list(straight)


def test_on_epoch_end_does_not_change_training():
    data = torch.rand(40, 6)
    initial = vae("normal-shared")
    finals = []
    for hook in (None, lambda state: torch.rand(100)):
        pyro.clear_param_store()
        pair = copy.deepcopy(initial)
        pvae.fit(*pair, data, epochs=2, batch_size=16, seed=1, on_epoch_end=hook, progress=False)
        finals.append(tensors(*pair))
    assert equal(*finals)


def a_state(epochs_done=2):
    pair = vae("normal-shared")
    states = []
    pvae.fit(
        *pair,
        torch.rand(20, 6),
        epochs=epochs_done,
        seed=5,
        on_epoch_end=states.append,
        progress=False,
    )
    return pair, states[-1]


def test_fit_state_round_trips_through_plain_values():
    _, state = a_state()
    plain = state.to_dict()
    assert set(plain) == {
        "epochs_done",
        "history",
        "order_seed",
        "order_rng",
        "torch_rng",
        "cuda_rng",
        "watchdog",
    }
    back = FitState.from_dict(stored(state, JointOptim(torch.optim.Adam, {}))["fit"])
    assert back.epochs_done == 2 and back.order_seed == 5 and back.cuda_rng is None
    assert back.history == state.history and back.watchdog == state.watchdog
    assert torch.equal(back.order_rng, state.order_rng)
    assert torch.equal(back.torch_rng, state.torch_rng)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"order_rng": None}, "'order_rng' must be a CPU generator state"),
        ({"torch_rng": torch.zeros(3)}, "'torch_rng' must be a CPU generator state"),
        ({"epochs_done": -1}, "'epochs_done' must be a non-negative integer"),
        ({"epochs_done": 3}, "'history' holds 2 records but 'epochs_done' is 3"),
        ({"history": "nope"}, "'history' must be a list of dicts"),
        ({"order_seed": 1.5}, "'order_seed' must be an integer"),
        ({"cuda_rng": [1]}, "'cuda_rng' must be None or a list"),
        ({"watchdog": 3}, "'watchdog' must be None or a dict"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"torch_rng": ...}, "has no key 'torch_rng'"),
    ],
)
def test_fit_state_from_dict_names_the_bad_key(change, message):
    _, state = a_state()
    plain = state.to_dict()
    plain.update(change)
    plain = {key: value for key, value in plain.items() if value is not ...}
    with pytest.raises(ValueError, match=message):
        FitState.from_dict(plain)


def test_fit_state_to_dict_refuses_what_a_checkpoint_cannot_hold():
    _, state = a_state()
    state.history[1]["estimate"] = object()
    with pytest.raises(TypeError, match=r"history\[1\]\['estimate'\] is a object"):
        state.to_dict()


def test_resume_arguments_are_checked():
    pair, state = a_state()
    data = torch.rand(20, 6)
    with pytest.raises(ValueError, match=r"epochs \(2\) must exceed resume.epochs_done \(2\)"):
        pvae.fit(*pair, data, epochs=2, resume=state, progress=False)
    with pytest.raises(ValueError, match=r"seed \(4\) must be None or .* = 5\)"):
        pvae.fit(*pair, data, epochs=3, seed=4, resume=state, progress=False)
    with pytest.raises(TypeError, match=r"resume must be a FitState .* got dict"):
        pvae.fit(*pair, data, epochs=3, resume=state.to_dict(), progress=False)
    with pytest.raises(TypeError, match="on_epoch_end must be callable or None, got int"):
        pvae.fit(*pair, data, epochs=3, on_epoch_end=1, progress=False)
    history = pvae.fit(*pair, data, epochs=3, seed=5, resume=state, progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]


def test_watchdog_state_round_trips_and_names_a_bad_key():
    watchdog = Watchdog()
    watchdog.reset(initial_variance=0.25, bounded=False)
    watchdog.warned.add("variance")
    state = watchdog.get_state()
    assert state == {"initial_variance": 0.25, "bounded": False, "warned": ["variance"]}
    other = Watchdog()
    other.set_state(state)
    assert other.get_state() == state
    with pytest.raises(ValueError, match="no key 'bounded'"):
        other.set_state({"initial_variance": 1.0, "warned": []})
    with pytest.raises(ValueError, match="'warned' must be a list"):
        other.set_state({**state, "warned": "variance"})
