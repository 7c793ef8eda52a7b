"""Speaker-disjoint cross-fitted QMF calibration of one trial list.

When no speakers are set aside for calibration, the evaluation trials
themselves can calibrate, as long as no trial is calibrated by a model that
saw one of its own speakers (cross-validated calibration). The speakers of
the trials are split into ``K`` folds (:func:`assign_speaker_folds`,
seeded). A trial whose enrollment and test speakers lie in folds ``i`` and
``j`` (``i == j`` for a target trial, or two speakers of one fold) is
calibrated by a QMF model fitted, with
:func:`~wespk.scoring.calibration.train_qmf`, only on the trials whose two
speakers are both outside folds ``i`` and ``j``, and applied with
:func:`~wespk.scoring.calibration.apply_qmf`. One model per fold pair that
occurs: ``K (K + 1) / 2`` fits at most.

Each model is fitted on the trials of ``K - 2`` folds (``K - 1`` for a
same-fold pair), so a larger ``K`` gives each model more of the trials and
costs more fits; the fit needs enough target trials in every complement
(``min_targets``), or :func:`cross_fit_qmf` names the fold pair that has too
few.
"""

import logging
import random
from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import numpy as np
import torch

from wespk.io.files import DataFileError
from wespk.io.trials import UNKNOWN_LABEL
from wespk.scoring.calibration import DEFAULT_MIN_TARGETS, CalibrationFactors, apply_qmf, train_qmf

logger = logging.getLogger(__name__)

#: A complement with fewer target trials than :data:`DEFAULT_MIN_TARGETS` is refused (its fit would follow a
#: handful of scores), and likewise with fewer non-target trials than this.
DEFAULT_MIN_NONTARGETS = 50


def assign_speaker_folds(speakers, num_folds: int, seed: int) -> Dict[str, int]:
    """``speaker -> fold`` (0 .. num_folds-1): the C-sorted speakers shuffled with ``random.Random(seed)``
    and dealt out in turn, so fold sizes differ by at most one. A pure function of its inputs."""
    unique = sorted(set(speakers), key=lambda s: s.encode("utf-8"))
    if num_folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {num_folds}")
    if len(unique) < num_folds:
        raise ValueError(f"{len(unique)} speakers cannot fill {num_folds} folds")
    random.Random(seed).shuffle(unique)
    return {speaker: position % num_folds for position, speaker in enumerate(unique)}


def trial_speakers(factors: CalibrationFactors, utt2spk: Mapping[str, str],
                   utt2spk_path: str = "utt2spk") -> Tuple[List[str], List[str]]:
    """The enrollment and test speakers of every trial; an utterance without a speaker is an error naming the
    trial's file and line and the utt2spk file."""
    enroll_spk, test_spk = [], []
    for row, (enroll, test) in enumerate(zip(factors.enroll, factors.test)):
        for key, out in ((enroll, enroll_spk), (test, test_spk)):
            speaker = utt2spk.get(key)
            if speaker is None:
                line = None if factors.line_numbers is None else int(factors.line_numbers[row])
                raise DataFileError(factors.path, line, f"utterance {key!r} has no speaker in {utt2spk_path}")
            out.append(speaker)
    return enroll_spk, test_spk


@dataclass
class FoldPairFit:
    """The model of fold pair ``folds`` and what it was fitted on and applied to."""

    folds: Tuple[int, int]
    state_dict: Dict[str, torch.Tensor]
    num_fit_targets: int
    num_fit_nontargets: int
    num_scored: int
    fit_cllr: float


@dataclass
class CrossFitResult:
    """Per trial (file order) the calibrated llr and its fold pair; the speaker folds; one fit per pair."""

    llrs: np.ndarray
    pair_of_trial: np.ndarray  # [N, 2] int: (lower fold, higher fold) of each trial
    spk2fold: Dict[str, int]
    fits: List[FoldPairFit]


def fold_pairs_of_trials(enroll_spk: List[str], test_spk: List[str], spk2fold: Mapping[str, int]) -> np.ndarray:
    """``[N, 2]``: the sorted fold pair of each trial's two speakers."""
    enroll = np.array([spk2fold[s] for s in enroll_spk], dtype=np.int64)
    test = np.array([spk2fold[s] for s in test_spk], dtype=np.int64)
    return np.stack([np.minimum(enroll, test), np.maximum(enroll, test)], axis=1)


def cross_fit_qmf(factors: CalibrationFactors, utt2spk: Mapping[str, str], num_folds: int, seed: int,
                  utt2spk_path: str = "utt2spk", min_targets: int = DEFAULT_MIN_TARGETS,
                  min_nontargets: int = DEFAULT_MIN_NONTARGETS, float32_weights: bool = False,
                  **train_kwargs) -> CrossFitResult:
    """Calibrate every trial of ``factors`` with a QMF model fitted without its speakers' folds.

    ``factors`` is a labelled factor table
    (:func:`~wespk.scoring.calibration.gather_factors`), ``utt2spk`` maps
    each trial utterance to its speaker. The folds are drawn over the
    speakers of the trials. ``train_kwargs`` go to
    :func:`~wespk.scoring.calibration.train_qmf` (``max_epochs``, ``lr``,
    ``standardize``). A fold pair whose complement has fewer than
    ``min_targets`` target or ``min_nontargets`` non-target trials is an
    error naming the pair.
    """
    unknown = [i for i, label in enumerate(factors.labels) if label == UNKNOWN_LABEL]
    if unknown:
        line = None if factors.line_numbers is None else int(factors.line_numbers[unknown[0]])
        raise DataFileError(factors.path, line, f"{len(unknown)} trials have no label; cross-fitted calibration "
                                                f"fits on the trials themselves and needs target/nontarget")
    is_target = np.array([label == "target" for label in factors.labels], dtype=bool)
    enroll_spk, test_spk = trial_speakers(factors, utt2spk, utt2spk_path)
    spk2fold = assign_speaker_folds(enroll_spk + test_spk, num_folds, seed)
    pairs = fold_pairs_of_trials(enroll_spk, test_spk, spk2fold)
    llrs = np.full(len(factors), np.nan)
    fits: List[FoldPairFit] = []
    present = sorted({(int(a), int(b)) for a, b in pairs})
    # check every complement before the first fit, so a bad fold count fails at once
    complements = {}
    for low, high in present:
        outside = ~np.isin(pairs[:, 0], (low, high)) & ~np.isin(pairs[:, 1], (low, high))
        targets = int(np.count_nonzero(is_target & outside))
        nontargets = int(np.count_nonzero(~is_target & outside))
        if targets < min_targets or nontargets < min_nontargets:
            what = f"folds {low} and {high}" if low != high else f"fold {low}"
            raise ValueError(f"{factors.path}: the trials without a speaker of {what} (fold pair {low}-{high} of "
                             f"{num_folds}) hold {targets} target and {nontargets} non-target trials, fewer than "
                             f"the {min_targets} and {min_nontargets} a fit needs; use fewer folds or more trials")
        complements[(low, high)] = outside
    for low, high in present:
        outside = complements[(low, high)]
        result = train_qmf(factors.features[outside], is_target[outside], **train_kwargs)
        scored = (pairs[:, 0] == low) & (pairs[:, 1] == high)
        llrs[scored] = apply_qmf(result.state_dict, factors.features[scored], float32_weights)
        fits.append(FoldPairFit(folds=(low, high), state_dict=result.state_dict,
                                num_fit_targets=int(np.count_nonzero(is_target & outside)),
                                num_fit_nontargets=int(np.count_nonzero(~is_target & outside)),
                                num_scored=int(np.count_nonzero(scored)), fit_cllr=result.final_cllr))
        logger.info("fold pair %d-%d: fitted on %d target and %d non-target trials (Cllr %.4f), applied to %d",
                    low, high, fits[-1].num_fit_targets, fits[-1].num_fit_nontargets, result.final_cllr,
                    fits[-1].num_scored)
    return CrossFitResult(llrs=llrs, pair_of_trial=pairs, spk2fold=spk2fold, fits=fits)


def cross_fit_summary(result: CrossFitResult) -> str:
    """One line: the number of fits and the range of their calibration trials."""
    targets = [fit.num_fit_targets for fit in result.fits]
    nontargets = [fit.num_fit_nontargets for fit in result.fits]
    folds = max(result.spk2fold.values()) + 1
    return (f"{len(result.fits)} fold-pair models over {folds} folds of {len(result.spk2fold)} speakers, each "
            f"fitted on {min(targets)}-{max(targets)} target and {min(nontargets)}-{max(nontargets)} "
            f"non-target trials")


__all__ = ["DEFAULT_MIN_TARGETS", "DEFAULT_MIN_NONTARGETS", "CrossFitResult", "FoldPairFit", "assign_speaker_folds",
           "cross_fit_qmf", "cross_fit_summary", "fold_pairs_of_trials", "trial_speakers"]
