"""QMF calibration against WeSpeaker's golden run (factor files, model, calibrated scores)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO

from wespk.io.files import DataFileError
from wespk.scoring.calibration import (apply_qmf, gather_factors, load_qmf_model, read_factors, save_qmf_model,
                                       train_qmf, train_qmf_on_factors, write_calibrated_scores, write_factors)
from wespk.scoring.calibration_trials import read_durations
from wespk.scoring.metrics import cllr
from wespk.scoring.score_files import read_score_file, read_score_norm_file

FACTOR_FILES = {  # golden score-norm file -> golden factor file
    "cali_trials_asnorm100_mean": "asnorm100_mean_cali_trials",
    "asnorm100_mean": "asnorm100_mean_trials",
}


@pytest.fixture(scope="module")
def golden_model(golden_scoring_full):
    return torch.load(golden_scoring_full / "calibration/calibration_model.pt", weights_only=True)


@pytest.mark.parametrize("score_name", sorted(FACTOR_FILES))
def test_factor_files_are_byte_identical(golden_scoring, tmp_path, score_name):
    durations = read_durations(golden_scoring / "utt2dur.txt")
    factors = gather_factors(read_score_norm_file(golden_scoring / f"scores/{score_name}.score.txt"), durations, 20)
    write_factors(tmp_path / "factors", factors)
    golden_path = golden_scoring / f"calibration/{FACTOR_FILES[score_name]}.calibration.txt"
    assert (tmp_path / "factors").read_text() == golden_path.read_text()
    # in memory, the features are the rounded values of the file
    np.testing.assert_array_equal(factors.features, read_factors(golden_path).features)


def test_training_reaches_the_golden_optimum(golden_scoring_full, golden_model, tmp_path):
    """In this process MKL uses whatever kernels the CPU offers; the path of the ill-conditioned fit
    then differs in the last bits, but it ends at the same Cllr with a model as good as the golden one."""
    factors = read_factors(golden_scoring_full / "calibration/asnorm100_mean_cali_trials.calibration.txt")
    result = train_qmf_on_factors(factors)
    assert 30 <= result.num_steps <= 50  # NOTES.md: 43 outer LBFGS steps before the early stop
    assert set(result.state_dict) == {"linear.weight", "linear.bias"}
    assert all(value.dtype == torch.float64 for value in result.state_dict.values())
    assert result.final_cllr == pytest.approx(0.1225, abs=2e-4)
    evaluation = read_factors(golden_scoring_full / "calibration/asnorm100_mean_trials.calibration.txt")
    golden_llrs = apply_qmf(golden_model, evaluation.features)
    is_target = read_score_file(golden_scoring_full / "scores/cali_asnorm100_mean.score.txt").is_target
    assert cllr(apply_qmf(result.state_dict, evaluation.features), is_target) == pytest.approx(
        cllr(golden_llrs, is_target), abs=2e-3)
    save_qmf_model(tmp_path / "model.pt", result.state_dict)
    for key, value in load_qmf_model(tmp_path / "model.pt").items():
        assert torch.equal(value, result.state_dict[key])


def test_entry_point_reproduces_golden_model_bit_for_bit(golden_scoring_full, golden_model, tmp_path):
    """``wespk.bin.calibrate`` runs MKL in its reproducible mode: WeSpeaker's model on any x86 CPU."""
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    factors = golden_scoring_full / "calibration/asnorm100_mean_cali_trials.calibration.txt"
    proc = subprocess.run([sys.executable, "-m", "wespk.bin.calibrate", "train", "--factors", str(factors),
                           "--model", str(tmp_path / "model.pt")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(43 LBFGS steps)" in proc.stdout + proc.stderr
    model = load_qmf_model(tmp_path / "model.pt")
    assert set(model) == set(golden_model)
    for key, value in golden_model.items():
        assert model[key].dtype == torch.float64
        assert torch.equal(model[key], value), key


def test_calibrated_scores_match_golden(golden_scoring_full, golden_model, tmp_path):
    factors = read_factors(golden_scoring_full / "calibration/asnorm100_mean_trials.calibration.txt")
    golden_path = golden_scoring_full / "scores/cali_asnorm100_mean.score.txt"
    golden = read_score_file(golden_path)
    # WeSpeaker rounds the weights to float32 at inference: reproduced on request, to the last bits of
    # the float64 products (which depend on MKL's kernels for this CPU in this process) ...
    float32_llrs = apply_qmf(golden_model, factors.features, float32_weights=True)
    assert np.max(np.abs(float32_llrs - golden.scores)) <= 1e-12
    # ... and byte for byte through the entry point, which runs MKL in its reproducible mode
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "wespk.bin.calibrate", "apply", "--float32_weights",
                           "--model", str(golden_scoring_full / "calibration/calibration_model.pt"),
                           "--factors", str(golden_scoring_full / "calibration/asnorm100_mean_trials.calibration.txt"),
                           "--output", str(tmp_path / "cali")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cali").read_text() == golden_path.read_text()
    write_calibrated_scores(tmp_path / "cali_in_process", factors, float32_llrs)
    assert read_score_file(tmp_path / "cali_in_process").enroll == golden.enroll
    llrs = apply_qmf(golden_model, factors.features)
    assert np.max(np.abs(llrs - golden.scores)) <= 1e-6
    # calibrated scores have a much lower Cllr than the raw AS-norm scores (NOTES.md: 0.350 -> 0.162)
    assert cllr(factors.features[:, 0], golden.is_target) == pytest.approx(0.350, abs=1e-3)
    assert cllr(llrs, golden.is_target) == pytest.approx(0.162, abs=5e-4)


def test_feature_layout_and_values():
    from wespk.scoring.score_files import ScoreTable

    table = ScoreTable(path="normed", enroll=["a"], test=["b"], scores=np.array([1.5]), score_text=["1.50000"],
                       labels=["target"], line_numbers=np.array([1]), quality=np.array([[12.0, 10.0, 0.2, 0.1]]))
    factors = gather_factors(table, {"a": 30.0, "b": 4.0}, max_dur=20)
    assert [column[0] for column in factors.text_columns()] == [
        "1.50000", "4.0000", "20.0000", "16.0000", "5.0000",
        "10.0000", "12.0000", "2.0000", "1.2000", "0.1000", "0.2000", "0.1000", "2.0000"]
    without = gather_factors(table, None)
    assert without.num_features == 9 and without.feature_names[1] == "mag_min"


def test_gather_entry_point_gives_the_golden_factors_without_importing_torch(golden_scoring, tmp_path):
    # gathering needs no model: the entry point reaches the torch parts only when it fits or applies one
    score_name = "asnorm100_mean"
    code = ("import sys; from wespk.bin.calibrate import main; "
            f"rc = main(['gather', '--utt2dur', {str(golden_scoring / 'utt2dur.txt')!r}, "
            f"'--input', {str(golden_scoring / f'scores/{score_name}.score.txt')!r}, "
            f"'--output', {str(tmp_path / 'factors')!r}]); "
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"], done.stderr
    golden_path = golden_scoring / f"calibration/{FACTOR_FILES[score_name]}.calibration.txt"
    assert (tmp_path / "factors").read_text() == golden_path.read_text()


def test_gather_errors_name_the_line(golden_scoring, tmp_path):
    table = read_score_norm_file(golden_scoring / "scores/asnorm100_mean.score.txt")
    durations = read_durations(golden_scoring / "utt2dur.txt")
    first_test = table.test[0]
    del durations[first_test]
    with pytest.raises(DataFileError, match=f":1: no duration \\(utt2dur\\) for '{first_test}'"):
        gather_factors(table, durations)
    zero = tmp_path / "zero"
    zero.write_text("a b 1.0 target 10.0 11.0 0.0000 0.1\n")
    with pytest.raises(DataFileError, match=":1: cohort mean: the smaller value is 0"):
        gather_factors(read_score_norm_file(zero), None)


def test_training_from_own_pipeline_factors_is_close(golden_scoring_full, golden_embeddings, tmp_path):
    """Loose check: factors recomputed from our own AS-norm give a model as good as the golden one."""
    from wespk.scoring.cosine import EmbeddingSet, mean_embedding, prepare_embeddings, score_trials
    from wespk.io.trials import read_trials
    from wespk.scoring.score_files import write_score_norm_file
    from wespk.scoring.score_norm import asnorm

    root = golden_scoring_full
    cohort_utts = EmbeddingSet.from_scp(golden_embeddings.cohort_utts)
    eval_set = EmbeddingSet.from_scp(golden_embeddings.eval)
    cohort = EmbeddingSet.from_scp(golden_embeddings.cohort)
    mean_vec = mean_embedding(cohort_utts.matrix)
    durations = read_durations(root / "utt2dur.txt")
    factor_tables = {}
    for name, trials_file, embeddings in (("cali", "cali_trials.txt", cohort_utts), ("eval", "trials.txt", eval_set)):
        trials = read_trials(root / "trials" / trials_file)
        scores, enroll, test = score_trials(trials, embeddings, mean_vec)
        scores = np.round(scores, 5)  # the score file holds 5 decimals
        result = asnorm(scores, enroll, test, prepare_embeddings(embeddings.matrix, mean_vec),
                        prepare_embeddings(cohort.matrix, mean_vec), 100, progress=False)
        path = tmp_path / f"{name}.normed"
        write_score_norm_file(path, trials.enroll, trials.test, result.scores, trials.labels, result.magnitude[enroll],
                              result.magnitude[test], result.mean[enroll], result.mean[test])
        factor_tables[name] = gather_factors(read_score_norm_file(path), durations)
    trained = train_qmf_on_factors(factor_tables["cali"])
    assert trained.final_cllr == pytest.approx(0.1225, abs=0.01)
    eval_factors = factor_tables["eval"]
    is_target = np.array([label == "target" for label in eval_factors.labels])
    assert cllr(apply_qmf(trained.state_dict, eval_factors.features), is_target) == pytest.approx(0.162, abs=0.01)


def test_training_separates_classes_and_needs_both():
    rng = np.random.default_rng(7)
    labels = rng.random(400) < 0.3
    scores = np.where(labels, 2.0, -2.0) + rng.standard_normal(400)
    features = np.stack([scores, rng.uniform(1, 2, 400)], axis=1)
    result = train_qmf(features, labels)
    llrs = apply_qmf(result.state_dict, features)
    assert result.final_cllr < result.initial_cllr
    assert cllr(llrs, labels) == pytest.approx(result.final_cllr, abs=1e-9)
    with pytest.raises(ValueError, match="both target and non-target"):
        train_qmf(features, np.ones(400, bool))
    with pytest.raises(ValueError, match="expects 2 features"):
        apply_qmf(result.state_dict, features[:, :1])


def test_unlabelled_trials_are_applied_but_not_trained(golden_scoring, golden_model, tmp_path):
    lines = (golden_scoring / "scores/asnorm100_mean.score.txt").read_text().splitlines()[:20]
    unlabelled = tmp_path / "normed"
    unlabelled.write_text("".join(" ".join(f[:3] + f[4:]) + "\n" for f in (line.split() for line in lines)))
    factors = gather_factors(read_score_norm_file(unlabelled), read_durations(golden_scoring / "utt2dur.txt"))
    assert set(factors.labels) == {"unknown"}
    write_factors(tmp_path / "factors", factors)
    assert read_factors(tmp_path / "factors").labels == factors.labels
    with pytest.raises(DataFileError, match=":1: 20 trials have no label"):
        train_qmf_on_factors(read_factors(tmp_path / "factors"))
    write_calibrated_scores(tmp_path / "cali", factors, apply_qmf(golden_model, factors.features))
    assert [len(line.split()) for line in (tmp_path / "cali").read_text().splitlines()] == [3] * 20


def test_training_divergence_is_reported():
    import numpy as np
    import pytest

    from wespk.scoring.calibration import train_qmf
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 3))
    features[:, 2] *= 1e6          # a max/min ratio blown up by a near-zero minimum
    is_target = rng.random(200) < 0.5
    with pytest.raises(ValueError, match="QMF training diverged.*feature 2"):
        train_qmf(features, is_target)


def test_lap_features_are_log_durations_norms_and_std_of_raw_embeddings(golden_scoring, golden_embeddings):
    from wespk.scoring.cosine import EmbeddingSet

    table = read_score_norm_file(golden_scoring / "scores/asnorm100_mean.score.txt")
    durations = read_durations(golden_scoring / "utt2dur.txt")
    embeddings = EmbeddingSet.from_scps([golden_embeddings.eval, golden_embeddings.cohort_utts])
    factors = gather_factors(table, durations, feature_set="lap", embeddings=embeddings)
    assert factors.feature_names == ("score", "log_dur_enroll", "log_dur_test", "l1_enroll", "l2_enroll", "l1_test",
                                     "l2_test", "std_enroll", "std_test")
    np.testing.assert_array_equal(factors.features[:, 0], table.scores)
    for row in (0, 57, len(table) - 1):
        enroll = embeddings.matrix[embeddings.row_of[table.enroll[row]]].astype(np.float64)
        test = embeddings.matrix[embeddings.row_of[table.test[row]]].astype(np.float64)
        expected = [np.log(durations[table.enroll[row]]), np.log(durations[table.test[row]]),
                    np.linalg.norm(enroll, 1), np.linalg.norm(enroll), np.linalg.norm(test, 1), np.linalg.norm(test),
                    np.std(enroll), np.std(test)]
        assert np.abs(factors.features[row, 1:] - expected).max() <= 5e-5 + 1e-9  # written with 4 decimals
    assert all(len(text[0].split(".")[1]) == 4 for text in factors.text_columns()[1:])
    # without durations: score and the six embedding measures
    assert gather_factors(table, None, feature_set="lap", embeddings=embeddings).num_features == 7
    with pytest.raises(ValueError, match="raw embeddings"):
        gather_factors(table, durations, feature_set="lap")


def test_calibrate_run_with_lap_features(golden_scoring, golden_embeddings, tmp_path):
    from .conftest import run_cli

    scores = golden_scoring / "scores"
    common = ["--utt2dur", golden_scoring / "utt2dur.txt", "--features", "lap",
              "--embeddings", golden_embeddings.eval, golden_embeddings.cohort_utts]
    result = run_cli("wespk.bin.calibrate", "run", *common, "--cali_input", scores / "cali_trials_asnorm100_mean.score.txt",
                     "--model", tmp_path / "lap.pt", "--input", scores / "asnorm100_mean.score.txt",
                     "--output", tmp_path / "eval.qmf.score", "--factors_dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_qmf_model(tmp_path / "lap.pt")["linear.weight"].shape == (1, 9)
    factor_file = tmp_path / "asnorm100_mean.score.txt.calibration"
    assert len(factor_file.read_text().split("\n", 1)[0].split()) == 12
    assert read_factors(factor_file, "lap").feature_names[-1] == "std_test"
    # the factor file read back gives the same calibrated scores as the run
    again = run_cli("wespk.bin.calibrate", "apply", "--features", "lap", "--model", tmp_path / "lap.pt",
                    "--factors", factor_file, "--output", tmp_path / "again.score")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.score").read_text() == (tmp_path / "eval.qmf.score").read_text()
    # on its own calibration trials the fit lowers Cllr (200 trials are too few to judge the evaluation list)
    cali_factors = read_factors(tmp_path / "cali_trials_asnorm100_mean.score.txt.calibration", "lap")
    is_target = np.array([label == "target" for label in cali_factors.labels])
    llrs = apply_qmf(load_qmf_model(tmp_path / "lap.pt"), cali_factors.features)
    assert cllr(llrs, is_target) < 0.5 * cllr(cali_factors.features[:, 0], is_target)
    missing = run_cli("wespk.bin.calibrate", "gather", "--utt2dur", golden_scoring / "utt2dur.txt", "--features", "lap",
                      "--input", scores / "asnorm100_mean.score.txt", "--output", tmp_path / "x")
    assert missing.returncode == 1 and "--features lap needs --embeddings" in missing.stderr
