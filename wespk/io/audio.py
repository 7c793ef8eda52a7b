"""Audio reading: plain files, Kaldi pipe commands and segments."""

import io
import logging
import os
import subprocess
from typing import Optional, Tuple

import numpy as np
import soundfile

logger = logging.getLogger(__name__)


class AudioError(RuntimeError):
    """Audio that cannot be used; the message names the source and the problem."""


def _read_pipe(command: str) -> bytes:
    proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise AudioError(f"command {command!r} failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def load_audio(source: str, start: Optional[float] = None, end: Optional[float] = None,
               mono: bool = True) -> Tuple[np.ndarray, int]:
    """Read audio as float32 in [-1, 1].

    ``source`` is a file path or a Kaldi ``wav.scp`` command ending in ``|``.
    ``start``/``end`` (seconds) read only that span; for plain files only the
    needed frames are decoded. Returns ``(samples, sample_rate)`` with samples
    shaped ``[n]`` when ``mono`` (channels averaged) else ``[n, channels]``.
    Raises :class:`AudioError` naming ``source`` for missing, unreadable or
    empty audio and for non-finite samples.
    """
    source = source.strip()
    try:
        if source.endswith("|"):
            f = io.BytesIO(_read_pipe(source[:-1]))
        elif not os.path.isfile(source):
            raise AudioError(f"{source}: file not found")
        else:
            f = source
        with soundfile.SoundFile(f) as snd:
            sr = snd.samplerate
            first = int(round(start * sr)) if start else 0
            last = int(round(end * sr)) if end is not None else snd.frames
            if first > 0:
                snd.seek(min(first, snd.frames))
            data = snd.read(frames=max(0, last - first), dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
        raise AudioError(f"{source}: cannot decode audio ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{source}: no samples" + (f" in [{start}, {end}] s" if start or end else ""))
    if not np.isfinite(data).all():
        raise AudioError(f"{source}: audio contains NaN or Inf samples")
    if mono:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data), sr


def audio_duration(source: str) -> float:
    """Duration in seconds, from the header when possible."""
    source = source.strip()
    if source.endswith("|"):
        samples, sr = load_audio(source)
        return len(samples) / sr
    if not os.path.isfile(source):
        raise AudioError(f"{source}: file not found")
    try:
        info = soundfile.info(source)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise AudioError(f"{source}: cannot read audio header ({e})") from None
    return info.frames / info.samplerate
