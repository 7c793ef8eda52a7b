"""Verification metrics: EER, minDCF, actual DCF and Cllr.

EER and minDCF have exactly the semantics of WeSpeaker's
``utils/score_metrics.py`` (``compute_pmiss_pfa_rbst``, ``compute_eer``,
``compute_c_norm``) as used by its ``compute_metrics.py``:

* the trials are sorted by score ascending with numpy's default (unstable)
  argsort; after position ``i`` the miss rate is the fraction of targets at
  or below it and the false-alarm rate the fraction of non-targets above it
  (no extra "accept everything" point is added);
* the EER interpolates linearly between the last position where
  miss < false alarm and the first where miss >= false alarm, and its
  threshold is the sorted score at that first position;
* minDCF is ``min_i(c_miss*Pmiss_i*p + c_fa*Pfa_i*(1-p))`` divided by
  ``min(c_miss*p, c_fa*(1-p))``.

Actual DCF and Cllr treat the scores as natural-log likelihood ratios (the
output of QMF calibration): a trial is accepted when its LLR exceeds the
Bayes threshold ``log(c_fa*(1-p) / (c_miss*p))``.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

#: p_target values reported by default (VoxCeleb / SRE conventions).
DEFAULT_P_TARGETS = (0.01, 0.05, 0.001)


def _check_inputs(scores: np.ndarray, is_target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_target = np.asarray(is_target, dtype=bool).reshape(-1)
    if scores.shape != is_target.shape:
        raise ValueError(f"{len(scores)} scores but {len(is_target)} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or Inf")
    num_target = int(is_target.sum())
    if num_target == 0 or num_target == len(is_target):
        raise ValueError(f"need both target and non-target trials, got {num_target} targets "
                         f"among {len(is_target)} trials")
    return scores, is_target


def error_rates(scores: np.ndarray, is_target: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every sorted-score position.

    Returns ``(sorted_scores, p_miss, p_fa)``; position ``i`` corresponds to
    rejecting the ``i+1`` lowest-scoring trials.
    """
    scores, is_target = _check_inputs(scores, is_target)
    order = np.argsort(scores)
    sorted_target = is_target[order]
    p_miss = np.cumsum(sorted_target.astype(np.float64)) / np.sum(sorted_target)
    p_fa = 1 - np.cumsum((~sorted_target).astype(np.float64)) / np.sum(~sorted_target)
    return scores[order], p_miss, p_fa


def eer_from_rates(p_miss: np.ndarray, p_fa: np.ndarray) -> Tuple[float, int]:
    """EER by linear interpolation around the crossing; also returns the index of the first point with miss >= fa."""
    diff = p_miss - p_fa
    at_or_after = np.flatnonzero(diff >= 0)
    before = np.flatnonzero(diff < 0)
    first = int(at_or_after[0])  # the last point (miss 1, fa 0) always qualifies
    if len(before) == 0:
        # Already miss >= fa at the first point (the lowest score is a target): no crossing to
        # interpolate; WeSpeaker's code would fail here. Report the first point's mean error.
        return float(0.5 * (p_miss[first] + p_fa[first])), first
    last = int(before[-1])
    step = (p_miss[first] - p_fa[first]) / (p_fa[last] - p_fa[first] - (p_miss[last] - p_miss[first]))
    return float(p_miss[first] + step * (p_miss[last] - p_miss[first])), first


def min_dcf_from_rates(p_miss: np.ndarray, p_fa: np.ndarray, p_target: float, c_miss: float = 1.0,
                       c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost over all sorted-score thresholds."""
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    return float(np.min(cost) / min(c_miss * p_target, c_fa * (1 - p_target)))


@dataclass
class DetectionMetrics:
    """EER (a fraction, not %), its threshold, and minDCF per p_target."""

    num_trials: int
    num_target: int
    eer: float
    eer_threshold: float
    min_dcf: Dict[float, float] = field(default_factory=dict)
    c_miss: float = 1.0
    c_fa: float = 1.0


def eer_min_dcf(scores: np.ndarray, is_target: np.ndarray, p_targets: Sequence[float] = DEFAULT_P_TARGETS,
                c_miss: float = 1.0, c_fa: float = 1.0) -> DetectionMetrics:
    """EER, its threshold and minDCF at each ``p_target``, exactly as WeSpeaker's ``score_metrics``."""
    sorted_scores, p_miss, p_fa = error_rates(scores, is_target)
    eer, first = eer_from_rates(p_miss, p_fa)
    min_dcf = {float(p): min_dcf_from_rates(p_miss, p_fa, p, c_miss, c_fa) for p in p_targets}
    return DetectionMetrics(num_trials=len(sorted_scores), num_target=int(np.sum(is_target)), eer=eer,
                            eer_threshold=float(sorted_scores[first]), min_dcf=min_dcf, c_miss=c_miss, c_fa=c_fa)


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR above which accepting minimises the expected cost."""
    return math.log(c_fa * (1 - p_target) / (c_miss * p_target))


def act_dcf(llrs: np.ndarray, is_target: np.ndarray, p_target: float, c_miss: float = 1.0,
            c_fa: float = 1.0) -> float:
    """Normalised actual DCF of LLR scores at the Bayes threshold (accept when llr > threshold)."""
    llrs, is_target = _check_inputs(llrs, is_target)
    threshold = bayes_threshold(p_target, c_miss, c_fa)
    p_miss = float(np.mean(llrs[is_target] <= threshold))
    p_fa = float(np.mean(llrs[~is_target] > threshold))
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return cost / min(c_miss * p_target, c_fa * (1 - p_target))


def cllr(llrs: np.ndarray, is_target: np.ndarray) -> float:
    """Log-likelihood-ratio cost in bits (prior 0.5, targets and non-targets weighted equally).

    ``0.5 * (mean(log2(1 + exp(-llr_tgt))) + mean(log2(1 + exp(llr_non))))``,
    the quantity QMF training minimises; computed with ``logaddexp`` so that
    very large LLRs do not overflow. 1.0 is the cost of a system that always
    outputs 0.
    """
    llrs, is_target = _check_inputs(llrs, is_target)
    target_cost = np.mean(np.logaddexp(0.0, -llrs[is_target]))
    nontarget_cost = np.mean(np.logaddexp(0.0, llrs[~is_target]))
    return float(0.5 * (target_cost + nontarget_cost) / math.log(2.0))


@dataclass
class CalibrationMetrics:
    """Metrics that only make sense for LLR scores."""

    act_dcf: Dict[float, float]
    cllr: float


def calibration_metrics(llrs: np.ndarray, is_target: np.ndarray, p_targets: Sequence[float] = DEFAULT_P_TARGETS,
                        c_miss: float = 1.0, c_fa: float = 1.0) -> CalibrationMetrics:
    """Actual DCF at each ``p_target`` and Cllr for calibrated (LLR) scores."""
    return CalibrationMetrics(act_dcf={float(p): act_dcf(llrs, is_target, p, c_miss, c_fa) for p in p_targets},
                              cllr=cllr(llrs, is_target))


def det_points(scores: np.ndarray, is_target: np.ndarray,
               max_points: Optional[int] = 5000) -> Tuple[np.ndarray, np.ndarray]:
    """(p_fa, p_miss) pairs along the DET curve, thinned to at most about ``max_points``.

    Only the corners of the staircase are needed for a plot; the first and last
    points are always kept.
    """
    _, p_miss, p_fa = error_rates(scores, is_target)
    if max_points is not None and len(p_miss) > max_points:
        keep = np.unique(np.linspace(0, len(p_miss) - 1, max_points).astype(np.int64))
        p_miss, p_fa = p_miss[keep], p_fa[keep]
    return p_fa, p_miss
