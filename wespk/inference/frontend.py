"""The input front end of a model dir: waveform -> the model's input.

What a model takes is decided in one place, :func:`input_kind`:

* ``fbank``: feature matrices ``[T, F]`` from :class:`FeatureFrontend`;
* ``waveform``: the (resampled) samples ``[S]`` themselves, from
  :class:`WaveformFrontend`, for models with their own frontend (the SSL
  models of :mod:`wespk.models.ssl_model`: WavLM, HuBERT, wav2vec 2.0).

:func:`build_frontend` returns the front end of a config; the extraction
engine, the API and the export's parity check all take it from there.

:class:`FeatureFrontend` is chosen by the config's ``dataset_args.feature_type``:

* ``fbank`` (the default, WeSpeaker's models): Kaldi fbank with the
  ``dataset_args.fbank_args`` options and no dither, then mean normalisation
  (``dataset_args.cmn``, default on) - the same features as
  :meth:`wespk.inference.extractor.EmbeddingExtractor.features`;
* ``resemblyzer_mel`` (the converted resemblyzer GE2E model): volume
  normalisation, silence trimming and a 40-band linear mel spectrogram from
  :func:`wespk.features.resemblyzer_mel.frontend_features`.

Audio at another sample rate is resampled to ``dataset_args.resample_rate``
first. Audio too short for :data:`MIN_FRAMES` frames is an
:class:`~wespk.io.audio.AudioError`.
"""

import logging
from typing import Any, Dict, Mapping

import numpy as np
import torch

from wespk.io.audio import AudioError, resample

logger = logging.getLogger(__name__)

#: Feature types this module knows.
FEATURE_TYPES = ("fbank", "resemblyzer_mel")
#: What a model's input can be (see :func:`input_kind`).
INPUT_KINDS = ("fbank", "waveform")
#: ``model_args.frontend`` names of self-supervised frontends (the model then takes waveforms).
WAVEFORM_FRONTENDS = ("wavlm", "hubert", "wav2vec2")
#: Fewest feature frames an utterance must give (the extractor's rule, about 0.115 s).
MIN_FRAMES = 10


class FrontendConfigError(ValueError):
    """A ``dataset_args`` section that selects no known front end."""


def input_kind(config: Mapping[str, Any]) -> str:
    """``fbank`` or ``waveform``: what the model of ``config`` takes as input.

    ``waveform`` when ``dataset_args.frontend`` is ``waveform`` (what training
    fed the model) or ``model_args.frontend`` names a self-supervised frontend
    (:data:`WAVEFORM_FRONTENDS`); otherwise ``fbank``.
    """
    dataset_args = config.get("dataset_args") or {}
    model_args = config.get("model_args") or {}
    if dataset_args.get("frontend") == "waveform" or model_args.get("frontend") in WAVEFORM_FRONTENDS:
        return "waveform"
    return "fbank"


class _AudioInput:
    """What both front ends share: the shortest audio they embed and the mono check.

    Subclasses set ``frame_length`` and ``frame_shift`` (ms)."""

    frame_length: float
    frame_shift: float

    @property
    def min_seconds(self) -> float:
        """Shortest audio that gives :data:`MIN_FRAMES` frames."""
        return (self.frame_length + (MIN_FRAMES - 1) * self.frame_shift) / 1000.0

    def check_duration(self, num_samples: int, sample_rate: int, source: str = "audio") -> None:
        """Raise :class:`AudioError` when the audio is too short to embed."""
        seconds = num_samples / float(sample_rate)
        if seconds < self.min_seconds - 1e-9:
            raise AudioError(f"{source}: too short ({seconds:.3f} s; at least {self.min_seconds:.3f} s "
                             f"of audio is needed)")

    def checked_mono(self, samples: np.ndarray, sample_rate: int, source: str) -> np.ndarray:
        """``samples`` as float32, refused unless mono and long enough."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"{source}: the front end expects a mono waveform, got shape {samples.shape}")
        self.check_duration(len(samples), sample_rate, source)
        return samples


class WaveformFrontend(_AudioInput):
    """Waveform -> the resampled waveform ``[S]`` (float32 tensor), for models with their own frontend.

    The model normalises the waveform itself when its config says so; audio
    shorter than :attr:`min_seconds` (the span of :data:`MIN_FRAMES` 10 ms
    frames) is an :class:`~wespk.io.audio.AudioError`.
    """

    feature_type = "waveform"
    frame_length = 25.0
    frame_shift = 10.0

    def __init__(self, config: Mapping[str, Any]):
        self.dataset_args: Dict[str, Any] = dict(config.get("dataset_args") or {})
        self.sample_rate = int(self.dataset_args.get("resample_rate", 16000))

    def __call__(self, samples: np.ndarray, sample_rate: int, source: str = "audio") -> torch.Tensor:
        samples = self.checked_mono(samples, sample_rate, source)
        waveform = resample(samples, int(sample_rate), self.sample_rate)
        return torch.as_tensor(np.ascontiguousarray(waveform), dtype=torch.float32)


def build_frontend(config: Mapping[str, Any]):
    """The front end of a config: :class:`WaveformFrontend` or :class:`FeatureFrontend` (see :func:`input_kind`)."""
    return WaveformFrontend(config) if input_kind(config) == "waveform" else FeatureFrontend(config)


class FeatureFrontend(_AudioInput):
    """Waveform -> model input features, as the model dir's config prescribes.

    ``frontend(samples, sample_rate)`` takes a 1-D float waveform in [-1, 1]
    at any rate and returns a float32 tensor ``[T, F]``.
    """

    def __init__(self, config: Mapping[str, Any]):
        dataset_args: Dict[str, Any] = dict(config.get("dataset_args") or {})
        self.dataset_args = dataset_args
        frontend = dataset_args.get("frontend")
        if frontend not in (None, "fbank"):
            raise FrontendConfigError(f"dataset_args.frontend {frontend!r} gives no features "
                                      f"(feature types: {', '.join(FEATURE_TYPES)}); build_frontend gives "
                                      f"waveform models their front end")
        self.feature_type = str(dataset_args.get("feature_type", "fbank"))
        if self.feature_type not in FEATURE_TYPES:
            raise FrontendConfigError(f"unknown dataset_args.feature_type {self.feature_type!r}; "
                                      f"known: {', '.join(FEATURE_TYPES)}")
        self.sample_rate = int(dataset_args.get("resample_rate", 16000))
        fbank_args = dict(dataset_args.get("fbank_args") or {})
        if self.feature_type == "fbank":
            self.num_mel_bins = int(fbank_args.get("num_mel_bins", 80))
            self.frame_length = float(fbank_args.get("frame_length", 25))
            self.frame_shift = float(fbank_args.get("frame_shift", 10))
            self.cmn = bool(dataset_args.get("cmn", True))
        else:
            self.num_mel_bins = int(dataset_args.get("num_mel_bins", 40))
            self.frame_length = float(dataset_args.get("frame_length", 25))
            self.frame_shift = float(dataset_args.get("frame_shift", 10))
            self.cmn = False

    def __call__(self, samples: np.ndarray, sample_rate: int, source: str = "audio") -> torch.Tensor:
        samples = self.checked_mono(samples, sample_rate, source)
        if self.feature_type == "resemblyzer_mel":
            from wespk.data.dataset_args import DATASET_ARGS_DEFAULTS
            from wespk.features.resemblyzer_mel import FRONTEND_KEYS, frontend_features
            # a fine-tuned model's config also holds the training pipeline's keys: not the front end's
            args = {k: v for k, v in self.dataset_args.items()
                    if v is not None and (k in FRONTEND_KEYS or k not in DATASET_ARGS_DEFAULTS)}
            feats = frontend_features(samples, int(sample_rate), args)
        else:
            from wespk.features.fbank import apply_cmn, compute_fbank
            waveform = resample(samples, int(sample_rate), self.sample_rate)
            feats = compute_fbank(waveform, self.sample_rate, num_mel_bins=self.num_mel_bins,
                                  frame_length=self.frame_length, frame_shift=self.frame_shift, dither=0.0)
            if self.cmn:
                feats = apply_cmn(feats)
        feats = torch.as_tensor(feats, dtype=torch.float32)
        if feats.shape[0] < MIN_FRAMES:
            raise AudioError(f"{source}: too short ({feats.shape[0]} feature frames < {MIN_FRAMES})")
        return feats
