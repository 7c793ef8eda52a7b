"""convert-ssl: an official-format WavLM checkpoint -> HuggingFace dir, hidden states as the reference code's."""

import json

import pytest
import torch

from tests.conftest import REPO
from wespk.bin import checkpoint_tool
from wespk.frontends.convert import parse_conv_layers, rename_official_key
from wespk.frontends.ssl_frontend import SSLFrontend

DATA = REPO / "tests" / "frontends" / "data"


@pytest.mark.parametrize("variant, normalize", [("base", False), ("large", True)])
def test_converted_checkpoint_gives_the_reference_hidden_states(tmp_path, variant, normalize, capsys):
    out = tmp_path / f"wavlm_{variant}"
    assert checkpoint_tool.main(["convert-ssl", str(DATA / f"wavlm_{variant}_tiny.pt"), str(out)]) == 0
    assert "2 layers" in capsys.readouterr().out
    assert json.loads((out / "preprocessor_config.json").read_text())["do_normalize"] is normalize
    reference = torch.load(DATA / f"wavlm_{variant}_tiny_reference.pt", weights_only=True)
    # the reference code normalises outside its model: compare the model alone
    frontend = SSLFrontend("wavlm", model_dir=str(out), normalize=False).eval()
    with torch.no_grad():
        hidden, _ = frontend(reference["wav"])
    expected = reference["hidden_states"]  # [L, T, D], layer_results of the reference code
    assert hidden.shape[-1] == expected.shape[0] == 3
    assert (hidden[0].permute(2, 1, 0) - expected).abs().max().item() <= 1e-4


def test_conversion_errors_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, bad)
    assert checkpoint_tool.main(["convert-ssl", str(bad), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "'cfg' and 'model'" in err
    assert not (tmp_path / "out").exists()


def test_rename_map_and_conv_spec():
    assert rename_official_key("encoder.layers.3.self_attn.grep_a") == "encoder.layers.3.attention.gru_rel_pos_const"
    assert rename_official_key("feature_extractor.conv_layers.0.2.weight") == \
        "feature_extractor.conv_layers.0.layer_norm.weight"
    assert rename_official_key("encoder.pos_conv.0.weight_g") == \
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    assert rename_official_key("label_embs_concat") is None
    assert parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(ValueError, match="unsupported"):
        parse_conv_layers("__import__('os')")
