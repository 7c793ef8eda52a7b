"""The diarization of one recording: VAD -> speech regions -> sub-segments ->
batched embeddings -> clustering -> speaker turns.

Speech regions come from silero-vad when the ``silero-vad`` package is
installed (``vad="auto"``), else from wespk's energy VAD
(:mod:`wespk.features.vad`); gaps shorter than ``min_silence`` are closed and
regions shorter than ``min_speech`` dropped. Embeddings are computed by the
extraction engine (:meth:`wespk.inference.extractor.EmbeddingExtractor.embed_segments`:
the model dir's own front end and backend, padded batches with true lengths,
no randomness). The audio is resampled once to the model's rate.

Bad input never ends in a traceback: a recording without speech gives no
turns, a recording with a single usable sub-segment gives one speaker, and
unreadable audio raises :class:`~wespk.io.audio.AudioError` naming the file.
"""

import dataclasses
import logging
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from wespk.diarization.clustering import ClusteringConfig, cluster_embeddings
from wespk.diarization.rttm import Turn
from wespk.diarization.segmentation import (DEFAULT_SHIFT, DEFAULT_WINDOW, SubSegment, labels_to_turns,
                                            subsegment_regions)
from wespk.io.audio import load_audio, resample

logger = logging.getLogger(__name__)

VAD_CHOICES = ("auto", "silero", "energy")


@dataclasses.dataclass(frozen=True)
class DiarizationConfig:
    vad: str = "auto"
    #: close gaps between speech regions shorter than this (s), then drop regions shorter than min_speech
    min_silence: float = 0.25
    min_speech: float = 0.25
    window: float = DEFAULT_WINDOW
    shift: float = DEFAULT_SHIFT
    batch_size: int = 32
    clustering: ClusteringConfig = ClusteringConfig()

    def __post_init__(self):
        if self.vad not in VAD_CHOICES:
            raise ValueError(f"unknown VAD {self.vad!r}; choose from {', '.join(VAD_CHOICES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclasses.dataclass
class RecordingDiarization:
    """What :meth:`Diarizer.diarize` found in one recording."""
    recording: str
    duration: float
    turns: List[Turn]
    speech_regions: List[Tuple[float, float]]
    num_subsegments: int
    note: Optional[str] = None      # why the result is empty or one speaker, when it is


def resolve_vad_method(vad: str) -> str:
    from wespk.features.vad import silero_vad_available
    if vad == "auto":
        return "silero" if silero_vad_available() else "energy"
    return vad


def tidy_regions(regions: Sequence[Tuple[float, float]], min_silence: float,
                 min_speech: float) -> List[Tuple[float, float]]:
    """Close gaps shorter than ``min_silence``, then drop regions shorter than ``min_speech`` (seconds)."""
    closed: List[List[float]] = []
    for start, end in sorted(regions):
        if closed and start - closed[-1][1] < min_silence:
            closed[-1][1] = max(closed[-1][1], end)
        else:
            closed.append([start, end])
    return [(s, e) for s, e in closed if e - s >= min_speech]


class Diarizer:
    """Diarizes recordings with one speaker model.

    ``Diarizer.from_model_dir(dir, config)`` loads the model of a model dir;
    ``diarize_file(path_or_ref, recording)`` and ``diarize(samples, rate,
    recording)`` return a :class:`RecordingDiarization`.
    """

    def __init__(self, extractor, config: DiarizationConfig = DiarizationConfig()):
        from wespk.features.vad import VoiceActivityDetector
        self.extractor = extractor
        self.config = config
        self.vad_method = resolve_vad_method(config.vad)
        self.vad = VoiceActivityDetector(self.vad_method)
        self.sample_rate = extractor.sample_rate

    @classmethod
    def from_model_dir(cls, model_dir: str, config: DiarizationConfig = DiarizationConfig(),
                       device: str = "cpu", trust_checkpoint: bool = False, backend: str = "auto") -> "Diarizer":
        """A diarizer with the extractor of a model dir (any backend it has, see
        :meth:`wespk.inference.extractor.EmbeddingExtractor.from_model_dir`)."""
        from wespk.inference.extractor import EmbeddingExtractor
        extractor = EmbeddingExtractor.from_model_dir(model_dir, backend=backend, device=device,
                                                      trust_checkpoint=trust_checkpoint)
        return cls(extractor, config)

    def speech_regions(self, samples: np.ndarray) -> List[Tuple[float, float]]:
        """Speech regions (seconds) of audio at the model's rate."""
        rate = float(self.sample_rate)
        raw = [(s / rate, e / rate) for s, e in self.vad.speech_segments(samples, self.sample_rate)]
        return tidy_regions(raw, self.config.min_silence, self.config.min_speech)

    def embed_subsegments(self, samples: np.ndarray, subsegments: Sequence[SubSegment],
                          progress_every: float = 10.0, slice_size: int = 512) -> Tuple[np.ndarray, List[int]]:
        """Embeddings ``[M, D]`` of the sub-segments that could be embedded, and their indices.

        The engine's :meth:`~wespk.inference.extractor.EmbeddingExtractor.embed_segments` is given
        ``slice_size`` sub-segments at a time, so the features held at once stay bounded.
        """
        vectors, kept = [], []
        t0 = t_last = time.time()
        for begin in range(0, len(subsegments), slice_size):
            part = subsegments[begin: begin + slice_size]
            emb, part_kept = self.extractor.embed_segments(samples, self.sample_rate,
                                                           [(s.start, s.end) for s in part],
                                                           batch_size=self.config.batch_size)
            if part_kept:
                vectors.append(emb)
                kept.extend(begin + i for i in part_kept)
            now, done = time.time(), min(begin + slice_size, len(subsegments))
            if now - t_last >= progress_every and done < len(subsegments):
                speed = done / (now - t0)
                logger.info("embedded %d/%d sub-segments, %.1f/s, ETA %.0f s", done, len(subsegments), speed,
                            (len(subsegments) - done) / max(speed, 1e-9))
                t_last = now
        if not vectors:
            return np.zeros((0, 0), dtype=np.float32), []
        return np.concatenate(vectors), kept

    def diarize(self, samples: np.ndarray, sample_rate: int, recording: str,
                num_speakers: Optional[int] = None) -> RecordingDiarization:
        """Diarize a mono waveform; ``num_speakers`` (when known) overrides the config's."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"{recording}: expected a mono waveform, got shape {samples.shape}")
        if sample_rate != self.sample_rate:
            samples = np.asarray(resample(samples, int(sample_rate), self.sample_rate), dtype=np.float32)
        duration = len(samples) / float(self.sample_rate)
        t0 = time.time()
        regions = self.speech_regions(samples)
        if duration > 600:     # a long recording: say where the time goes
            logger.info("%s: %s VAD found %d speech regions (%.0f s of %.0f s) in %.1f s", recording,
                        self.vad_method, len(regions), sum(e - s for s, e in regions), duration, time.time() - t0)
        if not regions:
            return RecordingDiarization(recording, duration, [], [], 0, "no speech found")
        subsegments = subsegment_regions(regions, self.config.window, self.config.shift)
        embeddings, kept = self.embed_subsegments(samples, subsegments)
        if not kept:
            return RecordingDiarization(recording, duration, [], regions, len(subsegments),
                                        "speech too short to embed")
        subsegments = [subsegments[i] for i in kept]
        clustering = self.config.clustering
        if num_speakers is not None:
            clustering = dataclasses.replace(clustering, num_speakers=num_speakers)
        labels = cluster_embeddings(embeddings, clustering)
        turns = labels_to_turns(subsegments, labels, recording)
        note = None
        if len(kept) == 1:
            note = "one sub-segment of speech: one speaker"
        return RecordingDiarization(recording, duration, turns, regions, len(subsegments), note)

    def diarize_file(self, source, recording: str, num_speakers: Optional[int] = None) -> RecordingDiarization:
        """Diarize an audio file (path or :class:`~wespk.io.audio.AudioRef`); AudioError when unreadable."""
        samples, rate = load_audio(source)
        return self.diarize(samples, rate, recording, num_speakers)


def read_recordings(data: str) -> List[Tuple[str, object]]:
    """``[(recording, AudioRef)]`` of a data dir's ``wav.scp`` (or of a wav.scp file), in file order.

    Diarization works on whole recordings: a ``segments`` file is not used.
    """
    import os

    from wespk.data.data_dir import read_kaldi_utterances
    from wespk.io.files import DataFileError
    path = os.path.join(data, "wav.scp") if os.path.isdir(data) else data
    if not os.path.isfile(path):
        raise DataFileError(path, None, "not found (give a data dir with wav.scp, or a wav.scp)")
    base = os.path.dirname(os.path.abspath(path))
    items = [(rec.key, rec.audio) for rec in read_kaldi_utterances(path, base_dir=base)]
    if not items:
        raise DataFileError(path, None, "no recordings")
    return items


def read_reco2num_spk(path: str) -> dict:
    """``{recording: number of speakers}`` of a Kaldi ``reco2num_spk`` file."""
    from wespk.io.files import DataFileError, iter_kaldi_lines
    counts = {}
    for line_no, (key, value) in iter_kaldi_lines(path, min_fields=2, max_fields=2):
        try:
            counts[key] = int(value)
        except ValueError:
            raise DataFileError(path, line_no, f"number of speakers {value!r} is not an integer") from None
        if counts[key] < 1:
            raise DataFileError(path, line_no, f"number of speakers must be at least 1, got {counts[key]}")
    return counts
