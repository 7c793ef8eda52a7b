"""Resemblyzer's front end, reimplemented in numpy: volume normalisation,
silence trimming and a 40-band (linear-power) mel spectrogram.

The pretrained GE2E speaker encoder shipped by the ``resemblyzer`` package
(converted into a wespk model dir by :mod:`wespk.pretrained.resemblyzer`)
expects exactly the features of resemblyzer's ``audio.wav_to_mel_spectrogram``.
That function calls ``librosa.feature.melspectrogram`` with these settings,
all reproduced here without librosa:

* 16 kHz audio, ``n_fft`` = window = 400 samples (25 ms), hop 160 (10 ms);
* a periodic Hann window; frames centred on ``t * hop`` with the signal
  zero-padded by ``n_fft // 2`` on both sides (librosa >= 0.10's default
  ``pad_mode='constant'``), hence ``1 + len // hop`` frames;
* the power spectrum ``|X|**2`` (not the magnitude, not a log);
* 40 triangular mel filters on the Slaney mel scale (linear below 1 kHz,
  logarithmic above), 0 Hz to 8 kHz, each scaled by ``2 / bandwidth``
  (librosa's ``htk=False, norm='slaney'``).

The result is *not* log-compressed: the encoder was trained on linear mel
power, and the features are fed to it as they are.

Before the spectrogram resemblyzer's ``preprocess_wav`` raises the level of
quiet audio to -30 dBFS (never lowers it) and shortens long silences with
webrtcvad. wespk does the volume step identically; the silence step is its
own energy-based trimming (:func:`trim_long_silences`), built on the same
30 ms windows, smoothing and dilation as resemblyzer's but with a relative
energy threshold instead of webrtcvad's speech detector. See
``docs/pretrained.md`` for how close the two get.
"""

import logging
from typing import Any, Mapping, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Sample rate the pretrained encoder was trained at.
RESEMBLYZER_SAMPLE_RATE = 16000
#: Mel spectrogram settings of resemblyzer (``hparams.py``).
NUM_MEL_BINS = 40
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
#: Frames past the last frame centre whose 25 ms window still overlaps the
#: signal (400-sample window, 160-sample hop): appended by
#: :func:`frontend_features`, skipped for window placement by the model.
TRAILING_FRAMES = 2
#: Volume normalisation target of resemblyzer.
TARGET_DBFS = -30.0

#: Silence trimming settings (window, smoothing and dilation as resemblyzer's
#: VAD parameters; the energy threshold is wespk's own).
TRIM_WINDOW_MS = 30
TRIM_SMOOTHING_WINDOWS = 8
TRIM_MAX_SILENCE_WINDOWS = 6
#: A window is loud above ``floor + TRIM_THRESHOLD * (peak - floor)`` (dB), with
#: floor and peak the 5th and 95th percentiles of the window energies.
TRIM_THRESHOLD = 0.25
TRIM_FLOOR_PERCENTILE = 5
TRIM_PEAK_PERCENTILE = 95
#: Below this spread between floor and peak there is no silence to trim.
TRIM_MIN_RANGE_DB = 10.0

#: ``dataset_args`` keys understood by :func:`frontend_features`.
FRONTEND_KEYS = frozenset({
    "feature_type", "resample_rate", "num_mel_bins", "frame_length", "frame_shift",
    "target_dbfs", "trim_silence", "trim_threshold",
})


# ----------------------------------------------------------------- mel filterbank

_SLANEY_HZ_PER_MEL = 200.0 / 3          # linear part: 66.67 Hz per mel
_SLANEY_LOG_START_HZ = 1000.0           # the scale turns logarithmic here
_SLANEY_LOG_START_MEL = _SLANEY_LOG_START_HZ / _SLANEY_HZ_PER_MEL   # = 15 mel
_SLANEY_LOG_STEP = np.log(6.4) / 27.0   # natural-log step per mel above 1 kHz


def hz_to_slaney_mel(freq_hz) -> np.ndarray:
    """Frequency (Hz) to the Slaney (Auditory Toolbox) mel scale."""
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    linear = freq_hz / _SLANEY_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        logarithmic = _SLANEY_LOG_START_MEL + np.log(np.maximum(freq_hz, 1e-300) / _SLANEY_LOG_START_HZ) \
            / _SLANEY_LOG_STEP
    return np.where(freq_hz >= _SLANEY_LOG_START_HZ, logarithmic, linear)


def slaney_mel_to_hz(mel) -> np.ndarray:
    """Inverse of :func:`hz_to_slaney_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_LOG_START_HZ * np.exp(_SLANEY_LOG_STEP * (mel - _SLANEY_LOG_START_MEL))
    return np.where(mel >= _SLANEY_LOG_START_MEL, logarithmic, linear)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, num_mel_bins: int,
                          low_freq: float = 0.0, high_freq: Optional[float] = None) -> np.ndarray:
    """Triangular mel filters ``[num_mel_bins, n_fft // 2 + 1]`` (float32).

    Band edges are ``num_mel_bins + 2`` points equally spaced on the Slaney
    mel scale between ``low_freq`` and ``high_freq`` (default Nyquist); each
    triangle rises from edge ``i`` to ``i + 1`` and falls to ``i + 2``, and is
    multiplied by ``2 / (f[i + 2] - f[i])`` so every band has the same area.
    """
    if high_freq is None:
        high_freq = sample_rate / 2.0
    if not 0 <= low_freq < high_freq <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {sample_rate / 2}, "
                         f"got {low_freq} and {high_freq}")
    bin_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_mel = np.linspace(hz_to_slaney_mel(low_freq), hz_to_slaney_mel(high_freq), num_mel_bins + 2)
    edges_hz = slaney_mel_to_hz(edges_mel)
    widths = np.diff(edges_hz)
    offsets = edges_hz[:, None] - bin_freqs[None, :]          # [num_mel_bins + 2, bins]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


# ----------------------------------------------------------------- spectrogram

def periodic_hann_window(length: int) -> np.ndarray:
    """``0.5 - 0.5 cos(2 pi n / length)``, n = 0..length-1 (the DFT-even Hann window)."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def centered_power_spectrogram(waveform: np.ndarray, n_fft: int, hop_length: int,
                               trailing_frames: int = 0) -> np.ndarray:
    """Power spectrum ``[1 + len // hop + trailing_frames, n_fft // 2 + 1]`` of Hann-windowed frames.

    Frame ``t`` covers samples ``[t * hop - n_fft // 2, t * hop + n_fft // 2)``;
    samples outside the waveform count as zeros. The usual centred STFT has
    ``1 + len // hop`` frames; ``trailing_frames`` more continue past the
    end over the zero-extended signal.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    padded = np.pad(waveform, (n_fft // 2, n_fft // 2 + trailing_frames * hop_length))
    num_frames = 1 + len(waveform) // hop_length + trailing_frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length][:num_frames]
    spectrum = np.fft.rfft(frames * periodic_hann_window(n_fft), axis=1)
    return spectrum.real ** 2 + spectrum.imag ** 2


def resemblyzer_mel(waveform: np.ndarray, sample_rate: int = RESEMBLYZER_SAMPLE_RATE,
                    num_mel_bins: int = NUM_MEL_BINS, frame_length_ms: float = FRAME_LENGTH_MS,
                    frame_shift_ms: float = FRAME_SHIFT_MS, trailing_frames: int = 0) -> np.ndarray:
    """Linear-power mel spectrogram ``[1 + len // hop + trailing_frames, num_mel_bins]`` (float32).

    With the defaults and 16 kHz input this equals resemblyzer's
    ``audio.wav_to_mel_spectrogram`` (see the module docstring for the
    settings). ``waveform`` is a 1-D float array in [-1, 1].

    ``trailing_frames`` appends frames of the zero-extended signal past the
    last one (see :func:`centered_power_spectrogram`): the frames
    resemblyzer's ``embed_utterance`` gets when it zero-pads the waveform
    for a last partial window. :func:`frontend_features` appends
    :data:`TRAILING_FRAMES` of them, and the converted model
    (``GE2E_LSTM(trailing_frames=2)``) knows not to count them as
    utterance frames.
    """
    waveform = np.asarray(waveform)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
    if waveform.size == 0:
        raise ValueError("empty waveform")
    n_fft = int(sample_rate * frame_length_ms / 1000)
    hop_length = int(sample_rate * frame_shift_ms / 1000)
    if trailing_frames < 0:
        raise ValueError(f"trailing_frames must be >= 0, got {trailing_frames}")
    power = centered_power_spectrogram(waveform, n_fft, hop_length, trailing_frames)
    filterbank = slaney_mel_filterbank(sample_rate, n_fft, num_mel_bins).astype(np.float64)
    return (power @ filterbank.T).astype(np.float32)


# ----------------------------------------------------------------- preprocessing

def waveform_dbfs(waveform: np.ndarray) -> float:
    """RMS level in dB relative to full scale (1.0); ``-inf`` for silence."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(waveform, dtype=np.float64)))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def normalize_volume(waveform: np.ndarray, target_dbfs: float = TARGET_DBFS,
                     increase_only: bool = True) -> np.ndarray:
    """Scale ``waveform`` so that its RMS level is ``target_dbfs``.

    With ``increase_only`` (resemblyzer's setting) louder audio is returned
    unchanged. All-zero audio is returned unchanged (resemblyzer would
    produce NaNs).

    The level is ``20 log10(rms)`` of the float samples, which is what
    resemblyzer computes after scaling to and back from 16-bit full scale.
    """
    level = waveform_dbfs(waveform)
    if not np.isfinite(level):
        return waveform
    change_db = target_dbfs - level
    if change_db < 0 and increase_only:
        return waveform
    return (np.asarray(waveform) * 10.0 ** (change_db / 20.0)).astype(np.float32, copy=False)


def _centred_moving_count(flags: np.ndarray, width: int) -> np.ndarray:
    """Number of set flags in a window of ``width`` around each position.

    The window of position ``i`` is ``[i - (width - 1) // 2, i + width // 2]``,
    positions outside the array counting as unset (resemblyzer's alignment).
    """
    padded = np.concatenate([np.zeros((width - 1) // 2), flags.astype(np.float64), np.zeros(width // 2)])
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    return cumulative[width:] - cumulative[:-width]


def speech_window_mask(waveform: np.ndarray, sample_rate: int = RESEMBLYZER_SAMPLE_RATE,
                       window_ms: int = TRIM_WINDOW_MS, threshold: float = TRIM_THRESHOLD,
                       min_range_db: float = TRIM_MIN_RANGE_DB,
                       smoothing_windows: int = TRIM_SMOOTHING_WINDOWS,
                       max_silence_windows: int = TRIM_MAX_SILENCE_WINDOWS) -> np.ndarray:
    """Per-window keep/drop decisions of :func:`trim_long_silences` (bool array).

    1. Cut the waveform into non-overlapping ``window_ms`` windows (a
       trailing partial window is not scored) and take each one's energy in
       dB.
    2. Floor and peak are the 5th and 95th percentiles of those energies. A
       window is *loud* when its energy is above
       ``floor + threshold * (peak - floor)``. When peak and floor are less
       than ``min_range_db`` apart there is no silence to tell apart and
       every window is loud.
    3. Smoothing: a window is *speech* when more than half of the
       ``smoothing_windows`` windows around it are loud.
    4. Dilation: every window within ``max_silence_windows // 2`` of a speech
       window is kept, so pauses up to ``max_silence_windows`` windows long
       survive and speech edges keep a margin.

    Steps 1, 3 and 4 follow resemblyzer's ``trim_long_silences`` (30 ms
    windows, a moving average over 8 windows rounded to a decision, dilation
    by 7 windows); step 2 replaces its webrtcvad speech detector. On the
    bundled corpora the two masks agree on about 95% of the windows (see
    ``docs/pretrained.md``).
    """
    window = window_ms * sample_rate // 1000
    num_windows = len(waveform) // window
    if num_windows == 0:
        return np.zeros(0, dtype=bool)
    frames = np.asarray(waveform[: num_windows * window], dtype=np.float64).reshape(num_windows, window)
    energy_db = 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
    floor, peak = np.percentile(energy_db, [TRIM_FLOOR_PERCENTILE, TRIM_PEAK_PERCENTILE])
    if peak - floor < min_range_db:
        return np.ones(num_windows, dtype=bool)
    loud = energy_db > floor + threshold * (peak - floor)
    speech = _centred_moving_count(loud, smoothing_windows) > smoothing_windows / 2
    reach = max_silence_windows // 2
    if reach > 0 and speech.any():
        kernel = np.ones(2 * reach + 1)
        speech = np.convolve(speech.astype(np.float64), kernel, mode="same") > 0.5
    return speech


def trim_long_silences(waveform: np.ndarray, sample_rate: int = RESEMBLYZER_SAMPLE_RATE,
                       threshold: float = TRIM_THRESHOLD) -> np.ndarray:
    """Drop silences longer than about 0.2 s (energy based; see :func:`speech_window_mask`).

    Like resemblyzer's ``trim_long_silences`` the result is made of whole
    30 ms windows (the last incomplete window is dropped) and keeps pauses
    of up to 6 windows between speech. Unlike it, speech is told from
    silence by energy relative to the utterance's own quiet and loud parts,
    not by webrtcvad. When no window qualifies as speech (audio shorter than
    the smoothing span, for instance) the waveform is returned whole rather
    than emptied.
    """
    mask = speech_window_mask(waveform, sample_rate, threshold=threshold)
    if not mask.any():
        logger.debug("trim_long_silences: no speech window found in %d samples; keeping all", len(waveform))
        return waveform
    window = TRIM_WINDOW_MS * sample_rate // 1000
    keep = np.repeat(mask, window)
    return waveform[: len(keep)][keep]


def preprocess_wav(waveform: np.ndarray, sample_rate: int,
                   target_dbfs: float = TARGET_DBFS, trim_silence: bool = True,
                   trim_threshold: float = TRIM_THRESHOLD) -> np.ndarray:
    """Resample to 16 kHz, raise the level to ``target_dbfs``, trim long silences.

    wespk's counterpart of resemblyzer's ``preprocess_wav``; returns float32
    samples at :data:`RESEMBLYZER_SAMPLE_RATE`.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D (mono) waveform, got shape {waveform.shape}")
    if waveform.size == 0:
        raise ValueError("empty waveform")
    if sample_rate != RESEMBLYZER_SAMPLE_RATE:
        from wespk.io.audio import resample
        waveform = resample(waveform, sample_rate, RESEMBLYZER_SAMPLE_RATE)
    waveform = normalize_volume(waveform, target_dbfs, increase_only=True)
    if trim_silence:
        waveform = trim_long_silences(waveform, RESEMBLYZER_SAMPLE_RATE, trim_threshold)
    return np.asarray(waveform, dtype=np.float32)


def frontend_features(samples: np.ndarray, sample_rate: int,
                      dataset_args: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
    """Features ``[T, 40]`` for a GE2E model dir whose ``feature_type`` is ``resemblyzer_mel``.

    Resamples to 16 kHz, normalises the volume, trims long silences and
    computes :func:`resemblyzer_mel` with :data:`TRAILING_FRAMES` trailing
    frames (``T = 1 + samples // 160 + 2``), which the converted model's
    ``model_args.trailing_frames`` accounts for. ``dataset_args`` (the model dir's
    config section) may set ``target_dbfs``, ``trim_silence`` and
    ``trim_threshold``; ``resample_rate``, ``num_mel_bins``,
    ``frame_length`` and ``frame_shift`` must keep the values the encoder was
    trained with, and unknown keys are errors.
    """
    args = dict(dataset_args or {})
    unknown = sorted(set(args) - FRONTEND_KEYS)
    if unknown:
        raise ValueError(f"unknown resemblyzer_mel dataset_args key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(FRONTEND_KEYS))}")
    fixed = {"resample_rate": RESEMBLYZER_SAMPLE_RATE, "num_mel_bins": NUM_MEL_BINS,
             "frame_length": FRAME_LENGTH_MS, "frame_shift": FRAME_SHIFT_MS}
    for key, expected in fixed.items():
        if key in args and float(args[key]) != float(expected):
            raise ValueError(f"resemblyzer_mel needs dataset_args.{key} = {expected:g}, got {args[key]}")
    waveform = preprocess_wav(samples, sample_rate,
                              target_dbfs=float(args.get("target_dbfs", TARGET_DBFS)),
                              trim_silence=bool(args.get("trim_silence", True)),
                              trim_threshold=float(args.get("trim_threshold", TRIM_THRESHOLD)))
    return torch.from_numpy(resemblyzer_mel(waveform, trailing_frames=TRAILING_FRAMES))
