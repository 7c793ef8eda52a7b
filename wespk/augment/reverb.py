"""Reverberation by convolution with a room impulse response (RIR).

The RIR's strongest tap (its direct path) is moved to time zero before the
convolution, so reverberant speech stays aligned with the dry speech (the
chunk, its frames and any later alignment keep their meaning). The output is
rescaled to the input's power, as Kaldi's ``wav-reverberate`` normalises it.
"""

import logging
import os
from typing import Dict, List, Optional

import numpy as np
from scipy.signal import fftconvolve

from wespk.augment.noise import POWER_FLOOR, signal_power
from wespk.io.audio import AudioError, AudioRef, read_audio_channel, ref_from_wav_scp_value, resample
from wespk.io.files import read_kaldi_map

logger = logging.getLogger(__name__)


def reverberate(waveform: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve ``waveform`` with ``rir``, direct path aligned, power kept.

    Sample ``n`` of the output is the reverberant signal whose direct-path
    component is input sample ``n``; the output has the input's length and
    mean square.
    """
    rir = np.asarray(rir, dtype=np.float64)
    energy = float(np.sum(rir ** 2))
    if energy <= 0.0 or not np.isfinite(energy):
        raise ValueError("RIR has no energy")
    peak = int(np.argmax(np.abs(rir)))
    # float32 FFTs: twice as fast, and far more precise than 16-bit audio.
    full = fftconvolve(np.asarray(waveform, dtype=np.float32), (rir / np.sqrt(energy)).astype(np.float32))
    out = full[peak:peak + len(waveform)]
    in_power, out_power = signal_power(waveform), signal_power(out)
    if out_power > POWER_FLOOR:
        out = out * np.float32(np.sqrt(in_power / out_power))
    return out.astype(np.float32, copy=False)


class RirSet:
    """Room impulse responses listed in a data dir's ``wav.scp`` (or a ``wav.scp`` file).

    ``utt2category`` next to it, when present, is kept for information
    (``smallroom``, ``real`` ...); RIRs are drawn uniformly.
    """

    def __init__(self, path: str):
        self.path = path
        if os.path.isdir(path):
            directory, scp = path, os.path.join(path, "wav.scp")
        else:
            directory, scp = os.path.dirname(path) or ".", path
        table = read_kaldi_map(scp)
        if not table:
            raise ValueError(f"{path}: RIR set is empty")
        self.keys: List[str] = list(table)
        self.refs: Dict[str, AudioRef] = {k: ref_from_wav_scp_value(v, base_dir=directory)
                                          for k, v in table.items()}

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, key: str, sample_rate: int) -> np.ndarray:
        """RIR ``key`` (first channel) at ``sample_rate``."""
        rir, rate = read_audio_channel(self.refs[key], channel=0)
        if rate != sample_rate:
            rir = resample(rir, rate, sample_rate)
        if not np.any(rir):
            raise AudioError(f"{self.refs[key].describe()}: RIR is all zeros")
        return rir

    def random_key(self, rng: np.random.Generator) -> str:
        """A uniformly drawn RIR key."""
        return self.keys[int(rng.integers(len(self.keys)))]


def reverberate_with(rir_set: RirSet, waveform: np.ndarray, sample_rate: int,
                     rng: np.random.Generator, key: Optional[str] = None) -> np.ndarray:
    """Reverberate with a random (or the given) RIR of ``rir_set``."""
    key = key if key is not None else rir_set.random_key(rng)
    return reverberate(waveform, rir_set.load(key, sample_rate))
