"""A model dir: ``config.yaml`` plus ``avg_model.pt`` (or another model file).

This is what training leaves in ``exp/<name>`` and what extraction, export
and the ``wespk`` command take with ``--model``.
"""

import logging
import os
from typing import Dict, Optional, Tuple

import torch

from wespk.io.checkpoint import load_model_weights
from wespk.io.config import load_yaml

logger = logging.getLogger(__name__)

# final.pt is the TorchScript export, read by wespk.export.runtime, not here
MODEL_FILE_CANDIDATES = ("avg_model.pt", "models/avg_model.pt")


class ModelDirError(ValueError):
    """A model dir that cannot be used; the message names what is missing."""


def find_model_file(model_dir: str) -> str:
    for name in MODEL_FILE_CANDIDATES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    raise ModelDirError(f"{model_dir}: no model file (looked for {', '.join(MODEL_FILE_CANDIDATES)})")


def load_model_config(model_dir: str) -> Dict:
    path = os.path.join(model_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ModelDirError(f"{model_dir}: no config.yaml (a model dir holds config.yaml and avg_model.pt)")
    config = load_yaml(path)
    if "model" not in config:
        raise ModelDirError(f"{path}: no 'model' key")
    return config


def build_speaker_model(config: Dict) -> torch.nn.Module:
    """The encoder named by ``config['model']`` with ``config['model_args']``."""
    from wespk.models import get_speaker_model
    return get_speaker_model(config["model"])(**config.get("model_args", {}))


def load_speaker_model(model_dir: str, checkpoint: Optional[str] = None,
                       device: str = "cpu", trust_checkpoint: bool = False) -> Tuple[torch.nn.Module, Dict]:
    """Build the encoder of a model dir, load its weights, return ``(model.eval(), config)``.

    The classification head (``projection.*`` keys) is not needed for
    embeddings and is ignored. ``trust_checkpoint`` reads the model file
    with ``weights_only=False`` (it may run code; see :mod:`wespk.io.checkpoint`).
    """
    config = load_model_config(model_dir)
    model = build_speaker_model(config)
    path = checkpoint or find_model_file(model_dir)
    load_model_weights(model, path, trust=trust_checkpoint)
    from wespk.models.repvgg import RepVGG, convert_to_deploy
    if isinstance(model, RepVGG):
        model = convert_to_deploy(model)   # same outputs, one conv per block
    model.to(device).eval()
    return model, config
