"""Voice activity detection: drop non-speech from a waveform.

Two methods:

* ``energy`` (default): Kaldi's ``compute-vad`` rule. A frame (25 ms, 10 ms
  shift) is voiced when, among the frames within ``frames_context`` of it, at
  least ``proportion_threshold`` have a log energy above
  ``energy_threshold + energy_mean_scale * mean log energy`` (energies of the
  16-bit-scaled, DC-removed frame). Defaults are those of Kaldi's VoxCeleb
  and SRE recipes (``conf/vad.conf``).
* ``silero``: the silero-vad model, when the ``silero-vad`` package (which ships
  its model) is installed. Asking for it when it is not installed is an error;
  nothing falls back silently.
"""

import importlib.util
import logging
from typing import List, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

VAD_METHODS = ("energy", "silero")

ENERGY_VAD_DEFAULTS = {
    "energy_threshold": 5.5,
    "energy_mean_scale": 0.5,
    "frames_context": 2,
    "proportion_threshold": 0.12,
    "frame_length": 25.0,
    "frame_shift": 10.0,
}

SILERO_VAD_DEFAULTS = {
    "threshold": 0.5,
    "min_speech_duration_ms": 250,
    "min_silence_duration_ms": 100,
    "speech_pad_ms": 30,
}


def silero_vad_available() -> bool:
    """True when the ``silero_vad`` package can be imported."""
    return importlib.util.find_spec("silero_vad") is not None


def energy_speech_segments(waveform: np.ndarray, sample_rate: int,
                           energy_threshold: float = 5.5, energy_mean_scale: float = 0.5,
                           frames_context: int = 2, proportion_threshold: float = 0.12,
                           frame_length: float = 25.0,
                           frame_shift: float = 10.0) -> List[Tuple[int, int]]:
    """Speech regions ``[(start_sample, end_sample), ...]`` by frame energy."""
    window = int(sample_rate * frame_length / 1000)
    shift = int(sample_rate * frame_shift / 1000)
    n = len(waveform)
    if n < window:
        return []
    count = 1 + (n - window) // shift
    scaled = np.asarray(waveform, dtype=np.float64) * 32768.0
    frames = np.lib.stride_tricks.as_strided(
        scaled, shape=(count, window), strides=(scaled.strides[0] * shift, scaled.strides[0]))
    centred = frames - frames.mean(axis=1, keepdims=True)
    log_energy = np.log(np.maximum((centred ** 2).sum(axis=1), 1e-10))
    threshold = energy_threshold + energy_mean_scale * log_energy.mean()
    above = (log_energy > threshold).astype(np.float64)
    # Votes over the +-frames_context neighbourhood (clipped at the edges).
    cumulative = np.concatenate([[0.0], np.cumsum(above)])
    idx = np.arange(count)
    lo = np.maximum(idx - frames_context, 0)
    hi = np.minimum(idx + frames_context + 1, count)
    voiced = (cumulative[hi] - cumulative[lo]) >= proportion_threshold * (hi - lo)
    segments: List[Tuple[int, int]] = []
    for t in np.flatnonzero(voiced):
        start, end = int(t) * shift, int(t) * shift + window
        if segments and start <= segments[-1][1]:
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((start, end))
    return segments


class VoiceActivityDetector:
    """Keeps the speech of a waveform; ``method`` is ``energy`` or ``silero``.

    ``options`` override the method's defaults (:data:`ENERGY_VAD_DEFAULTS`,
    :data:`SILERO_VAD_DEFAULTS`); unknown option names are an error. The
    silero model is loaded on first use, once per process.
    """

    def __init__(self, method: str = "energy", options: Optional[dict] = None):
        if method not in VAD_METHODS:
            raise ValueError(f"unknown VAD method {method!r}; choose from {', '.join(VAD_METHODS)}")
        defaults = ENERGY_VAD_DEFAULTS if method == "energy" else SILERO_VAD_DEFAULTS
        options = dict(options or {})
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(f"unknown {method} VAD options {unknown}; known: {sorted(defaults)}")
        if method == "silero" and not silero_vad_available():
            raise ValueError("vad: silero needs the silero-vad package (pip install silero-vad); "
                             "use vad: energy otherwise")
        self.method = method
        self.options = {**defaults, **options}
        self._silero_model = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_silero_model"] = None
        return state

    def _silero_segments(self, waveform: np.ndarray, sample_rate: int) -> List[Tuple[int, int]]:
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad
        if sample_rate not in (8000, 16000):
            raise ValueError(f"silero VAD needs 8 or 16 kHz audio, got {sample_rate} Hz "
                             "(set resample_rate)")
        if self._silero_model is None:
            self._silero_model = load_silero_vad()
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)),
                                       self._silero_model, sampling_rate=sample_rate, **self.options)
        return [(int(s["start"]), int(s["end"])) for s in stamps]

    def speech_segments(self, waveform: np.ndarray, sample_rate: int) -> List[Tuple[int, int]]:
        """Speech regions of ``waveform`` as sample ranges."""
        if self.method == "silero":
            return self._silero_segments(waveform, sample_rate)
        return energy_speech_segments(waveform, sample_rate, **self.options)

    def __call__(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """The speech samples of ``waveform`` joined together.

        When no speech is found the waveform is returned unchanged (an empty
        result would only turn a quiet utterance into a failed one).
        """
        segments = self.speech_segments(waveform, sample_rate)
        if not segments:
            return waveform
        if len(segments) == 1:
            start, end = segments[0]
            return waveform[start:end]
        return np.concatenate([waveform[s:e] for s, e in segments])
