"""YAML configs in WeSpeaker's shape, with dotted command-line overrides.

A config is a nested dict. ``--model_args.embed_dim 192`` on the command line
sets ``config["model_args"]["embed_dim"] = 192`` (the value is parsed as YAML,
so ``true``, ``1e-3`` and ``[1, 2]`` get their natural types). Unknown keys
are errors: top-level keys must be among :data:`TRAIN_CONFIG_KEYS`, and a
dotted override may only add a key below a section that takes free-form
arguments (``model_args``, ``projection_args`` ...); other sections must
already hold the key.
"""

import copy
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

# Top-level keys of a training config: WeSpeaker's names, plus wespk's own
# (documented in docs/training.md).
TRAIN_CONFIG_KEYS = frozenset({
    "exp_dir", "gpus", "seed", "num_epochs", "num_avg", "enable_amp", "precision",
    "save_epoch_interval", "save_interval", "keep_last_k", "log_batch_interval",
    "data_type", "train_data", "train_label", "num_class",
    "dataloader_args", "dataset_args",
    "model", "model_init", "model_args", "projection_args",
    "margin_scheduler", "margin_update",
    "loss", "loss_args", "optimizer", "optimizer_args",
    "scheduler", "scheduler_args",
    "clip_grad", "grad_clip", "device",
    "freeze_layers", "encoder_lr_ratio", "save_batch_keys",
})

# Sections whose keys are checked by the component that uses them (a model
# constructor, the data pipeline's resolve_dataset_args ...), which rejects
# what it does not know; the training entry point runs those checks first.
FREEFORM_SECTIONS = frozenset({
    "model_args", "projection_args", "loss_args", "optimizer_args",
    "scheduler_args", "margin_update", "dataset_args", "dataloader_args",
})


class ConfigError(ValueError):
    """An invalid config file or override."""


def load_yaml(path: str) -> Dict[str, Any]:
    """Load a YAML mapping, naming the file in errors."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def check_top_level_keys(config: Dict[str, Any], source: str,
                         allowed: frozenset = TRAIN_CONFIG_KEYS) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown config key(s) {', '.join(unknown)}; "
                          f"known keys: {', '.join(sorted(allowed))}")


def parse_overrides(args: Sequence[str]) -> List[tuple]:
    """Turn ``['--a.b', '1', '--c=x']`` into ``[('a.b', 1), ('c', 'x')]``."""
    pairs = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key value")
        name = arg[2:]
        if "=" in name:
            name, raw = name.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override {arg} has no value")
            raw = args[i + 1]
            i += 2
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((name, value))
    return pairs


def apply_overrides(config: Dict[str, Any], overrides: Sequence[tuple],
                    allowed_top: frozenset = TRAIN_CONFIG_KEYS) -> Dict[str, Any]:
    """Return a copy of ``config`` with dotted ``(name, value)`` overrides applied."""
    config = copy.deepcopy(config)
    for name, value in overrides:
        parts = name.split(".")
        if parts[0] not in allowed_top:
            raise ConfigError(f"override --{name}: unknown config key {parts[0]!r}")
        node = config
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override --{name}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        leaf = parts[-1]
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in FREEFORM_SECTIONS):
            if leaf not in node:
                raise ConfigError(f"override --{name}: {'.'.join(parts[:-1])} has no key {leaf!r} "
                                  f"(has: {', '.join(sorted(node)) or 'nothing'})")
        node[leaf] = value
    return config


def load_config(path: str, override_args: Optional[Sequence[str]] = None,
                allowed_top: frozenset = TRAIN_CONFIG_KEYS) -> Dict[str, Any]:
    """Load a YAML config, check its keys and apply command-line overrides."""
    config = load_yaml(path)
    check_top_level_keys(config, path, allowed_top)
    if override_args:
        config = apply_overrides(config, parse_overrides(override_args), allowed_top)
    return config


def save_config(config: Dict[str, Any], path: str) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_output(path) as f:
        yaml.safe_dump(config, f, sort_keys=False, default_flow_style=False)
