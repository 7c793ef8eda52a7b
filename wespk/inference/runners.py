"""One interface over eager PyTorch, TorchScript and ONNX Runtime encoders.

Every runner has ``embed_inputs(inputs) -> np.ndarray [B, D]`` for a list of
model inputs (``[T_i, F]`` feature matrices for fbank models, ``[S_i]``
waveforms for models with their own frontend; see
:func:`wespk.inference.frontend.input_kind`), the same method under its older
name ``embed_features``, and a ``backend`` name. The extraction engine
(:mod:`wespk.inference.extractor`), the parity check of an export and the
benchmarks all go through these runners, so what is checked is what runs.
:func:`make_runner` builds the runner of a resolved model dir.

Exported files carry their kind (``utterance`` or ``partial_windows``) and the
model dir's config: ONNX files in their metadata (keys :data:`KIND_KEY`,
:data:`CONFIG_KEY`), TorchScript files as extra files of the archive
(:data:`JIT_KIND_FILE`, :data:`JIT_CONFIG_FILE`).
"""

import contextlib
import logging
import zipfile
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import yaml

logger = logging.getLogger(__name__)

KIND_KEY = "wespk_kind"
CONFIG_KEY = "wespk_config"
#: Names of the extra files a TorchScript export carries.
JIT_KIND_FILE = "wespk_kind.txt"
JIT_CONFIG_FILE = "wespk_config.yaml"

BACKENDS = ("torch", "onnx", "jit")

#: Graph kinds of an export: ``utterance`` (``(feats, lengths) -> embedding``) and ``partial_windows``
#: (``windows -> partial embeddings``, averaged outside the graph by :class:`PartialWindowPlanner`).
UTTERANCE_KIND = "utterance"
PARTIAL_WINDOWS_KIND = "partial_windows"
EXPORT_KINDS = (UTTERANCE_KIND, PARTIAL_WINDOWS_KIND)

#: ``--precision`` choices and the autocast dtype of each (None: plain float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: /proc/cpuinfo flags of native bf16 arithmetic; without them oneDNN converts to fp32 and back, and
#: bf16 autocast on the CPU is slower than fp32 (ResNet34 end to end: 2.8x slower on an AVX-512 Xeon
#: without them, 1.8x faster on an AMD EPYC with AVX512-BF16).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class ExportedModelError(ValueError):
    """An exported model file that cannot be used; the message names the file."""


def cpu_has_native_bf16(cpuinfo: Optional[str] = None) -> Optional[bool]:
    """Whether the CPU has bf16 instructions, from ``/proc/cpuinfo`` (or the given text of it);
    None where that cannot be told (no such file)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    if not flags:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


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


def pad_inputs(inputs: Sequence[Any]) -> Tuple[np.ndarray, np.ndarray]:
    """Zero-padded float32 batch ``[B, L_max, ...]`` and int64 lengths ``[B]`` (lengths along the first axis)."""
    if not len(inputs):
        raise ValueError("no model inputs to batch")
    lengths = np.array([int(x.shape[0]) for x in inputs], dtype=np.int64)
    batch = np.zeros((len(inputs), int(lengths.max())) + tuple(inputs[0].shape[1:]), dtype=np.float32)
    for i, x in enumerate(inputs):
        batch[i, : x.shape[0]] = np.asarray(x, dtype=np.float32)
    return batch, lengths


#: The feature-matrix name of :func:`pad_inputs` (``[B, T_max, F]``), as the export code calls it.
pad_features = pad_inputs


def is_partial_window_model(model: torch.nn.Module) -> bool:
    """True for models that embed partial windows and average them (GE2E)."""
    return callable(getattr(model, "embed_partials", None)) and \
        callable(getattr(model, "partial_window_starts", None))


class PartialWindowPlanner:
    """Cuts utterances into the partial windows of a GE2E-style model and averages them back.

    Mirrors the model's ``embed_utterances``: window starts come from the
    model's ``partial_window_starts`` over ``length - trailing_frames``
    frames; frames past an utterance's end read as zeros; the utterance
    embedding is the L2-normalised mean of its windows' embeddings.
    """

    def __init__(self, model: torch.nn.Module):
        if not is_partial_window_model(model):
            raise TypeError(f"{type(model).__name__} does not embed partial windows")
        self.model = model
        self.partial_frames = int(model.partial_frames)
        self.trailing_frames = int(getattr(model, "trailing_frames", 0))

    def windows(self, feats: Sequence[torch.Tensor]) -> Tuple[np.ndarray, np.ndarray]:
        """``(windows [W, P, F] float32, owners [W] int64)`` for a list of ``[T_i, F]`` features."""
        blocks, owners = [], []
        for index, f in enumerate(feats):
            f = np.asarray(f, dtype=np.float32)
            length = f.shape[0]
            starts = self.model.partial_window_starts(max(0, length - self.trailing_frames))
            span = max(length, max(starts) + self.partial_frames)
            padded = np.zeros((span, f.shape[1]), dtype=np.float32)
            padded[:length] = f
            for start in starts:
                blocks.append(padded[start:start + self.partial_frames])
                owners.append(index)
        return np.stack(blocks), np.array(owners, dtype=np.int64)

    @staticmethod
    def combine(partials: np.ndarray, owners: np.ndarray, batch_size: int) -> np.ndarray:
        """L2-normalised mean of each utterance's window embeddings, ``[B, D]`` float32."""
        partials = torch.as_tensor(np.asarray(partials, dtype=np.float32))
        index = torch.as_tensor(owners, dtype=torch.long)
        sums = partials.new_zeros(batch_size, partials.shape[1]).index_add_(0, index, partials)
        counts = torch.bincount(index, minlength=batch_size).to(partials.dtype)
        return torch.nn.functional.normalize(sums / counts[:, None], p=2, dim=1).numpy()


class EagerRunner:
    """The PyTorch model in eval mode.

    ``optimize`` runs an inference copy of ``model`` with batch norm folded
    (and channels-last on the CPU, see :mod:`wespk.inference.optimize`);
    ``model`` itself is never modified. ``autocast_dtype`` (e.g.
    ``torch.bfloat16``, or ``precision`` by name: ``fp32``, ``bf16``,
    ``fp16``) runs the forward under autocast; embeddings are returned in
    float32. A padded batch is given the true lengths, so pooling ignores
    the padding; a batch of equal lengths is run without masks.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, config: Optional[Dict[str, Any]] = None, device: str = "cpu",
                 autocast_dtype: Optional[torch.dtype] = None, optimize: bool = True,
                 precision: Optional[str] = None):
        from wespk.inference.optimize import optimize_for_inference
        if precision is not None:
            if precision not in PRECISIONS:
                raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
            autocast_dtype = PRECISIONS[precision]
        elif autocast_dtype not in PRECISIONS.values():
            raise ValueError(f"unsupported autocast dtype {autocast_dtype}")
        self.config = config
        self.device = torch.device(device)
        self.model = optimize_for_inference(model, self.device) if optimize else model.eval()
        self.autocast_dtype = autocast_dtype
        if autocast_dtype == torch.bfloat16 and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            logger.warning("this CPU has no bf16 instructions (%s): bf16 autocast is emulated and slower "
                           "than fp32 here; the ONNX export is the faster exact path",
                           " or ".join(NATIVE_BF16_FLAGS))

    @torch.inference_mode()
    def embed_inputs(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        from wespk.models import embedding_from_output
        lengths = torch.tensor([x.shape[0] for x in inputs], dtype=torch.long)
        batch = torch.zeros((len(inputs), int(lengths.max())) + tuple(inputs[0].shape[1:]))
        for i, x in enumerate(inputs):
            batch[i, : x.shape[0]] = x
        batch, lengths = batch.to(self.device), lengths.to(self.device)
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            if len(inputs) == 1 or bool((lengths == lengths[0]).all()):
                out = self.model(batch)  # nothing is padded: no masks needed
            else:
                out = self.model(batch, lengths)
        return embedding_from_output(out).float().cpu().numpy()

    embed_features = embed_inputs


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
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.kind = metadata.get(KIND_KEY) or (PARTIAL_WINDOWS_KIND if self.input_names == ["windows"]
                                               else UTTERANCE_KIND)
        if config is None:
            if CONFIG_KEY not in metadata:
                raise ExportedModelError(f"{self.path}: no config.yaml next to it and none embedded in the file")
            config = config_from_text(metadata[CONFIG_KEY], self.path)
        self.config = config
        expected = ["windows"] if self.kind == PARTIAL_WINDOWS_KIND else ["feats", "lengths"]
        if self.input_names != expected:
            raise ExportedModelError(f"{self.path}: inputs {self.input_names}, expected {expected} "
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

    def embed_inputs(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        if self.planner is not None:
            windows, owners = self.planner.windows(inputs)
            partials = self.session.run(None, {"windows": windows})[0]
            return self.planner.combine(partials, owners, len(inputs))
        batch, lengths = pad_inputs(inputs)
        return np.asarray(self.session.run(None, {"feats": batch, "lengths": lengths})[0], dtype=np.float32)

    embed_features = embed_inputs


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

    def embed_inputs(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            if self.planner is not None:
                windows, owners = self.planner.windows(inputs)
                partials = self.module(torch.from_numpy(windows).to(self.device))
                return self.planner.combine(partials.float().cpu().numpy(), owners, len(inputs))
            batch, lengths = pad_inputs(inputs)
            out = self.module(torch.from_numpy(batch).to(self.device), torch.from_numpy(lengths).to(self.device))
            return out.float().cpu().numpy()

    embed_features = embed_inputs


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


def make_runner(resolved, device: str = "cpu", precision: str = "fp32", optimize: bool = True,
                num_threads: Optional[int] = None, trust_checkpoint: bool = False):
    """The runner of a :class:`~wespk.inference.model_dir.ResolvedModel`: eager, TorchScript or ONNX Runtime.

    ``precision`` and ``optimize`` apply to the eager backend (the exported
    graphs run as exported); ``num_threads`` to ONNX Runtime's session.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if resolved.backend == "torch":
        from wespk.inference.model_dir import load_speaker_model
        model, config = load_speaker_model(resolved.model_dir, resolved.model_file, device, trust_checkpoint)
        return EagerRunner(model, config, device, optimize=optimize, precision=precision)
    if precision != "fp32":
        logger.warning("--precision %s applies to the PyTorch backend; the %s graph runs as exported",
                       precision, resolved.backend)
    if resolved.backend == "onnx":
        if torch.device(device).type != "cpu":
            raise ValueError(f"{resolved.model_file}: the onnx backend runs on the CPU; got device {device!r}")
        return OnnxRunner(resolved.model_file, resolved.config, num_threads)
    return TorchScriptRunner(resolved.model_file, resolved.config, device)
