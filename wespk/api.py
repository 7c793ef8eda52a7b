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

This module is a facade: the model dir is resolved by
:mod:`wespk.inference.model_dir`, audio is embedded by the extraction engine
(:mod:`wespk.inference.extractor`), inputs are coerced by
:mod:`wespk.inference.audio_input`, the speaker database is
:mod:`wespk.inference.speaker_db` and the score calibrator
:mod:`wespk.scoring.calibrator`. It imports only numpy at import time
(``import wespk`` stays light); torch and the runtimes are imported when a
model is loaded.
"""

import dataclasses
import logging
import os
import re
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

from wespk.inference.audio_input import as_numpy, load_waveform, waveform_from_array
from wespk.inference.model_dir import BACKEND_CHOICES, ModelDirError, ResolvedModel
from wespk.inference.speaker_db import SpeakerDatabaseError, SpeakerManager, cosine_similarity
from wespk.scoring.calibrator import CalibrationError, ScoreCalibrator, load_score_calibrator

__all__ = ["AudioInput", "BACKEND_CHOICES", "CalibrationError", "EmbedderConfig", "EmbedderConfigError",
           "ModelDirError", "ResolvedModel", "ScoreCalibrator", "SpeakerDatabaseError", "SpeakerEmbedder",
           "SpeakerManager", "cosine_similarity", "load_model", "load_score_calibrator", "resolve_model",
           "waveform_from_array"]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
#: What ``embed`` accepts: a path, a numpy array or a torch tensor.
AudioInput = Any

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


def resolve_model(path: PathLike, backend: str = "auto") -> ResolvedModel:
    """The model dir's config, backend and model file: :func:`wespk.inference.model_dir.resolve_model_dir`."""
    from wespk.inference.model_dir import resolve_model_dir
    return resolve_model_dir(path, backend)


class SpeakerEmbedder:
    """Audio in, speaker embeddings out; made by :func:`load_model`.

    Attributes:
        options: the :class:`EmbedderConfig`.
        model: the :class:`ResolvedModel` (dir, backend, model file, config).
        extractor: the :class:`~wespk.inference.extractor.EmbeddingExtractor` that does the work.
        sample_rate: the rate the model works at; other rates are resampled.
        note: called with a message whenever input audio is resampled or
            down-mixed (default: ``logger.info``).
    """

    def __init__(self, resolved: ResolvedModel, extractor: Any, options: EmbedderConfig,
                 note: Optional[Callable[[str], None]] = None, trust_checkpoint: bool = False):
        self.model = resolved
        self.options = options
        self.extractor = extractor
        self.runner = extractor.runner
        self.frontend = extractor.frontend
        self.sample_rate = extractor.sample_rate
        self.note = note or logger.info
        self.trust_checkpoint = trust_checkpoint
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
    def load_waveform(self, audio: AudioInput, sample_rate: Optional[int] = None):
        """``(mono float32 samples, sample rate, description)`` of a path, array or tensor."""
        samples, rate, channels, source = load_waveform(audio, sample_rate, self.sample_rate)
        changes = []
        if rate != self.sample_rate:
            changes.append(f"resampled from {rate} Hz to {self.sample_rate} Hz")
        if channels > 1:
            changes.append(f"down-mixed {channels} channels to mono")
        if changes:
            self.note(f"{source}: {' and '.join(changes)}")
        return samples, rate, source

    def features(self, audio: AudioInput, sample_rate: Optional[int] = None):
        """The model's input (features ``[T, F]`` or samples ``[S]``, a torch tensor) of one input."""
        samples, rate, source = self.load_waveform(audio, sample_rate)
        return self.extractor.features(samples, rate, source)

    def embed_features(self, feats: Sequence[Any]) -> np.ndarray:
        """Embeddings ``[B, D]`` of model inputs, in length-sorted batches of ``options.batch_size``."""
        if not feats:
            return np.zeros((0, self._embed_dim or 0), dtype=np.float32)
        order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
        out: List[Optional[np.ndarray]] = [None] * len(feats)
        size = self.options.batch_size
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            inputs = [feats[i] for i in chunk]
            if self.extractor.postprocess is None:
                vectors = self.extractor.embed_features(inputs)
            else:   # the enhancer's noise is keyed by each input's content
                from wespk.enhance.enhancer import content_key
                vectors = self.extractor.embed_keyed([content_key(f) for f in inputs], inputs)
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

    def embed_segments(self, audio: AudioInput, segments: Sequence[Any], sample_rate: Optional[int] = None):
        """``(embeddings [M, D], kept indices)`` of ``(start, end)`` pieces (seconds) of one recording
        (see :meth:`wespk.inference.extractor.EmbeddingExtractor.embed_segments`)."""
        samples, rate, _ = self.load_waveform(audio, sample_rate)
        return self.extractor.embed_segments(samples, rate, segments, self.options.batch_size)

    def is_embedding(self, item: Any) -> bool:
        """True for a 1-D float vector of the model's embedding dimension (not audio)."""
        if isinstance(item, (str, os.PathLike)):
            return False
        data = as_numpy(item)
        return data.ndim == 1 and data.dtype.kind == "f" and self._embed_dim is not None \
            and data.shape[0] == self._embed_dim

    def as_embedding(self, item: Any, sample_rate: Optional[int] = None) -> np.ndarray:
        """``item`` itself when it is an embedding, else the embedding of the audio it is."""
        if self.is_embedding(item):
            return np.asarray(as_numpy(item), dtype=np.float32)
        return self.embed(item, sample_rate)

    def similarity(self, a: Any, b: Any, sample_rate: Optional[int] = None) -> float:
        """Cosine similarity of two inputs (paths, arrays, tensors or embeddings)."""
        return cosine_similarity(self.as_embedding(a, sample_rate), self.as_embedding(b, sample_rate))

    # -- lists -----------------------------------------------------------
    def extract_to_ark(self, data: str, out_dir: str, strict: bool = False, progress: bool = False,
                       nj: int = 1, format: str = "ark") -> int:
        """Embed every utterance of a data dir / wav.scp / raw list into ``out_dir``.

        :func:`wespk.inference.extractor.extract_embeddings` with this
        embedder's model, backend and batch size (``nj`` jobs; ``format``
        ``ark`` or ``npy``): ``xvector.{ark,scp}`` (or the ``.npy`` tree),
        ``utt2dur``, and ``skipped`` when utterances could not be used.
        With ``nj`` 1 the loaded model is used in this process. Returns the
        number of embeddings written.
        """
        from wespk.inference.extractor import extract_embeddings
        return extract_embeddings(data, self.model.model_dir, out_dir, nj=nj, batch_size=self.options.batch_size,
                                  device=self.options.device, checkpoint=self.model.model_file, strict=strict,
                                  trust_checkpoint=self.trust_checkpoint, backend=self.backend, format=format,
                                  num_threads=self.options.num_threads, progress=progress,
                                  extractor=self.extractor if nj == 1 else None,
                                  postprocess=self.extractor.postprocess)


def load_model(path: PathLike, device: str = "cpu", backend: str = "auto", batch_size: int = 16,
               num_threads: Optional[int] = None, note: Optional[Callable[[str], None]] = None,
               trust_checkpoint: bool = False, enhancer: Optional[PathLike] = None,
               enhance_seed: int = 0) -> SpeakerEmbedder:
    """Load a model dir (or model file) as a :class:`SpeakerEmbedder`.

    ``path``: a dir with ``config.yaml`` and ``avg_model.pt`` (or
    ``models/avg_model.pt``), and/or an exported ``final.onnx`` / TorchScript
    ``final.pt``; or one of those files. ``backend`` ``auto`` takes the
    PyTorch model when there is one, else ONNX, else TorchScript.
    A PyTorch model file is read with ``torch.load(weights_only=True)``;
    ``trust_checkpoint=True`` lifts that for a file that needs it, and runs
    whatever code the file carries: only for files from a trusted source.
    ``enhancer``: a SEED enhancer dir trained for this model (docs/enhance.md); every embedding is
    then enhanced, with noise seeded by ``enhance_seed`` and the utterance key (a hash of the
    input for in-memory audio).
    """
    options = EmbedderConfig(device=device, batch_size=batch_size, backend=backend, num_threads=num_threads)
    resolved = resolve_model(path, options.backend)
    if options.backend == "auto" and resolved.backend == "onnx" and options.device != "cpu":
        raise EmbedderConfigError(f"{resolved.model_file}: the onnx backend runs on the CPU; "
                                  f"got device {options.device!r}")
    import torch
    from wespk.inference.extractor import EmbeddingExtractor
    from wespk.inference.runners import make_runner
    if options.num_threads and resolved.backend != "onnx":
        torch.set_num_threads(options.num_threads)
    runner = make_runner(resolved, options.device, num_threads=options.num_threads,
                         trust_checkpoint=trust_checkpoint)
    postprocess = None
    if enhancer is not None:
        from wespk.enhance.enhancer import EnhancementStep
        postprocess = EnhancementStep(os.fspath(enhancer), enhance_seed, model_dir=resolved.model_dir,
                                      device=options.device)
    extractor = EmbeddingExtractor(runner, resolved.config, options.device, postprocess=postprocess)
    logger.info("loaded %s (%s backend) from %s", resolved.config.get("model"), resolved.backend,
                resolved.model_file)
    return SpeakerEmbedder(resolved, extractor, options, note, trust_checkpoint)
