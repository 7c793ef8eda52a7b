"""Sample-rate conversion by polyphase filtering.

The anti-aliasing filter is scipy's default for ``resample_poly`` (a
Kaiser-windowed sinc, beta 5, 10 zero crossings per side). Designing it takes
longer than filtering a 2 s chunk, so :class:`Resampler` keeps the filters it
has designed; :func:`resample` is the one-shot form and gives identical output.
"""

from fractions import Fraction
from typing import Dict, Tuple

import numpy as np
from scipy.signal import firwin, resample_poly


def resample_ratio(from_rate: float, to_rate: float, max_denominator: int = 1000) -> Tuple[int, int]:
    """``(up, down)`` with ``up / down == to_rate / from_rate`` (in lowest terms;
    non-integer rates are approximated with denominators up to ``max_denominator``)."""
    if float(from_rate).is_integer() and float(to_rate).is_integer():
        ratio = Fraction(int(to_rate), int(from_rate))
    else:
        ratio = Fraction(to_rate / from_rate).limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


def design_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR filter ``resample_poly`` designs for ``(up, down)``."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)


def apply_ratio(waveform, up: int, down: int, taps: np.ndarray) -> np.ndarray:
    """Filter ``waveform`` (1-D; numpy or CPU tensor) by ``up/down`` with ``taps``."""
    return resample_poly(np.asarray(waveform, dtype=np.float32), up, down,
                         window=taps).astype(np.float32, copy=False)


def resample(waveform, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-D float waveform from ``from_rate`` to ``to_rate`` Hz.

    Output length is ``ceil(len * to_rate / from_rate)``, as float32 numpy
    (a CPU tensor input is read as an array; equal rates return the input).
    """
    if from_rate == to_rate:
        return waveform
    up, down = resample_ratio(from_rate, to_rate)
    return apply_ratio(waveform, up, down, design_filter(up, down))


class Resampler:
    """:func:`resample` (and ratio changes) with the filters kept per ratio."""

    def __init__(self):
        self._filters: Dict[Tuple[int, int], np.ndarray] = {}

    def taps(self, up: int, down: int) -> np.ndarray:
        """The filter for ``(up, down)``, designed on first use."""
        taps = self._filters.get((up, down))
        if taps is None:
            taps = self._filters[(up, down)] = design_filter(up, down)
        return taps

    def resample(self, waveform, from_rate: int, to_rate: int) -> np.ndarray:
        """Same as :func:`resample`."""
        if from_rate == to_rate:
            return waveform
        up, down = resample_ratio(from_rate, to_rate)
        return apply_ratio(waveform, up, down, self.taps(up, down))

    def speed_perturb(self, waveform, speed: float) -> np.ndarray:
        """Same as :func:`wespk.augment.speed.speed_perturb`."""
        from wespk.augment.speed import speed_ratio
        if speed == 1.0:
            return waveform
        up, down = speed_ratio(speed)
        return apply_ratio(waveform, up, down, self.taps(up, down))
