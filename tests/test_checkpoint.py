"""Checkpoints: the current format (optimizer state, library versions, fit state), files of
earlier versions, a restored optimizer that continues bitwise, and a named error for every
wrong or truncated file (from Python and from ``pvae evaluate``)."""

import pyro
import pytest
import torch
from pyro.infer import SVI, TraceMeanField_ELBO

import pvae
from pvae.checkpoint import CheckpointError
from pvae.cli import main
from pvae.training import History, JointOptim


def small_pair():
    model = pvae.build_model("normal-shared", 64, 2, (8,))
    return model, pvae.build_guide("diag-normal", model, (8,))


@pytest.fixture
def good(tmp_path):
    """A trained pair's checkpoint, with its optimizer's state and a config 'pvae evaluate'
    can use."""
    model, guide = small_pair()
    optimizer = JointOptim(torch.optim.Adam, {"lr": 0.01})
    history = pvae.fit(
        model, guide, pvae.load_digits().train[:64], epochs=2, optimizer=optimizer, progress=False
    )
    config = {"data": "digits", "hidden": (8,), "lr": 0.01}
    return pvae.save(
        tmp_path / "good.pt", model, guide, history=history, config=config, optimizer=optimizer
    )


def rewritten(good, path, change):
    payload = torch.load(good, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


def test_round_trip_of_version_2(good):
    loaded = pvae.load(good)
    assert not loaded.model.training and not loaded.guide.training  # ready to evaluate
    assert isinstance(loaded.history, History) and loaded.history.column("epoch").tolist() == [1, 2]
    assert loaded.config == {"data": "digits", "hidden": [8], "lr": 0.01}  # tuples become lists
    assert set(loaded.versions) == {"pvae", "torch", "pyro"}
    assert loaded.versions["pvae"] == pvae.__version__
    # every parameter's Adam moments and step, and its (here undecayed) learning rate, keyed by
    # the param-store names of the modules load built
    state = loaded.optimizer_state
    parameters = [*loaded.model.parameters(), *loaded.guide.parameters()]
    assert len(state) == len(parameters)
    roots = (loaded.model._pyro_name + ".", loaded.guide._pyro_name + ".")
    assert all(name.startswith(roots) for name in state)
    for entry in state.values():
        assert set(entry) == {"step", "exp_avg", "exp_avg_sq", JointOptim.LR_KEY}
        assert entry[JointOptim.LR_KEY] == 0.01


def test_reads_version_1(good, tmp_path):
    def to_version_1(payload):
        payload["version"] = 1
        del payload["optimizer_state"], payload["versions"]

    loaded = pvae.load(rewritten(good, tmp_path / "v1.pt", to_version_1))
    assert loaded.optimizer_state == {} and loaded.versions == {}
    reference = pvae.load(good)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_a_restored_optimizer_continues_bitwise(tmp_path):
    # Two runs of 4 + 4 SVI steps with a decaying learning rate: one straight through, one
    # restarted from a checkpoint after 4 (new modules, new optimizer, param store cleared).
    # With the optimizer state and the decayed rate restored, the float64 CPU parameters agree
    # bit for bit; restarting the rate schedule instead does not.
    x = pvae.load_digits().train[:32]

    def steps(model, guide, optimizer, seed):
        for module in (model, guide):
            module.train()
        svi = SVI(model, guide, optimizer, TraceMeanField_ELBO())
        pyro.set_rng_seed(seed)
        for _ in range(4):
            svi.step(x)

    def new_optimizer():
        return JointOptim(torch.optim.Adam, {"lr": 0.05}, lr_decay=0.8)

    model, guide = small_pair()
    straight = new_optimizer()
    steps(model, guide, straight, seed=1)
    path = pvae.save(tmp_path / "half.pt", model, guide, optimizer=straight)
    steps(model, guide, straight, seed=2)
    expected = {**model.state_dict(), **guide.state_dict()}

    finals = {}
    for carry_lr in (True, False):
        pyro.clear_param_store()
        loaded = pvae.load(path)
        state = loaded.optimizer_state
        if not carry_lr:
            state = {name: {**entry, JointOptim.LR_KEY: 0.05} for name, entry in state.items()}
        restored = new_optimizer()
        restored.set_state(state)
        steps(loaded.model, loaded.guide, restored, seed=2)
        finals[carry_lr] = {**loaded.model.state_dict(), **loaded.guide.state_dict()}
        if carry_lr:
            rates = {entry[JointOptim.LR_KEY] for entry in restored.get_state().values()}
            assert rates == {straight.optimizer.param_groups[0]["lr"]}
            assert rates.pop() == pytest.approx(0.05 * 0.8**8, rel=1e-15)
    assert expected.keys() == finals[True].keys()
    for key, value in expected.items():
        assert torch.equal(finals[True][key], value), key
    assert not all(torch.equal(finals[False][key], value) for key, value in expected.items())


def test_save_refuses_non_finite_parameters(good):
    before = good.read_bytes()
    model, guide = small_pair()
    name, parameter = list(model.named_parameters())[-1]
    with torch.no_grad():
        parameter.view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    with pytest.raises(ValueError, match=rf"model parameter '{name}' holds 1 NaN and 2 infinite"):
        pvae.save(good, model, guide)
    model, guide = small_pair()
    name, parameter = next(guide.named_parameters())
    with torch.no_grad():
        parameter.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=rf"guide parameter '{name}' .* refusing to write"):
        pvae.save(good, model, guide)
    assert good.read_bytes() == before  # the file there is untouched
    assert [p.name for p in good.parent.iterdir()] == ["good.pt"]  # and no temporary is left


def test_save_refuses_config_values_it_could_not_read_back(tmp_path):
    with pytest.raises(TypeError, match=r"config\['out'\] is a PosixPath"):
        pvae.save(tmp_path / "x.pt", *small_pair(), config={"out": tmp_path})


def truncated(length):
    def make(good, path):
        path.write_bytes(good.read_bytes()[: length(good.stat().st_size)])
        return path

    return make


def state_dict_only(good, path):
    torch.save(small_pair()[0].state_dict(), path)
    return path


def pickled_module(good, path):
    torch.save(small_pair()[0], path)
    return path


def text(good, path):
    path.write_text('{"model": "normal-shared", "epochs": 2}\n')
    return path


def changed(change):
    return lambda good, path: rewritten(good, path, change)


def future_version(payload):
    payload["version"] = 4
    payload["versions"]["pvae"] = "9.0"


def unknown_model(payload):
    payload["model_spec"]["name"] = "normal-quantum"


def wrong_shape(payload):
    payload["model_spec"]["latent_dim"] = 3


def no_weights(payload):
    del payload["guide_state"]


def huge_spec(payload):
    # a small file whose spec asks for hidden layers of 30,000 units each
    payload["model_spec"]["hidden_sizes"] = [30000] * len(payload["model_spec"]["hidden_sizes"])


def nan_weight(payload):
    key = next(k for k, t in payload["model_state"].items() if t.is_floating_point())
    payload["model_state"][key] = payload["model_state"][key].clone().fill_(float("nan"))


def integer_weight(payload):
    key = next(k for k, t in payload["model_state"].items() if t.is_floating_point())
    payload["model_state"][key] = payload["model_state"][key].round().long()


def history_not_a_list(payload):
    payload["history"] = {"epoch": 1}


def config_not_a_dict(payload):
    payload["config"] = "train"


BAD = {
    "missing": (lambda good, path: path, FileNotFoundError, "does not exist"),
    "directory": (lambda good, path: path.mkdir() or path, CheckpointError, "is a directory"),
    "empty": (lambda good, path: path.touch() or path, CheckpointError, r"is empty \(0 bytes\)"),
    "first 10 bytes": (truncated(lambda size: 10), CheckpointError, "is truncated or corrupt"),
    "half": (truncated(lambda size: size // 2), CheckpointError, "is truncated or corrupt"),
    "all but 1 byte": (truncated(lambda size: size - 1), CheckpointError, "truncated or corrupt"),
    "text": (text, CheckpointError, 'is not a torch file \\(it begins with b\'{"model": "norma\''),
    "state_dict": (state_dict_only, CheckpointError, "not a pvae checkpoint.*bare state_dict"),
    "pickled module": (pickled_module, CheckpointError, r"holds Python objects \(pvae\.models"),
    "future version": (
        changed(future_version),
        CheckpointError,
        r"format version 4 \(written by pvae 9.0, .*\); this pvae .* reads versions 1, 2, 3",
    ),
    "unknown model": (
        changed(unknown_model),
        CheckpointError,
        "holds a model named 'normal-quantum', which this pvae .* does not have",
    ),
    "wrong shape": (
        changed(wrong_shape),
        CheckpointError,
        "the model weights do not match its model spec .*size mismatch",
    ),
    "no guide weights": (changed(no_weights), CheckpointError, r"damaged: it lacks \['guide_state"),
    "a spec larger than its weights": (
        changed(huge_spec),
        CheckpointError,
        r"size mismatch for .*the spec needs \((30000, \d+|\d+, 30000)\) \(refused before "
        "allocating the model",
    ),
    "NaN weights": (changed(nan_weight), CheckpointError, r"holds \d+ non-finite value"),
    "integer weights": (changed(integer_weight), CheckpointError, "is torch.int64, where"),
    "history not a list": (
        changed(history_not_a_list),
        CheckpointError,
        "its 'history' is a dict, not a list",
    ),
    "config not a dict": (
        changed(config_not_a_dict),
        CheckpointError,
        "its 'config' is a str, not a dict",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_wrong_or_truncated_checkpoint_is_named(case, good, tmp_path, capsys):
    make, error, match = BAD[case]
    path = make(good, tmp_path / "bad.pt")
    with pytest.raises(error, match=match) as raised:
        pvae.load(path)
    assert repr(str(path)) in str(raised.value)
    assert main(["evaluate", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pvae evaluate: error: ") and repr(str(path)) in err
    assert raised.value.args[0] in err


def test_optimizer_state_is_never_dropped_silently(tmp_path):
    # After pyro.clear_param_store() the state cannot be matched to the parameters by name:
    # saving it must fail and name a parameter, not write an empty optimizer state.
    model, guide = small_pair()
    optimizer = JointOptim(torch.optim.Adam, {"lr": 0.01})
    pvae.fit(
        model, guide, pvae.load_digits().train[:64], epochs=1, optimizer=optimizer, progress=False
    )
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=r"parameter '.*' is not in Pyro's param store"):
        pvae.save(tmp_path / "run.pt", model, guide, optimizer=optimizer)
    assert not (tmp_path / "run.pt").exists()
    # The state of another pair belongs to neither this model nor this guide.
    pairs = [small_pair(), small_pair()]
    optimizers = [JointOptim(torch.optim.Adam, {"lr": 0.01}) for _ in pairs]
    for (model, guide), optimizer in zip(pairs, optimizers, strict=True):
        pvae.fit(
            model,
            guide,
            pvae.load_digits().train[:64],
            epochs=1,
            optimizer=optimizer,
            progress=False,
        )
    with pytest.raises(ValueError, match="belong to neither the model nor the guide"):
        pvae.save(tmp_path / "run.pt", *pairs[0], optimizer=optimizers[1])


def test_joint_optim_refuses_state_another_optimizer_wrote():
    # pyro.optim.Adam keeps one torch optimizer per parameter: its state is a state_dict.
    model, guide = small_pair()
    x = pvae.load_digits().train[:32]
    adam = pyro.optim.Adam({"lr": 0.01})
    SVI(model, guide, adam, TraceMeanField_ELBO()).step(x)
    joint = JointOptim(torch.optim.Adam, {"lr": 0.01})
    joint.set_state(adam.get_state())
    with pytest.raises(ValueError, match=r"not a JointOptim state .* pyro\.optim\.Adam"):
        SVI(model, guide, joint, TraceMeanField_ELBO()).step(x)


def test_a_spec_larger_than_its_weights_is_refused_without_allocating(good, tmp_path):
    # Before this check load built the spec's networks first: 12.7 s and 3.7 GB for this
    # file. The meta-device check allocates nothing: the bytes torch allocates while load
    # refuses it (pvae.estimation.peak_memory counts every tensor it creates) stay small.
    from pvae.estimation import peak_memory

    path = rewritten(good, tmp_path / "huge.pt", huge_spec)
    assert path.stat().st_size < 200_000

    def refused():
        with pytest.raises(CheckpointError, match="refused before allocating"):
            pvae.load(path)

    assert peak_memory(refused) < 10 * path.stat().st_size
