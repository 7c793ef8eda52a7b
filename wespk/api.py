"""The Python API: load a model, embed audio, compare voices, enroll and search speakers.

::

    import wespk

    model = wespk.load_model("exp/resnet34")        # config.yaml + avg_model.pt, or + final.onnx
    vector = model.embed("alice.flac")              # np.ndarray [D], the raw embedding
    score = model.similarity("alice.flac", "bob.wav")   # cosine in [-1, 1]

    speakers = wespk.SpeakerManager(model)
    speakers.add("alice", ["alice1.flac", "alice2.flac"])   # averaged enrollments
    speakers.search("unknown.wav", threshold=0.5)           # [("alice", 0.71), ...] best first
    speakers.save("speakers.json")

``embed`` takes a file path, a numpy array or a torch tensor (1-D mono, or
2-D with a channel axis, which is down-mixed) and an optional
``sample_rate`` (arrays default to the model's rate); audio at another rate
is resampled. A model dir's backend is eager PyTorch, ONNX Runtime
(``final.onnx``) or TorchScript (``final.pt``); all give the same embeddings
within 1e-4 (see :mod:`wespk.export.parity`).

This module imports only numpy at import time (``import wespk`` stays
light); torch and the runtimes are imported when a model is loaded.
"""

import dataclasses
import json
import logging
import math
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.audio import AudioError, load_audio
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
#: What ``embed`` accepts: a path, a numpy array or a torch tensor.
AudioInput = Any

BACKEND_CHOICES = ("auto", "torch", "onnx", "jit")
_DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


class EmbedderConfigError(ValueError):
    """An invalid :class:`EmbedderConfig` value."""


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
    """How a :class:`SpeakerEmbedder` runs.

    Attributes:
        device: ``cpu``, ``cuda`` or ``cuda:N`` (``torch`` and ``jit`` backends;
            ONNX Runtime runs on the CPU here).
        batch_size: utterances per forward pass in :meth:`SpeakerEmbedder.embed_batch`.
        backend: ``torch`` (avg_model.pt), ``onnx`` (final.onnx), ``jit``
            (TorchScript final.pt) or ``auto``: the first of these the model
            dir has, in that order.
        num_threads: CPU threads (ONNX Runtime session; ``torch.set_num_threads``
            for the others); None keeps the library default.
    """

    device: str = "cpu"
    batch_size: int = 16
    backend: str = "auto"
    num_threads: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.device, str) or not _DEVICE_PATTERN.match(self.device):
            raise EmbedderConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.backend not in BACKEND_CHOICES:
            raise EmbedderConfigError(f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {self.backend!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise EmbedderConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool)
                                             or not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise EmbedderConfigError(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        if self.backend == "onnx" and self.device != "cpu":
            raise EmbedderConfigError(f"the onnx backend runs on the CPU; got device {self.device!r}")


# ----------------------------------------------------------------- model dirs

@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are: its dir, backend, model file and config."""

    model_dir: str
    backend: str
    model_file: str
    config: Dict[str, Any]


def _model_dir_error(message: str) -> Exception:
    from wespk.inference.model_dir import ModelDirError
    return ModelDirError(message)


def _read_config(model_dir: str, embedded_from: Optional[Tuple[str, str]] = None) -> Dict[str, Any]:
    """The dir's config.yaml, else the config embedded in an exported file, else an error."""
    from wespk.inference.model_dir import load_model_config
    if os.path.isfile(os.path.join(model_dir, "config.yaml")) or embedded_from is None:
        return load_model_config(model_dir)
    backend, path = embedded_from
    from wespk.export.runtime import OnnxRunner, load_torchscript
    if backend == "onnx":
        config = OnnxRunner.embedded_config(path)
    else:
        import torch
        config = load_torchscript(path, torch.device("cpu"))[2]
    if config is None:
        return load_model_config(model_dir)  # raises: no config.yaml
    return config


def resolve_model(path: PathLike, backend: str = "auto") -> ResolvedModel:
    """Find the model file and config of a model dir (or of a model file) for ``backend``.

    ``path`` is a model dir (``config.yaml`` + ``avg_model.pt`` or
    ``models/avg_model.pt``, or + ``final.onnx`` / TorchScript ``final.pt``)
    or one of those files; a file's config is the ``config.yaml`` of its
    directory or the directory above, or the config embedded in an export.
    """
    from wespk.export.runtime import find_eager_model_file, find_exported_file, is_torchscript_file
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _model_dir_error(f"{path}: model dir not found")
    if os.path.isfile(path):
        if path.endswith(".onnx"):
            file_backend = "onnx"
        elif is_torchscript_file(path):
            file_backend = "jit"
        else:
            file_backend = "torch"
        if backend not in ("auto", file_backend):
            raise _model_dir_error(f"{path}: a {file_backend} model file, but backend {backend!r} was asked for")
        here = os.path.dirname(os.path.abspath(path))
        parent = os.path.dirname(here)
        model_dir = here if (os.path.isfile(os.path.join(here, "config.yaml"))
                             or not os.path.isfile(os.path.join(parent, "config.yaml"))) else parent
        embedded = (file_backend, path) if file_backend != "torch" else None
        return ResolvedModel(model_dir, file_backend, path, _read_config(model_dir, embedded))
    model_dir = path
    if not os.path.isfile(os.path.join(model_dir, "config.yaml")) and \
            find_exported_file(model_dir, "onnx") is None and find_exported_file(model_dir, "jit") is None:
        _read_config(model_dir)  # raises ModelDirError: no config.yaml
    order = ("torch", "onnx", "jit") if backend == "auto" else (backend,)
    for candidate in order:
        found = find_eager_model_file(model_dir) if candidate == "torch" else find_exported_file(model_dir, candidate)
        if found:
            embedded = (candidate, found) if candidate != "torch" else None
            return ResolvedModel(model_dir, candidate, found, _read_config(model_dir, embedded))
    wanted = {"torch": "avg_model.pt or models/avg_model.pt", "onnx": "final.onnx or models/final.onnx",
              "jit": "a TorchScript final.pt or models/final.pt"}
    raise _model_dir_error(f"{model_dir}: no model file for backend {backend!r} "
                           f"(looked for {'; '.join(wanted[b] for b in order)})")


# ----------------------------------------------------------------- audio input

def _integer_scale(dtype: np.dtype) -> Tuple[float, float]:
    """``(offset, scale)`` mapping integer PCM of ``dtype`` to [-1, 1]."""
    info = np.iinfo(dtype)
    if info.min == 0:  # unsigned, e.g. 8-bit WAV
        middle = (info.max + 1) / 2.0
        return middle, middle
    return 0.0, float(-info.min)


def _as_numpy(audio: Any) -> np.ndarray:
    if type(audio).__module__.startswith("torch"):
        audio = audio.detach().cpu().numpy()
    return np.asarray(audio)


def waveform_from_array(audio: Any, source: str = "array") -> Tuple[np.ndarray, int]:
    """A mono float32 waveform from a 1-D or 2-D array / tensor, and its channel count.

    Integer arrays are PCM scaled by their type's range. For 2-D input the
    shorter axis is the channel axis (``[channels, samples]`` or
    ``[samples, channels]``); channels are averaged.
    """
    data = _as_numpy(audio)
    if data.dtype.kind in "iu":
        offset, scale = _integer_scale(data.dtype)
        data = (data.astype(np.float64) - offset) / scale
    elif data.dtype.kind != "f":
        raise ValueError(f"{source}: audio must be a numeric array, got dtype {data.dtype}")
    channels = 1
    if data.ndim == 2:
        channel_axis = 0 if data.shape[0] <= data.shape[1] else 1
        channels = data.shape[channel_axis]
        if channels > 32:
            raise ValueError(f"{source}: cannot tell the channel axis of a {data.shape} array "
                             f"(expected [channels, samples] or [samples, channels])")
        data = data.mean(axis=channel_axis)
    elif data.ndim != 1:
        raise ValueError(f"{source}: audio must be 1-D (mono) or 2-D (with channels), got shape {data.shape}")
    if data.size == 0:
        raise AudioError(f"{source}: no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{source}: audio contains NaN or Inf samples")
    return np.ascontiguousarray(data, dtype=np.float32), channels


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors; a zero vector is an error."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare embeddings of dimensions {a.shape[0]} and {b.shape[0]}")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        raise ValueError("cannot score a zero embedding")
    return float(np.dot(a, b) / norms)


# ----------------------------------------------------------------- the embedder

class SpeakerEmbedder:
    """Audio in, speaker embeddings out; made by :func:`load_model`.

    Attributes:
        options: the :class:`EmbedderConfig`.
        model: the :class:`ResolvedModel` (dir, backend, model file, config).
        sample_rate: the rate the model works at; other rates are resampled.
        note: called with a message whenever input audio is resampled or
            down-mixed (default: ``logger.info``).
    """

    def __init__(self, resolved: ResolvedModel, runner: Any, options: EmbedderConfig,
                 note: Optional[Callable[[str], None]] = None):
        from wespk.inference.frontend import FeatureFrontend
        self.model = resolved
        self.options = options
        self.runner = runner
        self.frontend = FeatureFrontend(resolved.config)
        self.sample_rate = self.frontend.sample_rate
        self.note = note or logger.info
        model_args = resolved.config.get("model_args") or {}
        self._embed_dim: Optional[int] = int(model_args["embed_dim"]) if "embed_dim" in model_args else None

    def __repr__(self) -> str:
        return (f"SpeakerEmbedder({self.model.config.get('model')!r}, backend={self.backend!r}, "
                f"file={self.model.model_file!r})")

    @property
    def backend(self) -> str:
        return self.model.backend

    @property
    def model_name(self) -> str:
        return str(self.model.config.get("model", "unknown"))

    @property
    def embed_dim(self) -> Optional[int]:
        """Embedding dimension (from ``model_args.embed_dim``, else known after the first embedding)."""
        return self._embed_dim

    # -- audio and features ----------------------------------------------
    def load_waveform(self, audio: AudioInput, sample_rate: Optional[int] = None) -> Tuple[np.ndarray, int, str]:
        """``(mono float32 samples, sample rate, description)`` of a path, array or tensor."""
        if isinstance(audio, (str, os.PathLike)):
            source = os.fspath(audio)
            if sample_rate is not None:
                raise ValueError(f"{source}: sample_rate is read from the file; do not pass it for a path")
            data, rate = load_audio(source, mono=False)
            channels = data.shape[1]
            samples = data.mean(axis=1) if channels > 1 else data[:, 0]
            samples = np.ascontiguousarray(samples, dtype=np.float32)
        else:
            source = f"{type(audio).__name__} input"
            samples, channels = waveform_from_array(audio, source)
            rate = int(sample_rate) if sample_rate is not None else self.sample_rate
            if rate <= 0:
                raise ValueError(f"{source}: sample_rate must be positive, got {sample_rate}")
        changes = []
        if rate != self.sample_rate:
            changes.append(f"resampled from {rate} Hz to {self.sample_rate} Hz")
        if channels > 1:
            changes.append(f"down-mixed {channels} channels to mono")
        if changes:
            self.note(f"{source}: {' and '.join(changes)}")
        return samples, rate, source

    def features(self, audio: AudioInput, sample_rate: Optional[int] = None):
        """The model's input features ``[T, F]`` (torch tensor) of one input."""
        samples, rate, source = self.load_waveform(audio, sample_rate)
        return self.frontend(samples, rate, source=source)

    def embed_features(self, feats: Sequence[Any]) -> np.ndarray:
        """Embeddings ``[B, D]`` of feature matrices, in batches of ``options.batch_size``."""
        if not feats:
            return np.zeros((0, self._embed_dim or 0), dtype=np.float32)
        order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
        out: List[Optional[np.ndarray]] = [None] * len(feats)
        size = self.options.batch_size
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            vectors = self.runner.embed_features([feats[i] for i in chunk])
            for i, vector in zip(chunk, vectors):
                out[i] = vector
        matrix = np.stack(out).astype(np.float32, copy=False)
        self._embed_dim = int(matrix.shape[1])
        return matrix

    # -- embeddings ------------------------------------------------------
    def embed(self, audio: AudioInput, sample_rate: Optional[int] = None) -> np.ndarray:
        """The raw (not length-normalised) embedding ``[D]`` of one input."""
        return self.embed_features([self.features(audio, sample_rate)])[0]

    def embed_batch(self, items: Sequence[AudioInput], sample_rate: Optional[int] = None,
                    progress: bool = False) -> np.ndarray:
        """Embeddings ``[N, D]`` of several inputs, in input order (padded batches, same values as one by one).

        ``progress`` shows a tqdm bar on a terminal.
        """
        items = list(items)
        iterator: Iterable = items
        if progress and len(items) > 1:
            from tqdm import tqdm
            iterator = tqdm(items, desc="embedding", unit="file", disable=None, leave=False)
        feats = [self.features(item, sample_rate) for item in iterator]
        return self.embed_features(feats)

    def is_embedding(self, item: Any) -> bool:
        """True for a 1-D float vector of the model's embedding dimension (not audio)."""
        if isinstance(item, (str, os.PathLike)):
            return False
        data = _as_numpy(item)
        return data.ndim == 1 and data.dtype.kind == "f" and self._embed_dim is not None \
            and data.shape[0] == self._embed_dim

    def as_embedding(self, item: Any, sample_rate: Optional[int] = None) -> np.ndarray:
        """``item`` itself when it is an embedding, else the embedding of the audio it is."""
        if self.is_embedding(item):
            return np.asarray(_as_numpy(item), dtype=np.float32)
        return self.embed(item, sample_rate)

    def similarity(self, a: Any, b: Any, sample_rate: Optional[int] = None) -> float:
        """Cosine similarity of two inputs (paths, arrays, tensors or embeddings)."""
        return cosine_similarity(self.as_embedding(a, sample_rate), self.as_embedding(b, sample_rate))

    # -- lists -----------------------------------------------------------
    def extract_to_ark(self, data: str, out_dir: str, strict: bool = False, progress: bool = False) -> int:
        """Embed every utterance of a data dir / wav.scp / raw list into ``out_dir/xvector.{ark,scp}``.

        The in-process counterpart of
        :func:`wespk.inference.extractor.extract_embeddings` for any backend
        and front end: same batch plan, same output files (``xvector.ark``,
        ``xvector.scp``, ``utt2dur``, and ``skipped`` when utterances could
        not be used). Returns the number of embeddings written.
        """
        from wespk.inference.extractor import plan_batches, read_utterances
        from wespk.io.embeddings import write_embeddings
        from wespk.io.files import DataFileError
        utts = read_utterances(data)
        if not utts:
            raise DataFileError(data, None, "no utterances")
        order = {u.key: i for i, u in enumerate(utts)}
        batches = plan_batches(utts, self.options.batch_size)
        results, durations, skipped = [], {}, []
        bar = None
        if progress and len(utts) > 1:
            from tqdm import tqdm
            bar = tqdm(total=len(utts), desc="extracting", unit="utt", disable=None, leave=False)
        for batch in batches:
            feats, keys = [], []
            for utt in batch:
                try:
                    samples, rate = load_audio(utt.audio)
                    feats.append(self.frontend(samples, rate, source=utt.source()))
                except AudioError as e:
                    if strict:
                        raise AudioError(f"utterance {utt.key}: {e}") from None
                    logger.warning("skipping utterance %s: %s", utt.key, e)
                    skipped.append(utt.key)
                    continue
                keys.append(utt.key)
                durations[utt.key] = len(samples) / rate
            if feats:
                results.extend(zip(keys, self.embed_features(feats)))
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        results.sort(key=lambda kv: order[kv[0]])
        os.makedirs(out_dir, exist_ok=True)
        count = write_embeddings(os.path.join(out_dir, "xvector.ark"), os.path.join(out_dir, "xvector.scp"), results)
        with atomic_output(os.path.join(out_dir, "utt2dur")) as f:
            f.writelines(f"{k} {durations[k]:.4f}\n" for k, _ in results)
        skipped_path = os.path.join(out_dir, "skipped")
        if skipped:
            with atomic_output(skipped_path) as f:
                f.writelines(f"{k}\n" for k in sorted(skipped, key=lambda k: order[k]))
            logger.warning("%d utterance(s) skipped, listed in %s", len(skipped), skipped_path)
        elif os.path.exists(skipped_path):
            os.unlink(skipped_path)
        return count


def load_model(path: PathLike, device: str = "cpu", backend: str = "auto", batch_size: int = 16,
               num_threads: Optional[int] = None, note: Optional[Callable[[str], None]] = None,
               trust_checkpoint: bool = False) -> SpeakerEmbedder:
    """Load a model dir (or model file) as a :class:`SpeakerEmbedder`.

    ``path``: a dir with ``config.yaml`` and ``avg_model.pt`` (or
    ``models/avg_model.pt``), and/or an exported ``final.onnx`` / TorchScript
    ``final.pt``; or one of those files. ``backend`` ``auto`` takes the
    PyTorch model when there is one, else ONNX, else TorchScript.
    A PyTorch model file is read with ``torch.load(weights_only=True)``;
    ``trust_checkpoint=True`` lifts that for a file that needs it, and runs
    whatever code the file carries: only for files from a trusted source.
    """
    options = EmbedderConfig(device=device, batch_size=batch_size, backend=backend, num_threads=num_threads)
    resolved = resolve_model(path, options.backend)
    if options.backend == "auto" and resolved.backend == "onnx" and options.device != "cpu":
        raise EmbedderConfigError(f"{resolved.model_file}: the onnx backend runs on the CPU; "
                                  f"got device {options.device!r}")
    import torch
    if options.num_threads and resolved.backend != "onnx":
        torch.set_num_threads(options.num_threads)
    if resolved.backend == "torch":
        from wespk.export.runtime import EagerRunner
        from wespk.inference.model_dir import load_speaker_model
        model, config = load_speaker_model(resolved.model_dir, resolved.model_file, options.device,
                                           trust_checkpoint)
        runner = EagerRunner(model, config, options.device)
    elif resolved.backend == "onnx":
        from wespk.export.runtime import OnnxRunner
        runner = OnnxRunner(resolved.model_file, resolved.config, options.num_threads)
    else:
        from wespk.export.runtime import TorchScriptRunner
        runner = TorchScriptRunner(resolved.model_file, resolved.config, options.device)
    logger.info("loaded %s (%s backend) from %s", resolved.config.get("model"), resolved.backend,
                resolved.model_file)
    return SpeakerEmbedder(resolved, runner, options, note)


# ----------------------------------------------------------------- calibration

CALIBRATION_JSON = "calibration.json"
QMF_MODEL_FILES = ("qmf_model.pt", "calibration_model.pt")


class CalibrationError(ValueError):
    """A calibration file that cannot be used for a single trial's score."""


@dataclasses.dataclass(frozen=True)
class ScoreCalibrator:
    """Maps a cosine score to a calibrated log-likelihood ratio.

    ``llr = scale * score + offset``. ``threshold`` is an optional cosine
    decision threshold recommended for the model (``calibration.json`` may
    carry one).
    """

    source: str
    scale: float
    offset: float
    threshold: Optional[float] = None

    def calibrate(self, score: float) -> float:
        return self.scale * float(score) + self.offset


def _finite_number(value: Any, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CalibrationError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


def load_score_calibrator(model_dir: str) -> Optional[ScoreCalibrator]:
    """The score calibrator of a model dir, or None when it has none.

    Looked for, in this order:

    * ``calibration.json``: ``{"scale": a, "offset": b}`` (optional
      ``"threshold"``: a cosine decision threshold);
    * ``qmf_model.pt`` / ``calibration_model.pt``: a QMF model saved by
      ``python -m wespk.bin.calibrate`` or WeSpeaker, loaded with
      :func:`wespk.scoring.calibration.load_qmf_model`. Only a score-only
      model (one input) applies to a single trial; a model with quality
      measures (durations, magnitudes, AS-norm cohort means) raises
      :class:`CalibrationError` saying so.
    """
    path = os.path.join(model_dir, CALIBRATION_JSON)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as e:
            raise CalibrationError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or "scale" not in data or "offset" not in data:
            raise CalibrationError(f"{path}: expected an object with 'scale' and 'offset'")
        threshold = data.get("threshold")
        return ScoreCalibrator(source=path, scale=_finite_number(data["scale"], "scale", path),
                               offset=_finite_number(data["offset"], "offset", path),
                               threshold=None if threshold is None else _finite_number(threshold, "threshold", path))
    for name in QMF_MODEL_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            from wespk.scoring.calibration import apply_qmf, load_qmf_model
            state = load_qmf_model(path)
            inputs = int(state["linear.weight"].shape[1])
            if inputs != 1:
                raise CalibrationError(f"{path}: this QMF model takes {inputs} inputs (score plus quality measures "
                                       f"from AS-norm cohort statistics), which a single trial does not have")
            offset = float(apply_qmf(state, np.zeros((1, 1)))[0])
            scale = float(apply_qmf(state, np.ones((1, 1)))[0]) - offset
            return ScoreCalibrator(source=path, scale=scale, offset=offset)
    return None


# ----------------------------------------------------------------- speaker manager

DB_FORMAT = "wespk-speaker-db"
DB_VERSION = 1


class SpeakerDatabaseError(ValueError):
    """A speaker database file that cannot be read, or that does not fit the model."""


class SpeakerManager:
    """Enrolled speakers: a mean embedding per name, searchable by cosine similarity.

    Each speaker's vector is the mean of the raw embeddings of all its
    enrollments (:meth:`add` may be called several times for one name).
    With an ``embedder`` the methods take audio as well as embeddings.
    Saved as JSON (``.json``) or numpy (``.npz``), written atomically.
    """

    def __init__(self, embedder: Optional[SpeakerEmbedder] = None):
        self.embedder = embedder
        self._sums: Dict[str, np.ndarray] = {}
        self._counts: Dict[str, int] = {}
        self.model_name: Optional[str] = embedder.model_name if embedder is not None else None
        self.embed_dim: Optional[int] = embedder.embed_dim if embedder is not None else None

    def __len__(self) -> int:
        return len(self._sums)

    def __contains__(self, name: str) -> bool:
        return name in self._sums

    @property
    def names(self) -> List[str]:
        return list(self._sums)

    def count(self, name: str) -> int:
        """Number of enrollments averaged into ``name``."""
        return self._counts[name]

    def embedding(self, name: str) -> np.ndarray:
        """The mean embedding of ``name``."""
        return (self._sums[name] / self._counts[name]).astype(np.float32)

    def _vectors(self, item: Any, sample_rate: Optional[int]) -> np.ndarray:
        """``[N, D]`` embeddings of one input or a list of inputs (audio or embeddings)."""
        items = list(item) if isinstance(item, (list, tuple)) else [item]
        if not items:
            raise ValueError("nothing to enroll")
        vectors: List[Optional[np.ndarray]] = [None] * len(items)
        audio_positions = []
        for i, one in enumerate(items):
            if self.embedder is not None and self.embedder.is_embedding(one):
                vectors[i] = np.asarray(_as_numpy(one), dtype=np.float32)
            elif self.embedder is None:
                data = _as_numpy(one) if not isinstance(one, (str, os.PathLike)) else None
                if data is None or data.ndim != 1 or data.dtype.kind != "f":
                    raise ValueError("this SpeakerManager has no embedder: pass 1-D float embeddings")
                vectors[i] = data.astype(np.float32)
            else:
                audio_positions.append(i)
        if audio_positions:
            embedded = self.embedder.embed_batch([items[i] for i in audio_positions], sample_rate)
            for i, vector in zip(audio_positions, embedded):
                vectors[i] = vector
        matrix = np.stack(vectors)
        if self.embed_dim is None:
            self.embed_dim = int(matrix.shape[1])
        if matrix.shape[1] != self.embed_dim:
            raise ValueError(f"embedding dimension {matrix.shape[1]} differs from the database's {self.embed_dim}")
        if not np.isfinite(matrix).all():
            raise ValueError("embedding contains NaN or Inf")
        return matrix

    def add(self, name: str, audio_or_embedding: Any, sample_rate: Optional[int] = None) -> int:
        """Enroll one input or a list of inputs under ``name``; returns its number of enrollments."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"speaker name must be a non-empty string, got {name!r}")
        matrix = self._vectors(audio_or_embedding, sample_rate)
        total = matrix.astype(np.float64).sum(axis=0)
        if name in self._sums:
            self._sums[name] = self._sums[name] + total
            self._counts[name] += matrix.shape[0]
        else:
            self._sums[name] = total
            self._counts[name] = matrix.shape[0]
        return self._counts[name]

    def remove(self, name: str) -> None:
        """Forget ``name``; KeyError when it is not enrolled."""
        if name not in self._sums:
            raise KeyError(f"speaker {name!r} is not enrolled")
        del self._sums[name]
        del self._counts[name]

    def scores(self, audio_or_embedding: Any, sample_rate: Optional[int] = None) -> List[Tuple[str, float]]:
        """Cosine score against every enrolled speaker, best first (ties by name)."""
        query = self._vectors(audio_or_embedding, sample_rate)[0]
        results = [(name, cosine_similarity(query, self._sums[name] / self._counts[name])) for name in self._sums]
        results.sort(key=lambda kv: (-kv[1], kv[0]))
        return results

    def search(self, audio_or_embedding: Any, threshold: Optional[float] = None, top_k: Optional[int] = None,
               sample_rate: Optional[int] = None) -> List[Tuple[str, float]]:
        """Enrolled speakers scoring at least ``threshold`` (all when None), best first, at most ``top_k``."""
        results = self.scores(audio_or_embedding, sample_rate)
        if threshold is not None:
            results = [(name, score) for name, score in results if score >= threshold]
        return results[:top_k] if top_k is not None else results

    # -- files -----------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write the database atomically: ``.npz`` as numpy arrays, anything else as JSON."""
        path = os.fspath(path)
        names = self.names
        means = np.stack([self.embedding(n) for n in names]) if names else \
            np.zeros((0, self.embed_dim or 0), dtype=np.float32)
        meta = {"format": DB_FORMAT, "version": DB_VERSION, "model": self.model_name, "embed_dim": self.embed_dim}
        if path.endswith(".npz"):
            with atomic_output(path, "wb") as f:
                np.savez(f, names=np.array(names, dtype=str), embeddings=means,
                         counts=np.array([self._counts[n] for n in names], dtype=np.int64),
                         meta=np.array(json.dumps(meta)))
            return
        document = dict(meta, speakers=[{"name": n, "count": self._counts[n],
                                         "embedding": [float(v) for v in means[i]]} for i, n in enumerate(names)])
        with atomic_output(path) as f:
            json.dump(document, f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: PathLike, embedder: Optional[SpeakerEmbedder] = None) -> "SpeakerManager":
        """Read a database written by :meth:`save`; with ``embedder``, check that it fits the model."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SpeakerDatabaseError(f"{path}: speaker database not found")
        try:
            if path.endswith(".npz"):
                with np.load(path, allow_pickle=False) as arrays:
                    meta = json.loads(str(arrays["meta"]))
                    names = [str(n) for n in arrays["names"]]
                    means = np.asarray(arrays["embeddings"], dtype=np.float32)
                    counts = [int(c) for c in arrays["counts"]]
            else:
                with open(path, encoding="utf-8") as f:
                    meta = json.load(f)
                speakers = meta.get("speakers")
                if not isinstance(speakers, list):
                    raise KeyError("speakers")
                names = [str(s["name"]) for s in speakers]
                counts = [int(s["count"]) for s in speakers]
                means = np.array([s["embedding"] for s in speakers], dtype=np.float32).reshape(len(names), -1)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SpeakerDatabaseError(f"{path}: not a wespk speaker database ({type(e).__name__}: {e})") from None
        if meta.get("format") != DB_FORMAT or meta.get("version") != DB_VERSION:
            raise SpeakerDatabaseError(f"{path}: not a {DB_FORMAT} version {DB_VERSION} file")
        if len(set(names)) != len(names) or len(counts) != len(names) or any(c < 1 for c in counts):
            raise SpeakerDatabaseError(f"{path}: duplicate names or bad enrollment counts")
        manager = cls(embedder)
        stored_dim = meta.get("embed_dim")
        if names and stored_dim is not None and means.shape[1] != stored_dim:
            raise SpeakerDatabaseError(f"{path}: embeddings have dimension {means.shape[1]}, header says {stored_dim}")
        if embedder is not None:
            model_dim = embedder.embed_dim
            if stored_dim is not None and model_dim is not None and stored_dim != model_dim:
                raise SpeakerDatabaseError(f"{path}: made with {stored_dim}-dim embeddings "
                                           f"({meta.get('model')}), but the model gives {model_dim}-dim ones")
            if meta.get("model") and meta.get("model") != embedder.model_name:
                logger.warning("%s was made with model %s, now scoring with %s", path, meta.get("model"),
                               embedder.model_name)
        manager.model_name = meta.get("model") or manager.model_name
        manager.embed_dim = stored_dim if stored_dim is not None else manager.embed_dim
        for name, mean, count in zip(names, means, counts):
            manager._sums[name] = mean.astype(np.float64) * count
            manager._counts[name] = count
        return manager
