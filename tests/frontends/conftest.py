"""Tiny random-init SSL configs shared by the frontend tests."""

import pytest

pytest.importorskip("transformers")


def tiny_config(stable_layer_norm: bool = False, layers: int = 2, hidden: int = 64):
    """A 2-layer, 64-dim model config (group-norm conv + post-LN, or layer-norm conv + pre-LN)."""
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
            "intermediate_size": 2 * hidden, "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4, "do_stable_layer_norm": stable_layer_norm,
            "feat_extract_norm": "layer" if stable_layer_norm else "group"}
