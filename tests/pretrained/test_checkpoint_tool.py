"""python -m wespk.bin.checkpoint_tool: prefixes, analysis, conversions, errors."""

import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import yaml

from tests.conftest import REPO
from wespk.bin.checkpoint_tool import main
from wespk.models import checkpoint_tools as ct
from wespk.models.ge2e_lstm import GE2E_LSTM
from wespk.io.checkpoint import load_model_weights


def small_state_dict():
    torch.manual_seed(0)
    return GE2E_LSTM(feat_dim=8, hidden_dim=6, embed_dim=4, num_layers=2).state_dict()


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def run_tool(*args):
    return main([str(a) for a in args])


def test_prefix_round_trip_bare_state_dict(tmp_path):
    original = small_state_dict()
    torch.save(original, tmp_path / "model.pt")
    assert run_tool("add-prefix", tmp_path / "model.pt", tmp_path / "ddp.pt") == 0
    wrapped = torch.load(tmp_path / "ddp.pt")
    assert all(k.startswith("module.") for k in wrapped) and len(wrapped) == len(original)
    assert run_tool("strip-prefix", tmp_path / "ddp.pt", tmp_path / "back.pt", "--prefix", "module.") == 0
    assert_same_state(torch.load(tmp_path / "back.pt"), original)


def test_prefix_commands_keep_the_training_checkpoint_around_the_state_dict(tmp_path):
    state = small_state_dict()
    checkpoint = {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 3}
    torch.save(checkpoint, tmp_path / "model_3.pt")
    assert run_tool("replace-prefix", tmp_path / "model_3.pt", tmp_path / "renamed.pt",
                    "--old", "embedding.", "--new", "head.embedding.") == 0
    renamed = torch.load(tmp_path / "renamed.pt")
    assert renamed["epoch"] == 3 and renamed["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert "head.embedding.weight" in renamed["model"] and "lstm.weight_ih_l0" in renamed["model"]
    assert run_tool("replace-prefix", tmp_path / "renamed.pt", tmp_path / "again.pt",
                    "--old", "head.", "--new", "") == 0
    assert_same_state(torch.load(tmp_path / "again.pt")["model"], state)


def test_library_prefix_functions():
    state = OrderedDict([("module.a.weight", torch.ones(2)), ("b.bias", torch.zeros(1))])
    assert list(ct.strip_prefix(state, "module.")) == ["a.weight", "b.bias"]
    with pytest.raises(ValueError, match="twice"):
        ct.strip_prefix(OrderedDict([("module.a", torch.ones(1)), ("a", torch.ones(1))]), "module.")
    with pytest.raises(ValueError, match="no key starts with 'encoder.'"):
        ct.replace_prefix(state, "encoder.", "")
    with pytest.raises(ValueError, match="non-empty"):
        ct.add_prefix(state, "")
    assert ct.common_prefix(["module.x.a", "module.x.b", "module.y"]) == "module."
    assert ct.common_prefix(["a.b", "c.d"]) == ""


def test_analyze_reports_prefixes_counts_and_dtypes(tmp_path, capsys):
    state = ct.add_prefix(small_state_dict(), "module.")
    state["module.embedding.weight"] = state["module.embedding.weight"].half()
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "ckpt.pt")
    assert run_tool("analyze", tmp_path / "ckpt.pt") == 0
    report = capsys.readouterr().out
    assert "state_dict under key 'state_dict'; other top-level keys: epoch" in report
    assert "common prefix: 'module.'" in report
    assert "wrapper prefix 'module.' on 10/10 keys (DistributedDataParallel / DataParallel)" in report
    analysis = ct.analyze_state_dict(state)
    lstm_params = sum(v.numel() for k, v in state.items() if k.startswith("module.lstm."))
    assert analysis["modules"]["lstm"] == (8, lstm_params)
    assert analysis["modules"]["embedding"] == (2, 6 * 4 + 4)
    assert analysis["dtypes"] == {"float16": (1, 24), "float32": (9, lstm_params + 4)}
    assert f"{lstm_params:,}" in report and "float16 (1 tensors, 24 elements)" in report


def test_errors_are_one_line_and_leave_no_output(tmp_path, capsys):
    assert run_tool("analyze", tmp_path / "missing.pt") == 1
    assert capsys.readouterr().err.strip() == f"checkpoint_tool: error: {tmp_path / 'missing.pt'}: checkpoint not found"

    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n")
    assert run_tool("strip-prefix", text, tmp_path / "out.pt") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"checkpoint_tool: error: {text}: not a PyTorch checkpoint") and "\n" not in err

    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert run_tool("analyze", tmp_path / "list.pt") == 1
    assert "no state_dict found (the file holds a list" in capsys.readouterr().err

    torch.save(small_state_dict(), tmp_path / "bare.pt")
    assert run_tool("strip-prefix", tmp_path / "bare.pt", tmp_path / "out.pt") == 1
    assert "no key starts with 'module.'" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.pt", "list.pt", "notes.pt"]


def test_runs_as_a_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "wespk.bin.checkpoint_tool", "analyze", str(tmp_path / "x.pt")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"checkpoint_tool: error: {tmp_path / 'x.pt'}: checkpoint not found"]


WESPEAKER_CONFIG = {
    "exp_dir": "exp/XVEC", "gpus": "[0,1]", "num_epochs": 150,
    "dataset_args": {"resample_rate": 16000, "shuffle": True, "speed_perturb": True, "num_frms": 200,
                     "fbank_args": {"num_mel_bins": 40, "frame_shift": 10, "frame_length": 25, "dither": 1.0},
                     "spec_aug": False},
    "model": "XVEC",
    "model_args": {"feat_dim": 40, "hid_dim": 16, "stats_dim": 24, "embed_dim": 8},
    "projection_args": {"project_type": "arc_margin", "scale": 32.0},
    "optimizer": "SGD",
}


def test_convert_wespeaker_checkpoint(tmp_path):
    from wespk.models.tdnn import XVEC
    torch.manual_seed(1)
    model = XVEC(**WESPEAKER_CONFIG["model_args"])
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.projection.weight"] = torch.randn(30, 8)
    torch.save({"state_dict": state, "epoch": 150}, tmp_path / "model_150.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(WESPEAKER_CONFIG))

    out = tmp_path / "model_dir"
    assert run_tool("convert-wespeaker", tmp_path / "model_150.pt", out, "--config", tmp_path / "config.yaml") == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config == {"model": "XVEC", "model_args": WESPEAKER_CONFIG["model_args"],
                      "dataset_args": {"resample_rate": 16000, "fbank_args": WESPEAKER_CONFIG["dataset_args"]["fbank_args"]}}
    saved = torch.load(out / "avg_model.pt")
    assert not any(k.startswith("module.") for k in saved) and "projection.weight" in saved
    reloaded = XVEC(**config["model_args"])
    load_model_weights(reloaded, str(out / "avg_model.pt"))
    assert_same_state(reloaded.state_dict(), model.state_dict())


def test_convert_wespeaker_rejects_a_mismatched_config(tmp_path, capsys):
    torch.save(small_state_dict(), tmp_path / "avg_model.pt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(WESPEAKER_CONFIG))
    assert run_tool("convert-wespeaker", tmp_path / "avg_model.pt", tmp_path / "out",
                    "--config", tmp_path / "config.yaml") == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'avg_model.pt'}: does not fit XVEC of {tmp_path / 'config.yaml'}" in err
    assert not (tmp_path / "out" / "avg_model.pt").exists()
    assert run_tool("convert-wespeaker", tmp_path / "avg_model.pt", tmp_path / "out",
                    "--config", tmp_path / "nope.yaml") == 1
    assert "nope.yaml: config file not found" in capsys.readouterr().err


def test_convert_resemblyzer_from_a_given_file(synthetic_resemblyzer_checkpoint, tmp_path):
    out = tmp_path / "ge2e"
    assert run_tool("convert-resemblyzer", out, "--from", synthetic_resemblyzer_checkpoint) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    args = config["model_args"]
    assert (args["feat_dim"], args["hidden_dim"], args["embed_dim"], args["num_layers"]) == (40, 32, 24, 3)
    assert config["loss_args"] == {"init_w": 12.5, "init_b": -3.25, "loss_method": "softmax"}
    assert config["dataset_args"]["feature_type"] == "resemblyzer_mel"

    model = GE2E_LSTM(**args)
    load_model_weights(model, str(out / "avg_model.pt"))
    source = torch.load(synthetic_resemblyzer_checkpoint)["model_state"]
    lstm = torch.nn.LSTM(40, 32, 3, batch_first=True)
    lstm.load_state_dict({k[len("lstm."):]: v for k, v in source.items() if k.startswith("lstm.")})
    x = torch.randn(2, 160, 40).abs()
    _, (hidden, _) = lstm(x)
    raw = torch.relu(hidden[-1] @ source["linear.weight"].T + source["linear.bias"])
    with torch.no_grad():
        assert torch.allclose(model.train()(x), raw / raw.norm(dim=1, keepdim=True), atol=1e-6)


def test_convert_resemblyzer_errors(tmp_path, capsys):
    assert run_tool("convert-resemblyzer", tmp_path / "out", "--from", tmp_path / "missing.pt") == 1
    assert f"{tmp_path / 'missing.pt'}: checkpoint not found" in capsys.readouterr().err
    torch.save(small_state_dict(), tmp_path / "wespk_model.pt")
    assert run_tool("convert-resemblyzer", tmp_path / "out", "--from", tmp_path / "wespk_model.pt") == 1
    assert "unexpected keys for resemblyzer's encoder: embedding.weight" in capsys.readouterr().err
    assert not (tmp_path / "out" / "avg_model.pt").exists()


def test_find_resemblyzer_weights_without_importing_it(monkeypatch):
    pytest.importorskip("resemblyzer")
    from wespk.pretrained.resemblyzer import find_resemblyzer_weights
    monkeypatch.delitem(sys.modules, "resemblyzer", raising=False)
    path = find_resemblyzer_weights()
    assert path.name == "pretrained.pt" and path.stat().st_size > 10_000_000
    assert "resemblyzer" not in sys.modules
