"""One interface over eager PyTorch, ONNX Runtime and TorchScript encoders.

Every runner has ``embed_features(feats) -> np.ndarray [B, D]`` for a list
of ``[T_i, F]`` feature matrices (the output of
:class:`wespk.inference.frontend.FeatureFrontend`), and a ``backend`` name.
The embedder of :mod:`wespk.api`, the parity check of an export and the
benchmark all go through these runners, so what is checked is what runs.

Exported files carry their kind (``utterance`` or ``partial_windows``, see
:mod:`wespk.export.encoder`) and the model dir's config: ONNX files in their
metadata (keys :data:`KIND_KEY`, :data:`CONFIG_KEY`), TorchScript files as
extra files of the archive.
"""

import logging
import os
import zipfile
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

from wespk.export.encoder import (EXPORT_KINDS, PARTIAL_WINDOWS_KIND, UTTERANCE_KIND, PartialWindowPlanner,
                                  pad_features)

logger = logging.getLogger(__name__)

KIND_KEY = "wespk_kind"
CONFIG_KEY = "wespk_config"
#: Names of the extra files a TorchScript export carries.
JIT_KIND_FILE = "wespk_kind.txt"
JIT_CONFIG_FILE = "wespk_config.yaml"

BACKENDS = ("torch", "onnx", "jit")


class ExportedModelError(ValueError):
    """An exported model file that cannot be used; the message names the file."""


def is_torchscript_file(path: str) -> bool:
    """True when ``path`` is a TorchScript archive (``torch.jit.save``), not a ``torch.save`` checkpoint."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.split("/", 1)[-1].startswith("code/") for name in names) or \
        any(name.endswith("/constants.pkl") for name in names)


def config_to_text(config: Dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def config_from_text(text: str, source: str) -> Dict[str, Any]:
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ExportedModelError(f"{source}: embedded config is not valid YAML ({e})") from None
    if not isinstance(config, dict):
        raise ExportedModelError(f"{source}: embedded config is not a mapping")
    return config


class EagerRunner:
    """The PyTorch model in eval mode, through :class:`wespk.inference.extractor.EmbeddingExtractor`.

    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the forward under
    autocast; embeddings are returned in float32. ``optimize`` runs the
    extractor's inference copy (batch norm folded, channels-last on the CPU).
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, config: Dict[str, Any], device: str = "cpu",
                 autocast_dtype: Optional[torch.dtype] = None, optimize: bool = True):
        from wespk.inference.extractor import EmbeddingExtractor
        from wespk.inference.extractor import PRECISIONS
        precision = next((name for name, dtype in PRECISIONS.items() if dtype == autocast_dtype), None)
        if precision is None:
            raise ValueError(f"unsupported autocast dtype {autocast_dtype}")
        self.extractor = EmbeddingExtractor(model, config, device, optimize=optimize, precision=precision)
        self.model = self.extractor.model
        self.device = self.extractor.device
        self.autocast_dtype = autocast_dtype

    def embed_features(self, feats: Sequence[torch.Tensor]) -> np.ndarray:
        return np.asarray(self.extractor.embed_features(list(feats)), dtype=np.float32)


def _planner_for(kind: str, config: Dict[str, Any], source: str) -> Optional[PartialWindowPlanner]:
    """The window planner of a ``partial_windows`` graph, built from the config's model."""
    if kind not in EXPORT_KINDS:
        raise ExportedModelError(f"{source}: unknown graph kind {kind!r} (known: {', '.join(EXPORT_KINDS)})")
    if kind != PARTIAL_WINDOWS_KIND:
        return None
    from wespk.inference.model_dir import build_speaker_model
    return PartialWindowPlanner(build_speaker_model(config).eval())


class OnnxRunner:
    """An exported ``.onnx`` encoder run by ONNX Runtime on the CPU."""

    backend = "onnx"

    def __init__(self, path: str, config: Optional[Dict[str, Any]] = None, num_threads: Optional[int] = None):
        import onnxruntime
        self.path = str(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = onnxruntime.InferenceSession(self.path, sess_options=options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ExportedModelError(f"{self.path}: cannot load ONNX model ({str(e).splitlines()[0]})") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        input_names = [i.name for i in self.session.get_inputs()]
        self.kind = metadata.get(KIND_KEY) or (PARTIAL_WINDOWS_KIND if input_names == ["windows"]
                                               else UTTERANCE_KIND)
        if config is None:
            if CONFIG_KEY not in metadata:
                raise ExportedModelError(f"{self.path}: no config.yaml next to it and none embedded in the file")
            config = config_from_text(metadata[CONFIG_KEY], self.path)
        self.config = config
        expected = ["windows"] if self.kind == PARTIAL_WINDOWS_KIND else ["feats", "lengths"]
        if input_names != expected:
            raise ExportedModelError(f"{self.path}: inputs {input_names}, expected {expected} "
                                     f"(export it with python -m wespk.bin.export_onnx)")
        self.planner = _planner_for(self.kind, config, self.path)

    @staticmethod
    def embedded_config(path: str) -> Optional[Dict[str, Any]]:
        """The config stored in an exported ONNX file's metadata, if any (reads only the metadata)."""
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == CONFIG_KEY:
                return config_from_text(prop.value, str(path))
        return None

    def embed_features(self, feats: Sequence[torch.Tensor]) -> np.ndarray:
        if self.planner is not None:
            windows, owners = self.planner.windows(feats)
            partials = self.session.run(None, {"windows": windows})[0]
            return self.planner.combine(partials, owners, len(feats))
        batch, lengths = pad_features(feats)
        return np.asarray(self.session.run(None, {"feats": batch, "lengths": lengths})[0], dtype=np.float32)


class TorchScriptRunner:
    """An exported TorchScript encoder (``torch.jit.load``).

    The graph is run with TorchScript's optimising executor switched off:
    for these models it brings no speed on CPU, and re-profiling on every new
    input length costs seconds for large graphs.
    """

    backend = "jit"

    def __init__(self, path: str, config: Optional[Dict[str, Any]] = None, device: str = "cpu"):
        self.path = str(path)
        self.device = torch.device(device)
        module, kind, embedded = load_torchscript(self.path, self.device)
        self.module = module
        self.kind = kind
        if config is None:
            if embedded is None:
                raise ExportedModelError(f"{self.path}: no config.yaml next to it and none embedded in the file")
            config = embedded
        self.config = config
        self.planner = _planner_for(self.kind, config, self.path)

    def embed_features(self, feats: Sequence[torch.Tensor]) -> np.ndarray:
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            if self.planner is not None:
                windows, owners = self.planner.windows(feats)
                partials = self.module(torch.from_numpy(windows).to(self.device))
                return self.planner.combine(partials.float().cpu().numpy(), owners, len(feats))
            batch, lengths = pad_features(feats)
            out = self.module(torch.from_numpy(batch).to(self.device), torch.from_numpy(lengths).to(self.device))
            return out.float().cpu().numpy()


def load_torchscript(path: str, device: torch.device) -> Tuple[torch.jit.ScriptModule, str, Optional[Dict]]:
    """``(module, kind, embedded config or None)`` of a TorchScript export."""
    extra = {JIT_KIND_FILE: "", JIT_CONFIG_FILE: ""}
    try:
        module = torch.jit.load(path, map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise ExportedModelError(f"{path}: cannot load TorchScript model ({str(e).splitlines()[0]})") from None
    kind = (extra[JIT_KIND_FILE].decode() if isinstance(extra[JIT_KIND_FILE], bytes)
            else extra[JIT_KIND_FILE]) or UTTERANCE_KIND
    text = extra[JIT_CONFIG_FILE]
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    return module.eval(), kind, (config_from_text(text, path) if text else None)


def find_exported_file(model_dir: str, backend: str) -> Optional[str]:
    """The exported ``final.onnx`` / TorchScript ``final.pt`` of a model dir (or its ``models/``)."""
    names = {"onnx": ("final.onnx", os.path.join("models", "final.onnx")),
             "jit": ("final.pt", os.path.join("models", "final.pt"), "final.jit.pt",
                     os.path.join("models", "final.jit.pt"))}[backend]
    for name in names:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path) and (backend != "jit" or is_torchscript_file(path)):
            return path
    return None


def find_eager_model_file(model_dir: str) -> Optional[str]:
    """The PyTorch model file of a model dir (``avg_model.pt`` ...), skipping TorchScript archives."""
    from wespk.inference.model_dir import MODEL_FILE_CANDIDATES
    for name in MODEL_FILE_CANDIDATES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path) and not is_torchscript_file(path):
            return path
    return None
