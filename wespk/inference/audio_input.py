"""Audio given in memory or by path -> a mono float32 waveform and its rate (the API's inputs).

:func:`waveform_from_array` coerces numpy arrays and torch tensors (integer
PCM scaled by its type's range, channels down-mixed); :func:`load_waveform`
takes a path, an array or a tensor. torch is never imported here: a tensor
is recognised by its module.
"""

import os
from typing import Any, Optional, Tuple

import numpy as np

from wespk.io.audio import AudioError, load_audio

#: More channels than this: the channel axis of a 2-D array cannot be told.
MAX_CHANNELS = 32


def _integer_scale(dtype: np.dtype) -> Tuple[float, float]:
    """``(offset, scale)`` mapping integer PCM of ``dtype`` to [-1, 1]."""
    info = np.iinfo(dtype)
    if info.min == 0:  # unsigned, e.g. 8-bit WAV
        middle = (info.max + 1) / 2.0
        return middle, middle
    return 0.0, float(-info.min)


def as_numpy(data: Any) -> np.ndarray:
    """A numpy view of an array or a (CPU or GPU) torch tensor."""
    if type(data).__module__.startswith("torch"):
        data = data.detach().cpu().numpy()
    return np.asarray(data)


def waveform_from_array(audio: Any, source: str = "array") -> Tuple[np.ndarray, int]:
    """A mono float32 waveform from a 1-D or 2-D array / tensor, and its channel count.

    Integer arrays are PCM scaled by their type's range. For 2-D input the
    shorter axis is the channel axis (``[channels, samples]`` or
    ``[samples, channels]``); channels are averaged.
    """
    data = as_numpy(audio)
    if data.dtype.kind in "iu":
        offset, scale = _integer_scale(data.dtype)
        data = (data.astype(np.float64) - offset) / scale
    elif data.dtype.kind != "f":
        raise ValueError(f"{source}: audio must be a numeric array, got dtype {data.dtype}")
    channels = 1
    if data.ndim == 2:
        channel_axis = 0 if data.shape[0] <= data.shape[1] else 1
        channels = data.shape[channel_axis]
        if channels > MAX_CHANNELS:
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


def load_waveform(audio: Any, sample_rate: Optional[int], default_rate: int) -> Tuple[np.ndarray, int, int, str]:
    """``(mono float32 samples, sample rate, channels, description)`` of a path, array or tensor.

    A path's rate is read from the file (passing ``sample_rate`` with a path is
    an error); an array's is ``sample_rate``, else ``default_rate``.
    """
    if isinstance(audio, (str, os.PathLike)):
        source = os.fspath(audio)
        if sample_rate is not None:
            raise ValueError(f"{source}: sample_rate is read from the file; do not pass it for a path")
        data, rate = load_audio(source, mono=False)
        channels = data.shape[1]
        samples = data.mean(axis=1) if channels > 1 else data[:, 0]
        return np.ascontiguousarray(samples, dtype=np.float32), rate, channels, source
    source = f"{type(audio).__name__} input"
    samples, channels = waveform_from_array(audio, source)
    rate = int(sample_rate) if sample_rate is not None else int(default_rate)
    if rate <= 0:
        raise ValueError(f"{source}: sample_rate must be positive, got {sample_rate}")
    return samples, rate, channels, source
