"""Speaker-disjoint cross-fitted QMF (wespk.scoring.calibration_cross_fit, ``calibrate cross_fit``).

The trials are the golden eval embeddings' (30 speakers, 4 utterances each):
every same-speaker pair and ten times as many others (``make_trials``), scored
and AS-normalised with the golden cohort by the stage programs themselves.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from wespk.bin import calibrate, make_trials, score, score_norm
from wespk.io.files import DataFileError, read_kaldi_map
from wespk.scoring.calibration import apply_qmf, gather_factors, train_qmf, write_calibrated_scores
from wespk.scoring.calibration_cross_fit import (assign_speaker_folds, cross_fit_qmf, fold_pairs_of_trials,
                                                 trial_speakers)
from wespk.scoring.calibration_trials import read_durations
from wespk.scoring.score_files import read_score_norm_file

from .conftest import read_columns, run_cli

#: LBFGS steps per fit (of at most 50): enough to fit, few enough for 15 fits per run to take seconds
EPOCHS = 8


@pytest.fixture(scope="module")
def trials_dir(golden_scoring, golden_embeddings, tmp_path_factory) -> Path:
    """utt2spk, trials, trials.score and trials.asnorm100.score of the golden eval set."""
    out = tmp_path_factory.mktemp("cross_fit")
    keys = read_columns(golden_embeddings.eval, 0)
    (out / "utt2spk").write_text("".join(f"{key} {key.split('/')[0]}\n" for key in keys))
    assert make_trials.main([str(out / "utt2spk"), str(out / "trials"), "--seed", "3"]) == 0
    assert score.main(["--embeddings", str(golden_embeddings.eval), "--mean_from", str(golden_embeddings.cohort_utts),
                       "--trials", str(out / "trials"), "--output", str(out / "trials.score")]) == 0
    assert score_norm.main(["--method", "asnorm", "--top_n", "100", "--cohort", str(golden_embeddings.cohort),
                            "--embeddings", str(golden_embeddings.eval), "--mean_from",
                            str(golden_embeddings.cohort_utts), "--input", str(out / "trials.score"),
                            "--output", str(out / "trials.asnorm100.score")]) == 0
    return out


@pytest.fixture(scope="module")
def factors(trials_dir, golden_scoring):
    return gather_factors(read_score_norm_file(trials_dir / "trials.asnorm100.score"),
                          read_durations(golden_scoring / "utt2dur.txt"))


@pytest.fixture(scope="module")
def utt2spk(trials_dir):
    return dict(read_kaldi_map(trials_dir / "utt2spk"))


@pytest.fixture(scope="module")
def result(factors, utt2spk):
    return cross_fit_qmf(factors, utt2spk, 5, seed=11, max_epochs=EPOCHS)


def _is_target(factors):
    return np.array([label == "target" for label in factors.labels])


def test_folds_are_balanced_seeded_and_independent_of_input_order():
    speakers = [f"spk{i:02d}" for i in range(23)]
    folds = assign_speaker_folds(speakers, 5, seed=4)
    assert sorted(folds) == speakers
    assert sorted(np.bincount(list(folds.values()))) == [4, 4, 5, 5, 5]
    assert assign_speaker_folds(list(reversed(speakers)) + speakers[:3], 5, seed=4) == folds
    assert assign_speaker_folds(speakers, 5, seed=5) != folds
    with pytest.raises(ValueError, match="3 speakers cannot fill 5 folds"):
        assign_speaker_folds(["a", "b", "c"], 5, seed=1)
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_speaker_folds(speakers, 1, seed=1)


def test_no_trial_is_scored_by_a_model_that_saw_one_of_its_speakers(factors, utt2spk, result):
    enroll_spk, test_spk = trial_speakers(factors, utt2spk)
    assert len(set(enroll_spk + test_spk)) == 30 and np.isfinite(result.llrs).all()
    pairs = fold_pairs_of_trials(enroll_spk, test_spk, result.spk2fold)
    assert (pairs == result.pair_of_trial).all()
    is_target = _is_target(factors)
    assert sorted(fit.folds for fit in result.fits) == sorted({tuple(p) for p in pairs.tolist()})
    for fit in result.fits:
        scored = (pairs == fit.folds).all(axis=1)
        fitted = ~np.isin(pairs, fit.folds).any(axis=1)
        scored_speakers = {s for i in np.flatnonzero(scored) for s in (enroll_spk[i], test_spk[i])}
        fitted_speakers = {s for i in np.flatnonzero(fitted) for s in (enroll_spk[i], test_spk[i])}
        assert scored_speakers and not scored_speakers & fitted_speakers
        assert (fit.num_scored, fit.num_fit_targets) == (scored.sum(), (is_target & fitted).sum())
        assert fit.num_fit_nontargets == (~is_target & fitted).sum()
    assert sum(fit.num_scored for fit in result.fits) == len(factors)


def test_trials_sharing_folds_with_a_pair_do_not_move_its_llrs(factors, utt2spk, result):
    """Behaviour, not bookkeeping: rewrite every trial that has a speaker in fold 0 or 1 (except those of
    pair 0-1 itself); the llrs of pair 0-1 must not move, since its model never saw those trials."""
    pairs = result.pair_of_trial
    own = (pairs == (0, 1)).all(axis=1)
    touched = np.isin(pairs, (0, 1)).any(axis=1) & ~own
    assert own.any() and touched.any()
    features = factors.features.copy()
    features[touched, 0] = 3.0 - features[touched, 0]
    changed = dataclasses.replace(factors, features=features)
    moved = cross_fit_qmf(changed, utt2spk, 5, seed=11, max_epochs=EPOCHS)
    assert np.array_equal(moved.llrs[own], result.llrs[own])
    assert not np.allclose(moved.llrs[~own & ~touched], result.llrs[~own & ~touched])


def test_one_pair_equals_a_manual_fit_on_its_complement(factors, result):
    is_target = _is_target(factors)
    for folds in ((0, 3), (2, 2)):
        scored = (result.pair_of_trial == folds).all(axis=1)
        outside = ~np.isin(result.pair_of_trial, folds).any(axis=1)
        manual = train_qmf(factors.features[outside], is_target[outside], max_epochs=EPOCHS)
        assert np.array_equal(result.llrs[scored], apply_qmf(manual.state_dict, factors.features[scored]))
        fit, = [fit for fit in result.fits if fit.folds == folds]
        assert all(np.array_equal(fit.state_dict[k], manual.state_dict[k]) for k in manual.state_dict)


def test_cross_fitting_calibrates_unseen_speakers(factors, result):
    """The point of the exercise: the pooled llrs are better calibrated than the raw AS-norm score."""
    from wespk.scoring.metrics import cllr

    is_target = _is_target(factors)
    assert cllr(result.llrs, is_target) < cllr(factors.features[:, 0], is_target)


def test_cli_writes_apply_layout_deterministically(trials_dir, golden_scoring, factors, utt2spk, result, tmp_path):
    args = ["cross_fit", "--scores", trials_dir / "trials.asnorm100.score", "--utt2spk", trials_dir / "utt2spk",
            "--folds", "5", "--seed", "11", "--utt2dur", golden_scoring / "utt2dur.txt", "--max_epochs", EPOCHS]
    for name in ("a", "b"):
        done = run_cli("wespk.bin.calibrate", *args, "--output", tmp_path / name,
                       "--spk2fold", tmp_path / f"{name}.fold")
        assert done.returncode == 0, done.stderr
    assert "15 fold-pair models over 5 folds of 30 speakers" in done.stdout and "(cross-fitted)" in done.stdout
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    write_calibrated_scores(tmp_path / "library", factors, result.llrs)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "library").read_bytes()
    assert read_columns(tmp_path / "a", 0) == factors.enroll and read_columns(tmp_path / "a", 3) == factors.labels
    assert {k: int(v) for k, v in read_kaldi_map(tmp_path / "a.fold").items()} == result.spk2fold
    assert calibrate.main(["cross_fit", "--scores", str(trials_dir / "trials.asnorm100.score"), "--utt2spk",
                           str(trials_dir / "utt2spk"), "--folds", "5", "--seed", "12", "--drop_duration",
                           "--max_epochs", "1", "--output", str(tmp_path / "c"),
                           "--spk2fold", str(tmp_path / "c.fold")]) == 0
    assert read_kaldi_map(tmp_path / "c.fold") != read_kaldi_map(tmp_path / "a.fold")


def test_utterance_without_speaker_names_file_and_line(trials_dir, factors, utt2spk, tmp_path):
    missing = factors.test[6]
    partial = {k: v for k, v in utt2spk.items() if k != missing}
    first = min(i for i, (e, t) in enumerate(zip(factors.enroll, factors.test)) if missing in (e, t))
    with pytest.raises(DataFileError, match=f"trials.asnorm100.score:{first + 1}: utterance '{missing}' has no "
                                            f"speaker in my_utt2spk"):
        cross_fit_qmf(factors, partial, 5, seed=11, utt2spk_path="my_utt2spk")
    (tmp_path / "utt2spk").write_text("".join(f"{k} {v}\n" for k, v in partial.items()))
    done = run_cli("wespk.bin.calibrate", "cross_fit", "--scores", trials_dir / "trials.asnorm100.score",
                   "--utt2spk", tmp_path / "utt2spk", "--drop_duration", "--output", tmp_path / "out")
    assert done.returncode == 1
    assert f"trials.asnorm100.score:{first + 1}: utterance '{missing}' has no speaker in {tmp_path}/utt2spk" \
        in done.stderr
    assert not (tmp_path / "out").exists()


def test_too_few_target_trials_names_the_fold(trials_dir, factors, utt2spk, tmp_path):
    # 3 folds of 10 speakers: without folds 0 and 1 only 10 speakers (60 target trials) are left
    with pytest.raises(ValueError, match=r"without a speaker of folds 0 and 1 \(fold pair 0-1 of 3\) hold 60 target"):
        cross_fit_qmf(factors, utt2spk, 3, seed=11, min_targets=61)
    with pytest.raises(ValueError, match=r"without a speaker of fold 0 \(fold pair 0-0 of 3\) hold 120 target"):
        cross_fit_qmf(factors, utt2spk, 3, seed=11, min_targets=121)
    done = run_cli("wespk.bin.calibrate", "cross_fit", "--scores", trials_dir / "trials.asnorm100.score",
                   "--utt2spk", trials_dir / "utt2spk", "--folds", "30", "--drop_duration",
                   "--min_targets", "200", "--output", tmp_path / "out")
    assert done.returncode == 1 and "fold pair 0-0 of 30" in done.stderr and "use fewer folds" in done.stderr
    assert not (tmp_path / "out").exists()


def test_unlabelled_trials_are_refused(trials_dir, utt2spk, tmp_path):
    lines = (trials_dir / "trials.asnorm100.score").read_text().splitlines()
    unlabelled = tmp_path / "normed"
    unlabelled.write_text("".join(" ".join(f[:3] + f[4:]) + "\n" for f in (line.split() for line in lines)))
    with pytest.raises(DataFileError, match=r"normed:1: \d+ trials have no label; cross-fitted calibration"):
        cross_fit_qmf(gather_factors(read_score_norm_file(unlabelled), None), utt2spk, 5, seed=1)
