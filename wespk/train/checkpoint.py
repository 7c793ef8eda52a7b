"""Training checkpoints: RNG states, file names by position, latest and pruning.

A training checkpoint ``model_<epoch>.pt`` (or ``model_<epoch>_<step>.pt``
mid-epoch) is a dict::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "margin_scheduler": ...,
     "scaler": ..., "epoch": e, "step_in_epoch": s, "global_step": g,
     "rng": [per-rank rng_state()], "config": {...}}

``epoch`` is the epoch the checkpoint belongs to, ``step_in_epoch`` how many
of its steps are done (equal to the epoch length once it is complete). Model
state_dict keys are the module paths without a ``module.`` prefix, as
WeSpeaker saves them, so WeSpeaker's files load here and ours load there.
Everything in it is a tensor, a number, a string or a plain container, so it
loads with ``torch.load(weights_only=True)``; reading and saving go through
:mod:`wespk.io.checkpoint`.
"""

import logging
import os
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from wespk.io.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint

logger = logging.getLogger(__name__)

_CKPT_RE = re.compile(r"^model_(\d+)(?:_(\d+))?\.pt$")


def rng_state() -> Dict[str, Any]:
    """This process's Python, numpy and torch (and CUDA) RNG states as tensors and plain containers."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (or what older wespk versions saved)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    saved = state["numpy"]
    if isinstance(saved, dict):
        key = saved["key"].numpy() if torch.is_tensor(saved["key"]) else np.asarray(saved["key"])
        np.random.set_state({"bit_generator": saved["bit_generator"],
                             "state": {"key": key.astype(np.uint32), "pos": saved["pos"]},
                             "has_gauss": saved["has_gauss"], "gauss": saved["gauss"]})
    else:  # older checkpoints: numpy's legacy tuple (name, key array, pos, has_gauss, gauss)
        np.random.set_state(saved)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def latest_checkpoint(model_dir: str, trust: bool = False) -> Optional[str]:
    """The newest training checkpoint in ``model_dir`` that can be read.

    A damaged file (a run killed while saving, on a file system without
    atomic rename) is skipped with a warning; one that could run code is not
    skipped but refused (:class:`~wespk.io.checkpoint.UnsafeCheckpointError`).
    """
    for path in reversed(list_checkpoints(model_dir)):
        try:
            obj = load_checkpoint(path, trust)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as e:
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
