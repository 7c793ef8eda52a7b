"""Layer aggregation (superb, LAP, MHFA) and the SSL speaker models."""

import pytest
import torch
import torch.nn.functional as F

from tests.frontends.conftest import tiny_config
from wespk.frontends.aggregation import MHFA, LayerAttentivePooling, SuperbWeightedSum
from wespk.models import embedding_from_output, get_speaker_model

MODELS = [
    ("SSL_ASTP", {"layer_aggregation": "superb"}),
    ("SSL_ASTP", {"layer_aggregation": "lap", "aggregation_args": {"out_dim": 64, "num_heads": 4}}),
    ("SSL_ECAPA_TDNN_GLOB_c512", {"layer_aggregation": "superb"}),
    ("SSL_ECAPA_TDNN_GLOB_c512", {"layer_aggregation": "lap", "aggregation_args": {"out_dim": 48}}),
    ("SSL_MHFA", {"head_nb": 8}),
    ("SSL_MHFA", {"head_nb": 8, "layer_aggregation": "lap", "aggregation_args": {"out_dim": 32, "num_heads": 4}}),
]


def build(name, extra, stable=True):
    return get_speaker_model(name)(frontend="wavlm", frontend_args={"config": tiny_config(stable)},
                                   embed_dim=32, **extra)


@pytest.mark.parametrize("name, extra", MODELS)
def test_padded_batch_equals_one_utterance_at_a_time(name, extra):
    torch.manual_seed(0)
    model = build(name, extra).eval()
    lengths = torch.tensor([16000, 11000, 6400])
    wav = torch.randn(3, 16000) * (torch.arange(16000)[None, :] < lengths[:, None])
    with torch.no_grad():
        batched = embedding_from_output(model(wav, lengths))
        for i, n in enumerate(lengths.tolist()):
            alone = embedding_from_output(model(wav[i:i + 1, :n]))
            assert F.cosine_similarity(batched[i:i + 1], alone).item() >= 0.9999
    assert batched.shape == (3, 32)


def test_superb_weights_start_equal_and_sum_per_frame():
    agg = SuperbWeightedSum(3, 4)
    x = torch.randn(2, 4, 5, 3)
    assert torch.allclose(agg(x), x.mean(dim=-1), atol=1e-6)


def test_lap_gates_are_per_frame():
    torch.manual_seed(1)
    lap = LayerAttentivePooling(num_layers=5, in_dim=16, out_dim=8, num_heads=4, dropout=0.0).eval()
    x = torch.randn(1, 16, 6, 5)
    x[:, :, 0] *= 4.0  # frame 0 louder in every layer, with a different layer profile
    x[:, :, 0, 0] += 3.0
    gates = lap.gates(x)
    assert gates.shape == (1, 4, 6, 5)
    weights0 = gates[0, :, 0] / gates[0, :, 0].sum(-1, keepdim=True)
    weights1 = gates[0, :, 1] / gates[0, :, 1].sum(-1, keepdim=True)
    assert (weights0 - weights1).abs().max().item() > 1e-3
    assert lap(x).shape == (1, 8, 6)


def test_lap_state_dict_names_follow_the_papers_code():
    lap = LayerAttentivePooling(13, 32, 16, 4)
    names = {k.split(".")[0] for k in lap.state_dict()}
    assert names == {"in_norm", "in_weight", "sq_weight", "sq_bias", "ex_weight", "ex_bias",
                     "out_weight", "out_norm"}
    assert lap.sq_weight.shape == (4, 13, 6) and lap.ex_weight.shape == (4, 6, 13)


def test_mhfa_loads_the_forks_key_names_strictly():
    layers, dim, heads, cmp, emb = 13, 64, 8, 128, 32
    torch.manual_seed(2)
    fork = {  # BUT's wespeaker fork: WavLM_MHFA.back_end = MHFA(...)
        "back_end.weights_k": torch.randn(layers), "back_end.weights_v": torch.randn(layers),
        "back_end.cmp_linear_k.weight": torch.randn(cmp, dim), "back_end.cmp_linear_k.bias": torch.randn(cmp),
        "back_end.cmp_linear_v.weight": torch.randn(cmp, dim), "back_end.cmp_linear_v.bias": torch.randn(cmp),
        "back_end.att_head.weight": torch.randn(heads, cmp), "back_end.att_head.bias": torch.randn(heads),
        "back_end.pooling_fc.weight": torch.randn(emb, heads * cmp), "back_end.pooling_fc.bias": torch.randn(emb),
    }
    model = get_speaker_model("SSL_MHFA")(frontend="wavlm", embed_dim=emb, head_nb=heads,
                                          frontend_args={"config": tiny_config(layers=12)})
    own = model.state_dict()
    assert {k for k in own if k.startswith("back_end.")} == set(fork)
    full = {**{k: v for k, v in own.items() if not k.startswith("back_end.")}, **fork}
    model.load_state_dict(full, strict=True)
    assert torch.equal(model.back_end.weights_k, fork["back_end.weights_k"])
    # the layer weights start at ones, as in the fork
    assert torch.equal(MHFA(13, dim).weights_v, torch.ones(13))


def test_feat_dim_follows_from_the_frontend():
    model = build("SSL_ECAPA_TDNN_GLOB_c512", {"layer_aggregation": "lap",
                                               "aggregation_args": {"out_dim": 48}})
    assert model.feat_dim == 48 and model.back_end.layer1.conv.in_channels == 48
    assert build("SSL_ECAPA_TDNN_GLOB_c512", {}).feat_dim == 64
    with pytest.raises(ValueError, match="feat_dim 80"):
        build("SSL_ASTP", {"feat_dim": 80})
    with pytest.raises(ValueError, match="unknown aggregation_args"):
        build("SSL_ASTP", {"layer_aggregation": "lap", "aggregation_args": {"heads": 4}})
    with pytest.raises(ValueError, match="disagree"):
        build("SSL_MHFA", {"frontend_lr_ratio": 0.1, "feature_grad_mult": 0.05})
