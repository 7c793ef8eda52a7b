"""Convert resemblyzer's pretrained GE2E speaker encoder into a wespk model dir.

The PyPI package ``resemblyzer`` (Apache-2.0, Resemble AI) ships
``pretrained.pt``: a checkpoint ``{"step", "model_state", "optimizer_state"}``
of a 3-layer, 256-unit LSTM encoder with a 256-dim embedding trained with
the GE2E loss on 40-band mel spectrograms. The conversion

* renames ``linear.*`` to ``embedding.*`` (``lstm.*`` keys are unchanged)
  so the weights load into :class:`wespk.models.ge2e_lstm.GE2E_LSTM` with
  ``strict=True``;
* moves the GE2E similarity scale and bias (``similarity_weight``,
  ``similarity_bias``) into the config as ``loss_args`` (useful to fine-tune
  with :class:`wespk.losses.ge2e.GE2ELoss`), and drops the optimizer state;
* writes ``config.yaml`` (model, model_args with resemblyzer's windowing:
  160-frame partials at 1.3 per second, coverage 0.75, and the 2 trailing
  frames the front end appends; ``dataset_args``
  selecting the ``resemblyzer_mel`` front end of
  :mod:`wespk.features.resemblyzer_mel`), ``avg_model.pt`` and a
  ``README.md`` recording where the weights came from and their licence.

Nothing of resemblyzer is imported: the default weights file is located
with ``importlib.util.find_spec``, which does not run the package.
"""

import importlib.util
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from wespk.io.files import atomic_output, file_sha256

logger = logging.getLogger(__name__)

RESEMBLYZER_WEIGHTS_NAME = "pretrained.pt"

#: ``model_args`` reproducing resemblyzer's ``VoiceEncoder`` and ``embed_utterance``.
RESEMBLYZER_MODEL_ARGS = OrderedDict([
    ("feat_dim", 40),
    ("hidden_dim", 256),
    ("embed_dim", 256),
    ("num_layers", 3),
    ("partial_frames", 160),
    ("partial_rate", 1.3),
    ("frames_per_second", 100.0),
    ("min_coverage", 0.75),
    ("trailing_frames", 2),
])

#: Front end of the converted model dir (see :mod:`wespk.features.resemblyzer_mel`).
RESEMBLYZER_DATASET_ARGS = OrderedDict([
    ("feature_type", "resemblyzer_mel"),
    ("resample_rate", 16000),
    ("num_mel_bins", 40),
    ("frame_length", 25),
    ("frame_shift", 10),
    ("target_dbfs", -30.0),
    ("trim_silence", True),
])

#: resemblyzer key prefix -> wespk GE2E_LSTM key prefix.
KEY_PREFIX_MAP = (("lstm.", "lstm."), ("linear.", "embedding."))
#: resemblyzer keys that belong to the GE2E loss, not the encoder.
LOSS_KEYS = {"similarity_weight": "init_w", "similarity_bias": "init_b"}


class ResemblyzerConversionError(ValueError):
    """The weights cannot be found or are not resemblyzer's encoder; the message says why."""


def find_resemblyzer_weights() -> Path:
    """Path of ``pretrained.pt`` in the installed resemblyzer package (not imported)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ResemblyzerConversionError(
            "the resemblyzer package is not installed; install it (pip install resemblyzer) "
            "or pass --from PATH_TO_pretrained.pt")
    for location in spec.submodule_search_locations:
        path = Path(location) / RESEMBLYZER_WEIGHTS_NAME
        if path.is_file():
            return path
    raise ResemblyzerConversionError(
        f"no {RESEMBLYZER_WEIGHTS_NAME} in the resemblyzer package at "
        f"{', '.join(spec.submodule_search_locations)}; pass --from PATH_TO_pretrained.pt")


def convert_resemblyzer_state_dict(model_state: Dict[str, torch.Tensor], source: str = "checkpoint"
                                   ) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, float]]:
    """Rename resemblyzer's encoder keys for GE2E_LSTM; return ``(state_dict, loss_args)``.

    ``loss_args`` holds the trained GE2E scale and bias as ``init_w`` /
    ``init_b`` when the checkpoint has them. Raises
    :class:`ResemblyzerConversionError` naming ``source`` for keys that are
    neither encoder nor loss keys, and when encoder keys are missing.
    """
    converted: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    loss_args: Dict[str, float] = {}
    unknown = []
    for key, value in model_state.items():
        if key in LOSS_KEYS:
            loss_args[LOSS_KEYS[key]] = float(torch.as_tensor(value).reshape(-1)[0])
            continue
        for old, new in KEY_PREFIX_MAP:
            if key.startswith(old):
                converted[new + key[len(old):]] = value.detach().clone().float()
                break
        else:
            unknown.append(key)
    if unknown:
        raise ResemblyzerConversionError(f"{source}: unexpected keys for resemblyzer's encoder: "
                                         f"{', '.join(unknown[:5])}")
    from wespk.models.ge2e_lstm import GE2E_LSTM
    model = GE2E_LSTM(**_model_args_for(converted, source))
    expected = set(model.state_dict())
    missing = sorted(expected - set(converted))
    extra = sorted(set(converted) - expected)
    if missing or extra:
        raise ResemblyzerConversionError(f"{source}: not resemblyzer's encoder: missing {missing[:5]}, "
                                         f"unexpected {extra[:5]}")
    model.load_state_dict(converted, strict=True)
    return converted, loss_args


def _model_args_for(converted: Dict[str, torch.Tensor], source: str) -> Dict[str, Any]:
    """RESEMBLYZER_MODEL_ARGS with sizes read from the weights (for checkpoints of other sizes)."""
    args = dict(RESEMBLYZER_MODEL_ARGS)
    try:
        hidden4, feat_dim = converted["lstm.weight_ih_l0"].shape
        embed_dim, hidden_dim = converted["embedding.weight"].shape
    except (KeyError, ValueError):
        raise ResemblyzerConversionError(
            f"{source}: not resemblyzer's encoder (no lstm.weight_ih_l0 / linear.weight matrices)") from None
    if hidden4 != 4 * hidden_dim:
        raise ResemblyzerConversionError(f"{source}: LSTM input weights {tuple(converted['lstm.weight_ih_l0'].shape)}"
                                         f" do not match a hidden size of {hidden_dim}")
    layers = sum(1 for k in converted if k.startswith("lstm.weight_ih_l"))
    args.update(feat_dim=int(feat_dim), hidden_dim=int(hidden_dim), embed_dim=int(embed_dim), num_layers=layers)
    return args


def convert_resemblyzer(out_dir: str, weights_path: Optional[str] = None, trust: bool = False) -> Dict[str, str]:
    """Write a wespk GE2E model dir from resemblyzer's ``pretrained.pt``.

    ``weights_path`` defaults to the installed package's file
    (:func:`find_resemblyzer_weights`). Writes ``config.yaml``,
    ``avg_model.pt`` (bare state_dict) and ``README.md`` into ``out_dir``,
    each atomically, and returns their paths by name.
    """
    from wespk.io.checkpoint import save_checkpoint
    from wespk.io.config import save_config
    from wespk.models.checkpoint_tools import CheckpointError, read_checkpoint

    path = Path(weights_path) if weights_path else find_resemblyzer_weights()
    try:
        loaded = read_checkpoint(str(path), trust)
    except CheckpointError as e:
        raise ResemblyzerConversionError(str(e)) from None
    state_dict, loss_args = convert_resemblyzer_state_dict(loaded.state_dict, str(path))
    model_args = _model_args_for(state_dict, str(path))
    config: Dict[str, Any] = {
        "model": "GE2E_LSTM",
        "model_args": dict(model_args),
        "dataset_args": dict(RESEMBLYZER_DATASET_ARGS),
    }
    if loss_args:
        config["loss"] = "GE2E"
        config["loss_args"] = dict(loss_args, loss_method="softmax")
    os.makedirs(out_dir, exist_ok=True)
    paths = {"config": os.path.join(out_dir, "config.yaml"),
             "model": os.path.join(out_dir, "avg_model.pt"),
             "readme": os.path.join(out_dir, "README.md")}
    save_checkpoint(paths["model"], dict(state_dict))
    save_config(config, paths["config"])
    step = loaded.content.get("step") if isinstance(loaded.content, dict) else None
    with atomic_output(paths["readme"]) as f:
        f.write(_model_dir_readme(path, file_sha256(path), step))
    logger.info("converted %s into %s", path, out_dir)
    return paths


def _model_dir_readme(source: Path, sha256: str, step: Optional[int]) -> str:
    return (
        "# GE2E LSTM speaker encoder converted from resemblyzer\n\n"
        f"* source weights: `{source}` (sha256 `{sha256}`)"
        + (f", trained for {step} steps" if step is not None else "") + "\n"
        "* origin: the `resemblyzer` Python package by Resemble AI, "
        "https://github.com/resemble-ai/Resemblyzer\n"
        "* licence of the weights: Apache License 2.0 (Copyright Resemble AI); the converted\n"
        "  file carries the same weights with renamed keys (`linear.*` -> `embedding.*`)\n"
        "* model: `GE2E_LSTM` (3 LSTM layers x 256, 256-dim L2-normalised embedding)\n"
        "* front end: `resemblyzer_mel` - 16 kHz, volume raised to -30 dBFS, long silences\n"
        "  trimmed (wespk's energy-based trimming, not webrtcvad), 40-band linear-power\n"
        "  Slaney mel spectrogram, 25 ms window, 10 ms hop\n"
        "* utterance embedding: mean of 1.6 s partial windows, 1.3 per second, renormalised\n\n"
        "Made with `python -m wespk.bin.checkpoint_tool convert-resemblyzer`; see\n"
        "wespk's docs/pretrained.md.\n"
    )
