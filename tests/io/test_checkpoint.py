"""wespk.io.checkpoint: weights-only reading, refusal of files that run code, one state_dict rule."""

import os
import pickle
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from wespk.io.checkpoint import (STATE_DICT_CONTAINER_KEYS, CheckpointError, UnsafeCheckpointError,
                                 find_state_dict, load_checkpoint, load_model_weights, load_state_dict,
                                 save_checkpoint)
from wespk.models.checkpoint_tools import read_checkpoint
from wespk.train import checkpoint as ckpt


class WritesMarker:
    """Unpickling this calls ``exec``, which writes ``path``: what a crafted checkpoint does."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('code ran')",)


def write_crafted(path, marker, fmt="zip"):
    """A checkpoint whose ``model`` entry runs code when unpickled, in one of torch's file formats."""
    content = {"model": WritesMarker(marker), "epoch": 1}
    if fmt == "zip":
        torch.save(content, path)
    elif fmt == "legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle stream of the given protocol
        with open(path, "wb") as f:
            pickle.dump(content, f, protocol=int(fmt))
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy", "2", "4", "5"])
def test_crafted_file_is_refused_in_one_line_naming_it(tmp_path, fmt):
    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "avg_model.pt", marker, fmt)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(str(path))
    message = str(info.value)
    assert message == (f"{path}: refusing to unpickle a global 'builtins.exec' (this file could run code); "
                       f"wespk never runs code from a checkpoint: if the file is yours, save its state_dict "
                       f"(tensors only) with torch.save and give that file instead")
    assert not marker.exists()
    for reader in (load_state_dict, read_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
            reader(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_crafted_file_runs_code_when_fully_unpickled_but_never_in_wespk(tmp_path, fmt):
    """The crafted file is effective (full unpickling, done here by the test, runs it: so the refusals are
    real), and ``trust=True`` still refuses it: no path of wespk unpickles code."""
    marker = tmp_path / "marker"
    path = write_crafted(tmp_path / "x.pt", marker, fmt)
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        load_checkpoint(str(path), trust=True)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what wespk never does
    assert marker.read_text() == "code ran"


def test_trust_accepts_data_only_objects_and_nothing_else(tmp_path):
    """Another trainer's checkpoint with its options as an argparse.Namespace and numpy scalars: refused by
    default (naming the global), read with trust, the state_dict found under ``model``."""
    import argparse

    path = tmp_path / "other.pt"
    weights = {"w": torch.arange(3.0)}
    torch.save({"model": weights, "args": argparse.Namespace(lr=0.1, name="run"), "best_eer": np.float32(2.5),
                "epoch": np.int64(7)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"other\.pt: refusing to unpickle a global '(argparse|numpy)"):
        load_checkpoint(str(path))
    content = load_checkpoint(str(path), trust=True)
    assert content["args"] == argparse.Namespace(lr=0.1, name="run")
    assert content["best_eer"] == np.float32(2.5) and content["best_eer"].dtype == np.float32
    assert int(content["epoch"]) == 7
    state_dict, key = find_state_dict(content, str(path))
    assert key == "model" and torch.equal(state_dict["w"], weights["w"])


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found$"):
        load_checkpoint(str(tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(str(tmp_path))
    good = tmp_path / "good.pt"
    save_checkpoint(str(good), {"model": {"w": torch.ones(3)}})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:100])
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    for name in ("cut.pt", "text.pt"):
        with pytest.raises(CheckpointError, match=rf"{name}: not a PyTorch checkpoint") as info:
            load_checkpoint(str(tmp_path / name))
        assert not isinstance(info.value, UnsafeCheckpointError) and "\n" not in str(info.value)


class Small(torch.nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.front = torch.nn.Conv1d(3, 5, 1)
        self.bn = torch.nn.BatchNorm1d(5)
        self.projection = torch.nn.Module()
        self.projection.weight = torch.nn.Parameter(torch.randn(classes, 5))


def test_wespeaker_model_files_load(tmp_path):
    """WeSpeaker saves a bare state_dict (an OrderedDict, module. prefixed under DDP) or a training dict."""
    torch.manual_seed(0)
    source = Small()
    bare = source.state_dict()
    assert isinstance(bare, OrderedDict)
    forms = {
        "bare.pt": bare,
        "ddp.pt": OrderedDict(("module." + k, v) for k, v in bare.items()),
        "train.pt": {"model": bare, "epoch": 3},
        "lightning.pt": {"state_dict": bare, "epoch": 3, "optimizer_states": []},
        "other.pt": {"model_state_dict": bare, "step": 10},
    }
    for name, content in forms.items():
        torch.save(content, tmp_path / name)
        target = Small()
        assert load_model_weights(target, str(tmp_path / name)) == ([], [])
        for key, value in bare.items():
            assert torch.equal(target.state_dict()[key], value), (name, key)


def test_analysis_and_loading_accept_the_same_containers(tmp_path):
    state = Small().state_dict()
    for key in STATE_DICT_CONTAINER_KEYS:
        torch.save({key: state, "extra": 1}, tmp_path / "c.pt")
        assert read_checkpoint(str(tmp_path / "c.pt")).container_key == key
        assert list(load_state_dict(str(tmp_path / "c.pt"))) == list(state)
    torch.save({"weights": state}, tmp_path / "odd.pt")
    for reader in (load_state_dict, read_checkpoint):
        with pytest.raises(CheckpointError, match=r"odd\.pt: no state_dict found \(top-level keys: weights"):
            reader(str(tmp_path / "odd.pt"))
    with pytest.raises(CheckpointError, match="holds a list"):
        find_state_dict([1, 2], "list.pt")


def test_shape_mismatch_is_one_checkpoint_error(tmp_path):
    torch.save(Small().state_dict(), tmp_path / "w.pt")
    other = Small()
    other.front = torch.nn.Conv1d(3, 7, 1)
    with pytest.raises(CheckpointError, match=r"w\.pt: state_dict does not fit the model: .*front\.weight"):
        load_model_weights(other, str(tmp_path / "w.pt"))


def draws():
    return random.random(), float(np.random.rand()), np.random.normal(), torch.rand(3).tolist()


def test_training_state_round_trips_weights_only_with_exact_rng(tmp_path):
    """What wespk saves now loads with plain torch.load(weights_only=True) and resumes the RNGs exactly."""
    model = Small()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    loss = model.front(torch.randn(2, 3, 4)).sum()
    loss.backward()
    optimizer.step()
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in numpy's state
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
             "epoch": 2, "step_in_epoch": 5, "global_step": 25, "rng": [ckpt.rng_state()],
             "config": {"model": "X", "model_args": {"embed_dim": 8}, "seed": 42}}
    expected = draws()
    save_checkpoint(str(tmp_path / "model_2_5.pt"), state)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / "model_2_5.pt")) == []
    loaded = torch.load(tmp_path / "model_2_5.pt", weights_only=True)   # no allow-list at all
    assert load_checkpoint(str(tmp_path / "model_2_5.pt")).keys() == loaded.keys()
    draws()  # move every generator on
    ckpt.set_rng_state(loaded["rng"][0])
    assert draws() == expected
    restored = torch.optim.SGD(Small().parameters(), lr=0.1, momentum=0.9, nesterov=True)
    restored.load_state_dict(loaded["optimizer"])
    assert torch.equal(restored.state_dict()["state"][0]["momentum_buffer"],
                       optimizer.state_dict()["state"][0]["momentum_buffer"])
    assert loaded["config"] == state["config"] and loaded["step_in_epoch"] == 5


def old_rng_state():
    """The RNG state as wespk saved it before this module existed (numpy's legacy tuple, an ndarray)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def test_older_wespk_checkpoint_loads_and_resumes(tmp_path):
    model = Small()
    random.seed(4), np.random.seed(5), torch.manual_seed(6)
    np.random.normal()
    old = {"model": model.state_dict(), "optimizer": {"state": {}, "param_groups": []}, "epoch": 1,
           "step_in_epoch": 3, "global_step": 3, "rng": [old_rng_state()], "config": {"model": "X"}}
    expected = draws()
    with open(tmp_path / "model_1_3.pt", "wb") as f:   # the old saving code: torch.save of that dict
        torch.save(old, f)
    # numpy's array is why plain weights_only loading fails; the named allow-list is what admits it
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "model_1_3.pt", weights_only=True)
    loaded = load_checkpoint(str(tmp_path / "model_1_3.pt"))
    assert isinstance(loaded["rng"][0]["numpy"][1], np.ndarray)
    draws()
    ckpt.set_rng_state(loaded["rng"][0])
    assert draws() == expected
    assert ckpt.latest_checkpoint(str(tmp_path)).endswith("model_1_3.pt")
    target = Small()
    load_model_weights(target, str(tmp_path / "model_1_3.pt"))
    assert torch.equal(target.front.weight, model.front.weight)


def test_numpy_allow_list_admits_only_plain_arrays(tmp_path):
    """An object array's elements are still unpickled by the weights-only rules."""
    marker = tmp_path / "marker"
    array = np.empty(1, dtype=object)
    array[0] = WritesMarker(marker)
    with open(tmp_path / "obj.pt", "wb") as f:
        torch.save({"rng": array}, f)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(str(tmp_path / "obj.pt"))
    assert not marker.exists()


def test_latest_checkpoint_refuses_rather_than_skips_a_crafted_file(tmp_path):
    marker = tmp_path / "marker"
    save_checkpoint(str(tmp_path / "model_1.pt"), {"model": {}, "optimizer": {}})
    write_crafted(tmp_path / "model_2.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"model_2\.pt: refusing"):
        ckpt.latest_checkpoint(str(tmp_path))
    assert not marker.exists()


def test_save_is_atomic(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(str(path), {"a": torch.ones(2)})

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(str(path), {"a": Unsaveable()})
    assert torch.equal(load_checkpoint(str(path))["a"], torch.ones(2))
    assert os.listdir(tmp_path) == ["m.pt"]
