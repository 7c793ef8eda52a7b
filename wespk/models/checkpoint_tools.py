"""Inspect and rewrite the key prefixes of checkpoints; WeSpeaker checkpoint to model dir.

Checkpoints moved between toolkits usually differ only in key prefixes:
``module.`` from DistributedDataParallel / DataParallel, ``_orig_mod.`` from
``torch.compile``, ``model.`` from Lightning modules, or the attribute name
of a wrapper class (``encoder.``, ``speaker_extractor.`` ...). The functions
here find the state_dict inside a checkpoint, describe its prefixes and
parameter counts, rewrite prefixes, and save the result back into the same
container (so a training checkpoint keeps its optimizer state).

The command-line front end is ``python -m wespk.bin.checkpoint_tool``.
"""

import dataclasses
import logging
import os
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch

from wespk.io.checkpoint import CheckpointError, find_state_dict, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

#: Prefixes added by wrappers, and what adds them.
KNOWN_WRAPPER_PREFIXES = OrderedDict([
    ("module.", "DistributedDataParallel / DataParallel"),
    ("_orig_mod.", "torch.compile"),
    ("model.", "a wrapper holding the encoder as .model (e.g. Lightning)"),
])


@dataclasses.dataclass
class LoadedCheckpoint:
    """A checkpoint file's content and where its state_dict sits inside it."""

    path: str
    content: Any                       # what torch.load returned
    state_dict: Dict[str, Any]         # the model's state_dict (a reference into content)
    container_key: Optional[str]       # key in content holding state_dict, None if content is it


def read_checkpoint(path: str, trust: bool = False) -> LoadedCheckpoint:
    """Read a checkpoint (:func:`wespk.io.checkpoint.load_checkpoint`) and locate its state_dict.

    Raises :class:`CheckpointError` ("<path>: ...") for a missing file, a
    file torch cannot read or that could run code, and one holding no state_dict.
    """
    content = load_checkpoint(path, trust)
    state_dict, container_key = find_state_dict(content, path)
    return LoadedCheckpoint(path, content, state_dict, container_key)


def save_checkpoint_like(loaded: LoadedCheckpoint, state_dict: Dict[str, Any], out_path: str) -> None:
    """Write ``state_dict`` in the container ``loaded`` came in, atomically."""
    if loaded.container_key is None:
        content: Any = state_dict
    else:
        content = dict(loaded.content)
        content[loaded.container_key] = state_dict
    save_checkpoint(out_path, content)


# ----------------------------------------------------------------- prefixes

def _check_prefix(prefix: str, name: str = "prefix") -> None:
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"{name} must be a non-empty string")


def _rebuild(state_dict: Dict[str, Any], rename) -> "OrderedDict[str, Any]":
    out: "OrderedDict[str, Any]" = OrderedDict()
    for key, value in state_dict.items():
        new_key = rename(key)
        if new_key in out:
            raise ValueError(f"renaming gives the key {new_key!r} twice")
        out[new_key] = value
    return out


def strip_prefix(state_dict: Dict[str, Any], prefix: str = "module.") -> "OrderedDict[str, Any]":
    """Remove ``prefix`` from every key that starts with it (others are kept).

    Raises ValueError when no key starts with ``prefix`` or when two keys
    would become the same.
    """
    _check_prefix(prefix)
    if not any(k.startswith(prefix) for k in state_dict):
        raise ValueError(f"no key starts with {prefix!r} (first keys: {', '.join(list(state_dict)[:3])})")
    return _rebuild(state_dict, lambda k: k[len(prefix):] if k.startswith(prefix) else k)


def add_prefix(state_dict: Dict[str, Any], prefix: str = "module.") -> "OrderedDict[str, Any]":
    """Put ``prefix`` in front of every key."""
    _check_prefix(prefix)
    return _rebuild(state_dict, lambda k: prefix + k)


def replace_prefix(state_dict: Dict[str, Any], old: str, new: str) -> "OrderedDict[str, Any]":
    """Replace the leading ``old`` of keys by ``new`` (``new`` may be empty).

    Raises ValueError when no key starts with ``old`` or when two keys would
    become the same.
    """
    _check_prefix(old, "old prefix")
    if not any(k.startswith(old) for k in state_dict):
        raise ValueError(f"no key starts with {old!r} (first keys: {', '.join(list(state_dict)[:3])})")
    return _rebuild(state_dict, lambda k: new + k[len(old):] if k.startswith(old) else k)


def common_prefix(keys: List[str]) -> str:
    """Longest run of whole dotted components (ending in ``.``) shared by all keys."""
    if not keys:
        return ""
    split = [k.split(".")[:-1] for k in keys]
    shared: List[str] = []
    for parts in zip(*split):
        if all(p == parts[0] for p in parts):
            shared.append(parts[0])
        else:
            break
    return "".join(p + "." for p in shared)


# ----------------------------------------------------------------- analysis

def analyze_state_dict(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Describe a state_dict: prefixes, counts, parameters per top-level module, dtypes.

    Returns a dict with:

    * ``num_entries``, ``num_tensors``, ``num_elements`` (all tensors),
      ``non_tensor_keys``;
    * ``common_prefix``: dotted prefix shared by every key (``''`` if none);
    * ``wrapper_prefixes``: ``{prefix: (num_keys, meaning)}`` for the known
      wrapper prefixes present at the start of keys;
    * ``modules``: ``{top-level module: (num_tensors, num_elements)}`` after
      removing the common prefix, in key order;
    * ``dtypes``: ``{dtype name: (num_tensors, num_elements)}``.
    """
    keys = list(state_dict)
    tensors = {k: v for k, v in state_dict.items() if torch.is_tensor(v)}
    prefix = common_prefix(keys) if len(keys) > 1 else ""
    wrappers = OrderedDict()
    for wrapper, meaning in KNOWN_WRAPPER_PREFIXES.items():
        count = sum(k.startswith(wrapper) for k in keys)
        if count:
            wrappers[wrapper] = (count, meaning)
    modules: "OrderedDict[str, List[int]]" = OrderedDict()
    for key, tensor in tensors.items():
        rest = key[len(prefix):]
        top = rest.split(".", 1)[0] if "." in rest else "(top level)"
        entry = modules.setdefault(top, [0, 0])
        entry[0] += 1
        entry[1] += tensor.numel()
    dtypes: Counter = Counter()
    dtype_elements: Counter = Counter()
    for tensor in tensors.values():
        name = str(tensor.dtype).replace("torch.", "")
        dtypes[name] += 1
        dtype_elements[name] += tensor.numel()
    return {
        "num_entries": len(keys),
        "num_tensors": len(tensors),
        "num_elements": sum(t.numel() for t in tensors.values()),
        "non_tensor_keys": [k for k in keys if k not in tensors],
        "common_prefix": prefix,
        "wrapper_prefixes": wrappers,
        "modules": OrderedDict((m, tuple(v)) for m, v in modules.items()),
        "dtypes": OrderedDict((d, (dtypes[d], dtype_elements[d])) for d in sorted(dtypes)),
    }


def format_analysis(loaded: LoadedCheckpoint, analysis: Dict[str, Any]) -> str:
    """Human-readable report of :func:`analyze_state_dict` for one checkpoint."""
    lines = [f"file: {loaded.path}"]
    if isinstance(loaded.content, dict) and loaded.container_key is not None:
        others = [k for k in loaded.content if k != loaded.container_key]
        lines.append(f"state_dict under key {loaded.container_key!r}; other top-level keys: "
                     f"{', '.join(map(str, others)) or 'none'}")
    else:
        lines.append("state_dict at top level (a bare model file)")
    lines.append(f"entries: {analysis['num_entries']} ({analysis['num_tensors']} tensors), "
                 f"elements: {analysis['num_elements']:,}")
    if analysis["non_tensor_keys"]:
        lines.append(f"non-tensor entries: {', '.join(analysis['non_tensor_keys'][:10])}")
    lines.append(f"common prefix: {analysis['common_prefix']!r}" if analysis["common_prefix"]
                 else "common prefix: none")
    if analysis["wrapper_prefixes"]:
        for prefix, (count, meaning) in analysis["wrapper_prefixes"].items():
            lines.append(f"wrapper prefix {prefix!r} on {count}/{analysis['num_entries']} keys ({meaning})")
    else:
        lines.append("wrapper prefixes: none")
    lines.append("parameters per top-level module:")
    width = max((len(m) for m in analysis["modules"]), default=10)
    for module, (count, elements) in analysis["modules"].items():
        lines.append(f"  {module:<{width}}  {count:4d} tensors  {elements:>14,}")
    lines.append("dtypes: " + ", ".join(f"{d} ({n} tensors, {e:,} elements)"
                                        for d, (n, e) in analysis["dtypes"].items()))
    return "\n".join(lines)


# ----------------------------------------------------------------- WeSpeaker conversion

#: ``dataset_args`` keys that describe the front end (kept in a model dir's config).
FRONTEND_DATASET_KEYS = ("resample_rate", "feat_type", "feature_type", "frontend", "fbank_args", "mfcc_args",
                         "cmn", "cmvn", "cmvn_args")


def model_dir_config(config: Dict[str, Any], source: str) -> Dict[str, Any]:
    """The parts of a training config a model dir needs: model, model_args, front end."""
    if "model" not in config:
        raise CheckpointError(f"{source}: no 'model' key (expected a WeSpeaker training config)")
    dataset_args = config.get("dataset_args") or {}
    if not isinstance(dataset_args, dict):
        raise CheckpointError(f"{source}: dataset_args must be a mapping")
    out: Dict[str, Any] = {"model": config["model"], "model_args": dict(config.get("model_args") or {})}
    out["dataset_args"] = {k: dataset_args[k] for k in FRONTEND_DATASET_KEYS if k in dataset_args}
    return out


def convert_wespeaker_checkpoint(checkpoint_path: str, out_dir: str, config_path: str,
                                 verify: bool = True, trust: bool = False) -> Tuple[str, str]:
    """Write a wespk model dir (``config.yaml`` + ``avg_model.pt``) from a WeSpeaker checkpoint.

    The state_dict is taken from the checkpoint (bare, or under one of
    :data:`~wespk.io.checkpoint.STATE_DICT_CONTAINER_KEYS`), a ``module.`` prefix on every key is removed, and it is
    saved as a bare state_dict. The config keeps ``model``, ``model_args``
    and the front-end keys of ``dataset_args``. With ``verify`` the model is
    built and every encoder key must match (``projection.*`` head keys are
    optional). Returns the paths written.
    """
    from wespk.io.config import ConfigError, load_yaml, save_config

    loaded = read_checkpoint(checkpoint_path, trust)
    try:
        config = model_dir_config(load_yaml(config_path), config_path)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    state_dict = OrderedDict(loaded.state_dict)
    if all(k.startswith("module.") for k in state_dict):
        state_dict = strip_prefix(state_dict, "module.")
    non_tensor = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if non_tensor:
        raise CheckpointError(f"{checkpoint_path}: state_dict has non-tensor entries: {', '.join(non_tensor[:5])}")
    if verify:
        verify_encoder_keys(config, state_dict, checkpoint_path, config_path)
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, "avg_model.pt")
    config_out = os.path.join(out_dir, "config.yaml")
    save_checkpoint(model_path, dict(state_dict))
    save_config(config, config_out)
    logger.info("wrote %s and %s (%d tensors)", config_out, model_path, len(state_dict))
    return config_out, model_path


def verify_encoder_keys(config: Dict[str, Any], state_dict: Dict[str, torch.Tensor],
                        checkpoint_path: str, config_path: str) -> None:
    """Build ``config['model']`` and check that ``state_dict`` fits it (heads excepted)."""
    from wespk.models import get_speaker_model
    try:
        model = get_speaker_model(config["model"])(**config["model_args"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{config_path}: cannot build model {config['model']!r}: {e}") from None
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise CheckpointError(f"{checkpoint_path}: does not fit {config['model']} of {config_path}: "
                              f"{first.strip()}") from None
    missing = [k for k in result.missing_keys if not k.startswith("projection.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("projection.")]
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint_path}: does not fit {config['model']} of {config_path}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
