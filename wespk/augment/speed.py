"""Speed perturbation by resampling (the pipeline's ``speed_perturb`` step).

Speed perturbation by a factor ``s`` plays the waveform ``s`` times faster:
the samples are treated as if taken at ``s * rate`` and resampled to
``rate``, so duration shrinks by ``1/s`` and every frequency (pitch included)
scales by ``s`` - the effect of sox ``speed s`` followed by ``rate``, as
WeSpeaker and Kaldi apply it. The filters are those of
:func:`wespk.io.audio.resample`; a :class:`~wespk.io.audio.Resampler` keeps
them between calls.
"""

from typing import Optional, Tuple

import numpy as np

from wespk.io.audio import Resampler, resample_ratio

#: WeSpeaker's speed factors; index i maps labels to class block i.
SPEED_FACTORS = (1.0, 0.9, 1.1)


def speed_ratio(speed: float) -> Tuple[int, int]:
    """``(up, down)`` of a speed change (e.g. 1.1 -> (10, 11))."""
    return resample_ratio(speed, 1.0, max_denominator=100)


def speed_perturb(waveform: np.ndarray, speed: float, resampler: Optional[Resampler] = None) -> np.ndarray:
    """Play ``waveform`` ``speed`` times faster (length / speed, pitch x speed).

    ``resampler`` keeps the filters designed for each factor (the pipeline
    passes its own); without one the filter is designed for this call.
    """
    if speed == 1.0:
        return waveform
    up, down = speed_ratio(speed)
    return (resampler or Resampler()).apply_ratio(waveform, up, down)
