"""Additive noise at a chosen signal-to-noise ratio, from a noise set by category.

A noise set is a Kaldi-style directory with ``wav.scp`` and ``utt2category``
(one of ``noise``, ``music``, ``babble``, ``speech`` or any other name that the
SNR table knows). Without ``utt2category`` the category is the key's prefix
before the first ``-`` or ``/`` (MUSAN keys look like ``noise-free-sound-0000``).

Per category, as in Kaldi's MUSAN recipe: ``noise`` 0-15 dB, ``music``
5-15 dB, ``babble`` (pre-mixed babble files) 13-20 dB, and ``speech``: 3-7
speech files, each at its own 13-20 dB, summed into babble.
"""

import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from wespk.io.audio import AudioRef, read_audio_window, ref_from_wav_scp_value, resample
from wespk.io.files import read_kaldi_map

logger = logging.getLogger(__name__)

#: SNR ranges (dB) per noise category; Kaldi's MUSAN recipe.
DEFAULT_NOISE_SNR: Dict[str, Tuple[float, float]] = {
    "noise": (0.0, 15.0),
    "music": (5.0, 15.0),
    "babble": (13.0, 20.0),
    "speech": (13.0, 20.0),
}

#: How many files of a category are summed into one noise; others use one.
DEFAULT_NUM_SOURCES: Dict[str, Tuple[int, int]] = {"speech": (3, 7)}

POWER_FLOOR = 1e-10


def signal_power(x: np.ndarray) -> float:
    """Mean square of a waveform."""
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled so that ``10 log10(P(speech) / P(noise)) == snr_db``.

    Powers are mean squares over the whole signals (which must have the same
    length). A silent noise is returned as zeros.
    """
    noise_power = signal_power(noise)
    if noise_power < POWER_FLOOR:
        return np.zeros_like(noise)
    speech_power = max(signal_power(speech), POWER_FLOOR)
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (noise * gain).astype(np.float32, copy=False)


def repeat_to_length(x: np.ndarray, length: int) -> np.ndarray:
    """Tile ``x`` and cut it to ``length`` samples (WeSpeaker's padding)."""
    if len(x) >= length:
        return x[:length]
    return np.tile(x, length // len(x) + 1)[:length]


def _read_dir_table(path: str) -> Tuple[str, "OrderedDict[str, str]"]:
    """``(directory, wav.scp table)`` for a data dir or a ``wav.scp`` file."""
    if os.path.isdir(path):
        directory, scp = path, os.path.join(path, "wav.scp")
    else:
        directory, scp = os.path.dirname(path) or ".", path
    return directory, read_kaldi_map(scp)


class NoiseSet:
    """Noise recordings grouped by category, with span reading at a target rate."""

    def __init__(self, path: str, snr_ranges: Optional[Dict[str, Sequence[float]]] = None,
                 num_sources: Optional[Dict[str, Sequence[int]]] = None):
        self.path = path
        directory, table = _read_dir_table(path)
        category_file = os.path.join(directory, "utt2category")
        categories = read_kaldi_map(category_file) if os.path.isfile(category_file) else {}
        self.snr_ranges = {k: (float(v[0]), float(v[1]))
                           for k, v in {**DEFAULT_NOISE_SNR, **(snr_ranges or {})}.items()}
        self.num_sources = {k: (int(v[0]), int(v[1]))
                            for k, v in {**DEFAULT_NUM_SOURCES, **(num_sources or {})}.items()}
        self.refs: Dict[str, AudioRef] = {}
        self.by_category: "OrderedDict[str, List[str]]" = OrderedDict()
        for key, value in table.items():
            category = categories.get(key) or self._category_from_key(key)
            self.refs[key] = ref_from_wav_scp_value(value, base_dir=directory)
            self.by_category.setdefault(category, []).append(key)
        if not self.refs:
            raise ValueError(f"{path}: noise set is empty")
        unknown = sorted(c for c in self.by_category if c not in self.snr_ranges)
        if unknown:
            raise ValueError(f"{path}: noise categories {unknown} have no SNR range; "
                             f"add them to noise_snr (known: {sorted(self.snr_ranges)})")
        self.by_category = OrderedDict(sorted(self.by_category.items()))

    def _category_from_key(self, key: str) -> str:
        for sep in ("-", "/", "_"):
            if sep in key:
                head = key.split(sep, 1)[0]
                if head in self.snr_ranges:
                    return head
        return "noise"

    @property
    def categories(self) -> List[str]:
        """Categories present, sorted."""
        return list(self.by_category)

    def read_random_span(self, key: str, length: int, sample_rate: int,
                         rng: np.random.Generator) -> np.ndarray:
        """``length`` samples at ``sample_rate`` from a random place in noise ``key``.

        Only that span is decoded; shorter noises are repeated to length.
        """
        def choose(rate: int, available: int):
            need = int(np.ceil(length * rate / sample_rate)) + (0 if rate == sample_rate else 32)
            offset = int(rng.integers(0, available - need + 1)) if available > need else 0
            return offset, need

        noise, rate = read_audio_window(self.refs[key], choose)
        if rate != sample_rate:
            noise = resample(noise, rate, sample_rate)
        return repeat_to_length(noise, length)

    def make_noise(self, speech: np.ndarray, sample_rate: int, category: str,
                   rng: np.random.Generator) -> Tuple[np.ndarray, List[Tuple[str, float]]]:
        """Noise of ``category`` scaled against ``speech``; and ``[(key, snr)]`` used.

        Categories with several sources (``speech``) sum that many distinct
        files, each at its own SNR.
        """
        keys = self.by_category[category]
        low, high = self.num_sources.get(category, (1, 1))
        count = min(int(rng.integers(low, high + 1)), len(keys))
        chosen = rng.choice(len(keys), size=count, replace=False)
        snr_low, snr_high = self.snr_ranges[category]
        total = np.zeros(len(speech), dtype=np.float32)
        used = []
        for index in chosen:
            key = keys[int(index)]
            snr = float(rng.uniform(snr_low, snr_high))
            noise = self.read_random_span(key, len(speech), sample_rate, rng)
            total += scale_to_snr(speech, noise, snr)
            used.append((key, snr))
        return total, used


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled to ``snr_db`` (same lengths)."""
    if len(noise) != len(speech):
        raise ValueError(f"speech has {len(speech)} samples but noise has {len(noise)}")
    return (speech + scale_to_snr(speech, noise, snr_db)).astype(np.float32, copy=False)
