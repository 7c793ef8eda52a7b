"""Official (and s3prl) WavLM checkpoints -> a HuggingFace ``WavLMModel`` dir.

The official checkpoints (``WavLM-Base+.pt``, ``WavLM-Large.pt``, as
published with microsoft/unilm; s3prl keeps the same file) are a dict
``{"cfg": {...}, "model": state_dict}``. :func:`convert_wavlm_checkpoint`
reads one with ``torch.load(weights_only=True)`` (:mod:`wespk.io.checkpoint`), maps the config to
``WavLMConfig`` (:func:`wavlm_config_from_official`) and the parameter names
with :data:`OFFICIAL_TO_HF` (documented in ``docs/ssl.md``), loads them
strictly into a ``WavLMModel`` and writes ``config.json``, the weights
(safetensors) and ``preprocessor_config.json`` (``do_normalize`` from the
config's ``normalize``) to the output dir, atomically (a temp dir renamed into
place). The result loads with ``frontend_args.model_dir``.
"""

import ast
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from wespk.frontends.ssl_frontend import FrontendError, import_transformers
from wespk.io.checkpoint import CheckpointError, load_checkpoint

logger = logging.getLogger(__name__)

#: Official parameter name patterns -> HuggingFace ``WavLMModel`` names, in order
#: (``{i}`` a layer index). Conv layers: ``.0`` is the conv, ``.2`` the group norm
#: of the first layer (``extractor_mode: default``), ``.2.1`` the layer norm of every
#: layer (``extractor_mode: layer_norm``).
OFFICIAL_TO_HF: Tuple[Tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"mask_emb", r"masked_spec_embed"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", r"encoder.pos_conv_embed.conv.WEIGHT_G"),
    (r"encoder\.pos_conv\.0\.weight_v", r"encoder.pos_conv_embed.conv.WEIGHT_V"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(k|v|q|out)_proj\.(weight|bias)",
     r"encoder.layers.\1.attention.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_linear\.(weight|bias)",
     r"encoder.layers.\1.attention.gru_rel_pos_linear.\2"),
    (r"encoder\.layers\.(\d+)\.self_attn\.grep_a", r"encoder.layers.\1.attention.gru_rel_pos_const"),
    (r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight",
     r"encoder.layers.\1.attention.rel_attn_embed.weight"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
)

#: The weight-norm halves of the positional conv under each transformers naming.
WEIGHT_NORM_NAMES = {
    "parametrizations": ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    "legacy": ("weight_g", "weight_v"),
}

#: Official config keys -> ``WavLMConfig`` keys (values carried over as they are).
CONFIG_KEYS = {
    "encoder_layers": "num_hidden_layers", "encoder_embed_dim": "hidden_size",
    "encoder_ffn_embed_dim": "intermediate_size", "encoder_attention_heads": "num_attention_heads",
    "activation_fn": "hidden_act", "layer_norm_first": "do_stable_layer_norm", "conv_bias": "conv_bias",
    "conv_pos": "num_conv_pos_embeddings", "conv_pos_groups": "num_conv_pos_embedding_groups",
    "num_buckets": "num_buckets", "max_distance": "max_bucket_distance", "dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout", "activation_dropout": "activation_dropout",
    "encoder_layerdrop": "layerdrop", "dropout_input": "feat_proj_dropout",
}

#: The official defaults (WavLMConfig of microsoft/unilm) for keys a checkpoint may leave out.
OFFICIAL_DEFAULTS: Dict[str, Any] = {
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12, "activation_fn": "gelu",
    "layer_norm_first": False, "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False, "normalize": False, "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0, "conv_pos": 128,
    "conv_pos_groups": 16, "relative_position_embedding": False, "num_buckets": 320,
    "max_distance": 1280, "gru_rel_pos": False,
}


def parse_conv_layers(spec: str) -> List[Tuple[int, int, int]]:
    """``"[(512,10,5)] + [(512,3,2)] * 4"`` -> the list of (dim, kernel, stride), without eval."""
    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"conv_feature_layers: unsupported expression {ast.dump(node)[:60]}")
    try:
        layers = value(ast.parse(spec, mode="eval"))
    except SyntaxError as e:
        raise ValueError(f"conv_feature_layers {spec!r}: {e}") from None
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise ValueError(f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride)")
    return layers


def wavlm_config_from_official(cfg: Mapping[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """``(WavLMConfig kwargs, normalize)`` from an official checkpoint's ``cfg``."""
    merged = {**OFFICIAL_DEFAULTS, **dict(cfg)}
    if not merged["relative_position_embedding"] or not merged["gru_rel_pos"]:
        raise ValueError("only WavLM checkpoints with gated relative position embeddings "
                         "(relative_position_embedding and gru_rel_pos true) map onto transformers' WavLM")
    mode = merged["extractor_mode"]
    if mode not in ("default", "layer_norm"):
        raise ValueError(f"unknown extractor_mode {mode!r}")
    layers = parse_conv_layers(merged["conv_feature_layers"])
    hf = {new: merged[old] for old, new in CONFIG_KEYS.items()}
    hf.update(feat_extract_norm="group" if mode == "default" else "layer",
              conv_dim=[d for d, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
              conv_stride=[s for _, _, s in layers], feat_extract_activation="gelu",
              mask_time_prob=0.0, mask_feature_prob=0.0)
    return hf, bool(merged["normalize"])


def rename_official_key(key: str, weight_norm: str = "parametrizations") -> Optional[str]:
    """The HuggingFace name of an official parameter, or None when it has none."""
    g_name, v_name = WEIGHT_NORM_NAMES[weight_norm]
    for pattern, replacement in OFFICIAL_TO_HF:
        if re.fullmatch(pattern, key):
            new = re.sub(pattern, replacement, key)
            return new.replace("WEIGHT_G", g_name).replace("WEIGHT_V", v_name)
    return None


def read_official_checkpoint(path: str) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """``(cfg, state_dict)`` of an official WavLM checkpoint, read without running code
    (:func:`wespk.io.checkpoint.load_checkpoint`, ``weights_only=True``)."""
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as e:
        raise FrontendError(str(e)) from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("cfg"), dict) \
            or not isinstance(loaded.get("model"), dict):
        keys = sorted(loaded)[:8] if isinstance(loaded, dict) else type(loaded).__name__
        raise FrontendError(f"{path}: not an official WavLM checkpoint (expected a dict with 'cfg' and "
                            f"'model', found {keys})")
    return dict(loaded["cfg"]), dict(loaded["model"])


def convert_wavlm_checkpoint(checkpoint: str, out_dir: str) -> Dict[str, Any]:
    """Write a HuggingFace WavLM model dir from an official checkpoint; returns a summary."""
    transformers = import_transformers()
    cfg, official = read_official_checkpoint(checkpoint)
    try:
        hf_kwargs, normalize = wavlm_config_from_official(cfg)
    except ValueError as e:
        raise FrontendError(f"{checkpoint}: {e}") from None
    model = transformers.WavLMModel(transformers.WavLMConfig(**hf_kwargs))
    target = model.state_dict()
    naming = "parametrizations" if any("parametrizations" in k for k in target) else "legacy"
    converted, dropped = {}, []
    for key, tensor in official.items():
        new = rename_official_key(key, naming)
        if new is None or new == "masked_spec_embed" and new not in target:
            dropped.append(key)
            continue
        if new not in target:
            raise FrontendError(f"{checkpoint}: {key} maps to {new}, which WavLMModel has not")
        if tuple(target[new].shape) != tuple(tensor.shape):
            raise FrontendError(f"{checkpoint}: {key} has shape {tuple(tensor.shape)}, "
                                f"{new} needs {tuple(target[new].shape)}")
        converted[new] = tensor.to(target[new].dtype)  # float16 files load into the float32 model
    missing = sorted(set(target) - set(converted) - {"masked_spec_embed"})
    if missing:
        raise FrontendError(f"{checkpoint}: no weights for {missing[:6]}{' ...' if len(missing) > 6 else ''}")
    model.load_state_dict(converted, strict=False)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-ssl-", dir=parent)
    try:
        model.save_pretrained(tmp)
        preprocessor = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                        "sampling_rate": 16000, "padding_value": 0.0, "do_normalize": normalize,
                        "return_attention_mask": hf_kwargs["feat_extract_norm"] == "layer"}
        with open(os.path.join(tmp, "preprocessor_config.json"), "w", encoding="utf-8") as f:
            json.dump(preprocessor, f, indent=2)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dropped:
        logger.info("%s: %d parameter(s) without a WavLMModel counterpart left out: %s", checkpoint,
                    len(dropped), dropped[:6])
    return {"out_dir": out_dir, "parameters": len(converted), "dropped": dropped,
            "layers": hf_kwargs["num_hidden_layers"], "hidden_size": hf_kwargs["hidden_size"],
            "normalize": normalize}
