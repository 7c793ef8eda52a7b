"""The one model-dir resolver: where a model's config and model file are, and which backend runs it.

A model dir is what training leaves in ``exp/<name>`` and what extraction,
export, the ``wespk`` command and :func:`wespk.load_model` take:

* ``config.yaml`` (the training config: ``model``, ``model_args``, ``dataset_args``);
* a model file, one or more of:

  - ``avg_model.pt`` or ``models/avg_model.pt``: a PyTorch checkpoint (backend ``torch``, eager);
  - ``final.onnx`` or ``models/final.onnx``: an ONNX export (backend ``onnx``, ONNX Runtime);
  - ``final.pt`` / ``final.jit.pt`` (or under ``models/``): a TorchScript export (backend ``jit``).

Exports carry the config too, so a dir (or a file) with only ``final.onnx``
or a TorchScript ``final.pt`` is a model dir. :func:`resolve_model_dir` returns
a :class:`ResolvedModel`; every caller goes through it. Checkpoints are read
weights-only through :mod:`wespk.io.checkpoint`.
"""

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from wespk.io.config import load_yaml

if TYPE_CHECKING:  # torch is imported when a model is built (``import wespk`` stays light)
    import torch

logger = logging.getLogger(__name__)

#: PyTorch model files of a model dir, in the order they are looked for.
MODEL_FILE_CANDIDATES = ("avg_model.pt", "models/avg_model.pt")
#: Exported model files of a model dir per backend, in the order they are looked for.
EXPORTED_FILE_CANDIDATES = {
    "onnx": ("final.onnx", "models/final.onnx"),
    "jit": ("final.pt", "models/final.pt", "final.jit.pt", "models/final.jit.pt"),
}
#: ``backend`` values: a backend name, or ``auto`` (torch, else onnx, else jit).
BACKEND_CHOICES = ("auto", "torch", "onnx", "jit")
AUTO_ORDER = ("torch", "onnx", "jit")


class ModelDirError(ValueError):
    """A model dir that cannot be used; the message names what is missing."""


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are: its dir, the backend that runs it, its model file and its config."""

    model_dir: str
    backend: str
    model_file: str
    config: Dict[str, Any]


def _is_torchscript(path: str) -> bool:
    from wespk.inference.runners import is_torchscript_file
    return is_torchscript_file(path)


def find_eager_model_file(model_dir: str) -> Optional[str]:
    """The PyTorch model file of a model dir (``avg_model.pt`` ...), skipping TorchScript archives."""
    for name in MODEL_FILE_CANDIDATES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path) and not _is_torchscript(path):
            return path
    return None


def find_model_file(model_dir: str) -> str:
    """The PyTorch model file of a model dir; :class:`ModelDirError` naming what was looked for."""
    path = find_eager_model_file(model_dir)
    if path is None:
        raise ModelDirError(f"{model_dir}: no model file (looked for {', '.join(MODEL_FILE_CANDIDATES)})")
    return path


def find_exported_file(model_dir: str, backend: str) -> Optional[str]:
    """The exported ``final.onnx`` / TorchScript ``final.pt`` of a model dir (or its ``models/``)."""
    for name in EXPORTED_FILE_CANDIDATES[backend]:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path) and (backend != "jit" or _is_torchscript(path)):
            return path
    return None


def load_model_config(model_dir: str) -> Dict:
    """The model dir's ``config.yaml``; it must name a ``model``."""
    path = os.path.join(model_dir, "config.yaml")
    if not os.path.isfile(path):
        raise ModelDirError(f"{model_dir}: no config.yaml (a model dir holds config.yaml and avg_model.pt)")
    config = load_yaml(path)
    if "model" not in config:
        raise ModelDirError(f"{path}: no 'model' key")
    return config


def build_speaker_model(config: Dict) -> "torch.nn.Module":
    """The encoder named by ``config['model']`` with ``config['model_args']``."""
    from wespk.models import get_speaker_model
    return get_speaker_model(config["model"])(**config.get("model_args", {}))


def load_speaker_model(model_dir: str, checkpoint: Optional[str] = None,
                       device: str = "cpu", trust_checkpoint: bool = False) -> Tuple["torch.nn.Module", Dict]:
    """Build the encoder of a model dir, load its weights, return ``(model.eval(), config)``.

    The classification head (``projection.*`` keys) is not needed for
    embeddings and is ignored. ``trust_checkpoint`` also accepts the
    data-only objects of :data:`wespk.io.checkpoint.TRUSTED_DATA_GLOBALS` (never code).
    """
    from wespk.io.checkpoint import load_model_weights
    config = load_model_config(model_dir)
    model = build_speaker_model(config)
    path = checkpoint or find_model_file(model_dir)
    load_model_weights(model, path, trust=trust_checkpoint)
    from wespk.models.repvgg import RepVGG, convert_to_deploy
    if isinstance(model, RepVGG):
        model = convert_to_deploy(model)   # same outputs, one conv per block
    model.to(device).eval()
    return model, config


def _config_of(model_dir: str, backend: str, model_file: str) -> Dict[str, Any]:
    """The dir's config.yaml, else the config embedded in an exported file, else ModelDirError."""
    if os.path.isfile(os.path.join(model_dir, "config.yaml")) or backend == "torch":
        return load_model_config(model_dir)
    from wespk.inference.runners import OnnxRunner, load_torchscript
    if backend == "onnx":
        config = OnnxRunner.embedded_config(model_file)
    else:
        import torch
        config = load_torchscript(model_file, torch.device("cpu"))[2]
    if config is None:
        return load_model_config(model_dir)  # raises: no config.yaml
    return config


def backend_of_file(path: str) -> str:
    """``onnx``, ``jit`` or ``torch``: the backend that runs a model file."""
    if path.endswith(".onnx"):
        return "onnx"
    return "jit" if _is_torchscript(path) else "torch"


def resolve_model_dir(path: "os.PathLike | str", backend: str = "auto",
                      model_file: Optional[str] = None) -> ResolvedModel:
    """Find the config and the model file of a model dir (or of a model file) for ``backend``.

    ``path`` is a model dir or one of its model files; a file's config is
    the ``config.yaml`` of its directory or of the directory above, or the
    config embedded in an export. ``backend`` ``auto`` takes the PyTorch
    checkpoint when there is one, else ONNX, else TorchScript.
    ``model_file`` names the model file explicitly (``--checkpoint``, e.g. a
    single epoch's ``model_10.pt``); its kind gives the backend. Raises
    :class:`ModelDirError` naming what is missing.
    """
    if backend not in BACKEND_CHOICES:
        raise ModelDirError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {backend!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelDirError(f"{path}: model dir not found")
    if model_file is None and os.path.isfile(path):
        model_file = path
        here = os.path.dirname(os.path.abspath(path))
        parent = os.path.dirname(here)
        path = here if (os.path.isfile(os.path.join(here, "config.yaml"))
                        or not os.path.isfile(os.path.join(parent, "config.yaml"))) else parent
    if model_file is not None:
        if not os.path.isfile(model_file):
            raise ModelDirError(f"{model_file}: model file not found")
        file_backend = backend_of_file(model_file)
        if backend not in ("auto", file_backend):
            raise ModelDirError(f"{model_file}: a {file_backend} model file, but backend {backend!r} was asked for")
        return ResolvedModel(path, file_backend, model_file, _config_of(path, file_backend, model_file))
    model_dir = path
    if not os.path.isfile(os.path.join(model_dir, "config.yaml")) and \
            find_exported_file(model_dir, "onnx") is None and find_exported_file(model_dir, "jit") is None:
        load_model_config(model_dir)  # raises ModelDirError: no config.yaml
    order = AUTO_ORDER if backend == "auto" else (backend,)
    for candidate in order:
        found = find_eager_model_file(model_dir) if candidate == "torch" else find_exported_file(model_dir, candidate)
        if found:
            return ResolvedModel(model_dir, candidate, found, _config_of(model_dir, candidate, found))
    wanted = {"torch": " or ".join(MODEL_FILE_CANDIDATES), "onnx": " or ".join(EXPORTED_FILE_CANDIDATES["onnx"]),
              "jit": "a TorchScript " + " or ".join(EXPORTED_FILE_CANDIDATES["jit"])}
    raise ModelDirError(f"{model_dir}: no model file for backend {backend!r} "
                        f"(looked for {'; '.join(wanted[b] for b in order)})")
