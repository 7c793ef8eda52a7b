"""Speed perturbation by resampling.

Speed perturbation by a factor ``s`` plays the waveform ``s`` times faster:
the samples are treated as if taken at ``s * rate`` and resampled to
``rate``, so duration shrinks by ``1/s`` and every frequency (pitch included)
scales by ``s`` - the effect of sox ``speed s`` followed by ``rate``, as
WeSpeaker and Kaldi apply it. Filters as in :mod:`wespk.augment.resample`.
"""

from typing import Tuple

import numpy as np

# resample is imported from here by other modules; it lives in resample.py.
from wespk.augment.resample import Resampler, apply_ratio, design_filter, resample, resample_ratio

__all__ = ["SPEED_FACTORS", "speed_ratio", "speed_perturb", "resample", "resample_ratio", "Resampler"]

#: WeSpeaker's speed factors; index i maps labels to class block i.
SPEED_FACTORS = (1.0, 0.9, 1.1)


def speed_ratio(speed: float) -> Tuple[int, int]:
    """``(up, down)`` of a speed change (e.g. 1.1 -> (10, 11))."""
    return resample_ratio(speed, 1.0, max_denominator=100)


def speed_perturb(waveform: np.ndarray, speed: float) -> np.ndarray:
    """Play ``waveform`` ``speed`` times faster (length / speed, pitch x speed)."""
    if speed == 1.0:
        return waveform
    up, down = speed_ratio(speed)
    return apply_ratio(waveform, up, down, design_filter(up, down))
