"""Checkpoints: full training state, model-only files, WeSpeaker compatibility.

A training checkpoint ``model_<epoch>.pt`` (or ``model_<epoch>_<step>.pt``
mid-epoch) is a dict::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "margin_scheduler": ...,
     "scaler": ..., "epoch": e, "step_in_epoch": s, "global_step": g,
     "rng": {...}, "config": {...}}

``epoch`` is the epoch the checkpoint belongs to, ``step_in_epoch`` how many
of its steps are done (equal to the epoch length once it is complete). Model
state_dict keys are the module paths without a ``module.`` prefix, as
WeSpeaker saves them, so WeSpeaker's files load here and ours load there.
"""

import logging
import os
import random
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

_CKPT_RE = re.compile(r"^model_(\d+)(?:_(\d+))?\.pt$")


def rng_state() -> Dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap_state_dict(obj) -> Dict[str, torch.Tensor]:
    """Return the model state_dict from any of the usual checkpoint shapes.

    Accepts a plain state_dict, ``{"model": sd}`` (wespk), ``{"state_dict": sd}``
    (WeSpeaker, Lightning), and strips a ``module.`` prefix left by DDP.
    """
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise ValueError("not a state_dict or a checkpoint holding one")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_checkpoint_file(path: str) -> Dict:
    """``torch.load`` on CPU with a clear error for missing or corrupt files."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError ...
        raise RuntimeError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None


def load_model_weights(model: torch.nn.Module, path: str, strict_encoder: bool = True) -> Tuple[List[str], List[str]]:
    """Load a model file or checkpoint into ``model`` (WeSpeaker's rules).

    ``projection.*`` keys are optional both ways (an extraction model has no
    head; a fine-tuned model may get a new one), and an oversized
    ``projection.weight`` (speed-perturbed classes) is truncated to the head's
    size. Any other missing or unexpected key is an error when
    ``strict_encoder``. Returns ``(missing, unexpected)`` keys.
    """
    state = unwrap_state_dict(load_checkpoint_file(path))
    own = model.state_dict()
    if "projection.weight" in state and "projection.weight" in own:
        have, want = state["projection.weight"].shape, own["projection.weight"].shape
        if have != want and have[1:] == want[1:] and have[0] > want[0]:
            logger.info("truncating projection.weight from %s to %s rows", have[0], want[0])
            state["projection.weight"] = state["projection.weight"][: want[0]]
    mismatched = [k for k in state if k.startswith("projection.") and k in own and state[k].shape != own[k].shape]
    if mismatched:
        # a head for another speaker set: keep the model's new head
        logger.info("%s: head shapes differ (%s); the head is not loaded", path, ", ".join(mismatched))
        state = {k: v for k, v in state.items() if not k.startswith("projection.")}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("projection.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("projection.")]
    if strict_encoder and (missing or unexpected):
        raise RuntimeError(f"{path}: state_dict does not match the model: "
                           f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                           f"unexpected {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
    return list(result.missing_keys), list(result.unexpected_keys)


def save_model_file(state_dict: Dict[str, torch.Tensor], path: str) -> None:
    """Save a bare state_dict (the format of WeSpeaker's model files), atomically."""
    with atomic_output(path, "wb") as f:
        torch.save(state_dict, f)


def save_training_checkpoint(path: str, state: Dict) -> None:
    """Save a full training state dict atomically (temp file, fsync, rename)."""
    with atomic_output(path, "wb") as f:
        torch.save(state, f)


def checkpoint_position(path: str) -> Optional[Tuple[int, int]]:
    """``(epoch, step)`` encoded in a checkpoint file name, or None."""
    m = _CKPT_RE.match(os.path.basename(path))
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)) if m.group(2) else -1


def list_checkpoints(model_dir: str) -> List[str]:
    """Training checkpoints in ``model_dir``, oldest first.

    An end-of-epoch checkpoint ``model_E.pt`` sorts after every mid-epoch
    ``model_E_S.pt`` of the same epoch.
    """
    items = []
    for p in Path(model_dir).glob("model_*.pt"):
        pos = checkpoint_position(p.name)
        if pos is not None:
            epoch, step = pos
            items.append(((epoch, step if step >= 0 else float("inf")), str(p)))
    return [p for _, p in sorted(items)]


def latest_checkpoint(model_dir: str) -> Optional[str]:
    """The newest training checkpoint in ``model_dir`` that can be read."""
    for path in reversed(list_checkpoints(model_dir)):
        try:
            obj = load_checkpoint_file(path)
        except RuntimeError as e:
            logger.warning("skipping unreadable checkpoint: %s", e)
            continue
        if isinstance(obj, dict) and "optimizer" in obj:
            return path
    return None


def prune_checkpoints(model_dir: str, keep_last_k: int = 0) -> List[str]:
    """Remove superseded checkpoints; returns the removed paths.

    Mid-epoch checkpoints of an epoch whose end-of-epoch checkpoint exists
    are always removed. With ``keep_last_k > 0`` only the newest
    ``keep_last_k`` end-of-epoch checkpoints are kept.
    """
    paths = list_checkpoints(model_dir)
    finished = {checkpoint_position(p)[0] for p in paths if checkpoint_position(p)[1] < 0}
    removed = [p for p in paths
               if checkpoint_position(p)[1] >= 0 and checkpoint_position(p)[0] in finished]
    if keep_last_k > 0:
        epoch_ends = [p for p in paths if checkpoint_position(p)[1] < 0]
        removed += epoch_ends[:-keep_last_k]
    for path in removed:
        os.unlink(path)
    return removed
