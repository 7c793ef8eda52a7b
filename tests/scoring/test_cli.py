"""The scoring entry points run as a recipe runs them (subprocess), on the golden WeSpeaker files."""

import json
import re

import numpy as np
import pytest
import torch

from wespk.io.embeddings import read_embeddings, write_embeddings
from wespk.io.trials import read_trials
from wespk.scoring.score_files import read_score_file

from .conftest import read_columns, run_cli


def check_ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_score_with_and_without_mean(golden_scoring, golden_embeddings, tmp_path):
    trials = golden_scoring / "trials/trials.txt"
    subset = tmp_path / "first100"
    subset.write_text("".join(trials.read_text().splitlines(keepends=True)[:100]))
    check_ok(run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval, "--trials", trials,
                     "--output", tmp_path / "nomean.score"))
    check_ok(run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval,
                     "--mean_from", golden_embeddings.cohort_utts, "--save_mean", tmp_path / "mean_vec.npy",
                     "--trials", trials, "--output", tmp_path / "mean.score",
                     "--trials", subset, "--output", tmp_path / "subset.score"))
    for ours, golden in (("nomean.score", "cosine_nomean"), ("mean.score", "cosine_mean")):
        mine = read_score_file(tmp_path / ours)
        reference = read_score_file(golden_scoring / f"scores/{golden}.score.txt")
        assert (mine.enroll, mine.test, mine.labels) == (reference.enroll, reference.test, reference.labels)
        assert all(len(s.split(".")[1]) == 5 for s in mine.score_text)
        assert np.max(np.abs(mine.scores - reference.scores)) <= 1e-5 + 1e-9
    assert (tmp_path / "subset.score").read_text().splitlines() == (tmp_path / "mean.score").read_text().splitlines()[:100]
    golden_mean = torch.load(golden_scoring / "embeddings/cohort/mean_vec.pt", weights_only=True).numpy()
    np.testing.assert_array_equal(np.load(tmp_path / "mean_vec.npy"), golden_mean)


def test_score_without_labels_writes_three_columns(golden_scoring, golden_embeddings, tmp_path):
    unlabelled = tmp_path / "trials"
    unlabelled.write_text("".join(" ".join(line.split()[:2]) + "\n"
                                  for line in (golden_scoring / "trials/trials.txt").read_text().splitlines()[:5]))
    check_ok(run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval, "--trials", unlabelled,
                     "--output", tmp_path / "out"))
    assert [len(line.split()) for line in (tmp_path / "out").read_text().splitlines()] == [3] * 5


@pytest.mark.parametrize("method, golden_name", [("asnorm", "asnorm100_mean"), ("snorm", "snorm_mean")])
def test_score_norm(golden_scoring, golden_embeddings, tmp_path, method, golden_name):
    output = tmp_path / f"{method}.score"
    check_ok(run_cli("wespk.bin.score_norm", "--method", method, "--top_n", 100, "--cohort", golden_embeddings.cohort,
                     "--embeddings", golden_embeddings.eval, "--mean_from", golden_embeddings.cohort_utts,
                     "--input", golden_scoring / "scores/cosine_mean.score.txt", "--output", output, "--no_progress"))
    mine = read_score_file(output)
    reference = read_score_file(golden_scoring / f"scores/{golden_name}.score.txt")
    assert (mine.enroll, mine.test, mine.labels) == (reference.enroll, reference.test, reference.labels)
    assert np.max(np.abs(mine.scores - reference.scores)) <= 1e-5 + 1e-9
    assert np.max(np.abs(mine.quality - reference.quality)) <= 1e-4 + 1e-9
    # column formats: 5 decimals for the score, 4 for the rest
    first = output.read_text().split("\n", 1)[0].split()
    assert len(first) == 8 and len(first[2].split(".")[1]) == 5 and all(len(f.split(".")[1]) == 4 for f in first[4:])


def test_calibrate_gather_and_apply(golden_scoring_full, tmp_path):
    scores = golden_scoring_full / "scores"
    check_ok(run_cli("wespk.bin.calibrate", "gather", "--utt2dur", golden_scoring_full / "utt2dur.txt", "--max_dur", 20,
                     "--input", scores / "cali_trials_asnorm100_mean.score.txt", "--output", tmp_path / "cali.factors",
                     "--input", scores / "asnorm100_mean.score.txt", "--output", tmp_path / "eval.factors"))
    golden_factors = golden_scoring_full / "calibration"
    assert (tmp_path / "cali.factors").read_text() == \
        (golden_factors / "asnorm100_mean_cali_trials.calibration.txt").read_text()
    assert (tmp_path / "eval.factors").read_text() == \
        (golden_factors / "asnorm100_mean_trials.calibration.txt").read_text()
    result = check_ok(run_cli("wespk.bin.calibrate", "apply", "--model", golden_factors / "calibration_model.pt",
                              "--float32_weights", "--factors", tmp_path / "eval.factors",
                              "--output", tmp_path / "eval.qmf.score"))
    assert (tmp_path / "eval.qmf.score").read_text() == (scores / "cali_asnorm100_mean.score.txt").read_text()
    assert "Cllr 0.3495 (raw score) -> 0.1617 (calibrated)" in result.stdout
    # straight from the score-norm file (factors gathered on the fly): the same scores
    check_ok(run_cli("wespk.bin.calibrate", "apply", "--model", golden_factors / "calibration_model.pt",
                     "--float32_weights", "--scores", scores / "asnorm100_mean.score.txt",
                     "--utt2dur", golden_scoring_full / "utt2dur.txt", "--output", tmp_path / "direct.qmf.score"))
    assert (tmp_path / "direct.qmf.score").read_text() == (tmp_path / "eval.qmf.score").read_text()


def test_calibrate_run_trains_the_golden_model(golden_scoring_full, tmp_path):
    """``run`` = gather + train + apply; the model equals WeSpeaker's bit for bit."""
    scores = golden_scoring_full / "scores"
    result = check_ok(run_cli("wespk.bin.calibrate", "run", "--utt2dur", golden_scoring_full / "utt2dur.txt",
                              "--cali_input", scores / "cali_trials_asnorm100_mean.score.txt",
                              "--model", tmp_path / "model.pt", "--factors_dir", tmp_path / "factors",
                              "--input", scores / "asnorm100_mean.score.txt", "--output", tmp_path / "eval.qmf.score"))
    assert "after QMF 0.1225 (43 LBFGS steps)" in result.stdout
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    golden_model = torch.load(golden_scoring_full / "calibration/calibration_model.pt", weights_only=True)
    assert set(model) == set(golden_model) and all(torch.equal(model[k], golden_model[k]) for k in golden_model)
    calibrated = read_score_file(tmp_path / "eval.qmf.score")
    reference = read_score_file(scores / "cali_asnorm100_mean.score.txt")
    assert calibrated.labels == reference.labels
    assert np.max(np.abs(calibrated.scores - reference.scores)) <= 1e-6
    assert (tmp_path / "factors/asnorm100_mean.score.txt.calibration").read_text() == \
        (golden_scoring_full / "calibration/asnorm100_mean_trials.calibration.txt").read_text()


def test_compute_metrics_output_plots_and_reports(golden_scoring_full, tmp_path):
    golden = json.loads((golden_scoring_full / "metrics.json").read_text())
    names = list(golden["score_files"])
    files = [golden_scoring_full / golden["score_files"][name] for name in names]
    result = check_ok(run_cli("wespk.bin.compute_metrics", "--auto_calibrated", *files,
                              "--det_png", tmp_path / "det.png", "--hist_png", tmp_path / "hist.png",
                              "--report_md", tmp_path / "report.md", "--json", tmp_path / "metrics.json"))
    blocks = result.stdout.split("---- ")[1:]
    assert len(blocks) == len(files)
    for name, block in zip(names, blocks):
        expected = golden["metrics"][name]
        lines = block.splitlines()
        assert lines[1] == f"EER = {expected['eer_percent']:.3f}%"
        assert lines[2] == f"minDCF(p_target=0.01) = {expected['min_dcf_p0.01']:.4f}"
        assert lines[3] == f"minDCF(p_target=0.05) = {expected['min_dcf_p0.05']:.4f}"
        assert lines[4].startswith("minDCF(p_target=0.001) = ")
        calibrated = name.startswith("cali_")
        assert any(line.startswith("Cllr = ") for line in lines) == calibrated
    assert "Cllr = 0.1617" in blocks[names.index("cali_asnorm100_mean")]
    for png in ("det.png", "hist.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    report = (tmp_path / "report.md").read_text()
    assert "| EER (%) |" in report and "](det.png)" in report and "](hist.png)" in report
    assert f"| {golden['metrics']['cosine_mean']['eer_percent']:.3f} |" in report
    records = json.loads((tmp_path / "metrics.json").read_text())
    for name, record in zip(names, records):
        assert abs(record["eer"] - golden["metrics"][name]["eer"]) <= 1e-9
        assert abs(record["min_dcf"]["0.01"] - golden["metrics"][name]["min_dcf_p0.01"]) <= 1e-9


def test_compute_metrics_custom_p_target(golden_scoring_full):
    result = check_ok(run_cli("wespk.bin.compute_metrics", "--p_target", "0.005",
                              golden_scoring_full / "scores/cosine_mean.score.txt"))
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "EER = 3.132%"
    assert re.fullmatch(r"minDCF\(p_target=0\.005\) = [01]\.\d{4}", lines[2])


def test_speaker_mean(golden_scoring, golden_embeddings, tmp_path):
    check_ok(run_cli("wespk.bin.speaker_mean", "--xvector_scp", golden_embeddings.cohort_utts,
                     "--spk2utt", golden_scoring / "embeddings/cohort/spk2utt.txt",
                     "--output_ark", tmp_path / "spk_xvector.ark"))
    keys, matrix = read_embeddings(tmp_path / "spk_xvector.scp")
    golden_keys, golden_matrix = read_embeddings(golden_embeddings.cohort)
    assert keys == golden_keys
    np.testing.assert_array_equal(matrix, golden_matrix)
    # the same from utt2spk (inverted to C-sorted spk2utt, which is how the golden spk2utt is ordered)
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("".join(f"{utt} {line.split()[0]}\n"
                               for line in (golden_scoring / "embeddings/cohort/spk2utt.txt").read_text().splitlines()
                               for utt in line.split()[1:]))
    check_ok(run_cli("wespk.bin.speaker_mean", "--embeddings", golden_embeddings.cohort_utts, "--utt2spk", utt2spk,
                     "--output_dir", tmp_path / "train_spk"))
    keys, matrix = read_embeddings(tmp_path / "train_spk/xvector.scp")
    assert keys == golden_keys
    np.testing.assert_array_equal(matrix, golden_matrix)


def test_make_calibration_trials_is_seeded(golden_scoring, tmp_path):
    utt2spk = tmp_path / "utt2spk"
    utts = [line.split()[0] for line in (golden_scoring / "utt2dur.txt").read_text().splitlines()]
    utt2spk.write_text("".join(f"{utt} {utt.split('/')[0]}\n" for utt in utts))
    outputs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        result = check_ok(run_cli("wespk.bin.make_calibration_trials", "--utt2spk", utt2spk,
                                  "--utt2dur", golden_scoring / "utt2dur.txt", "--rounds", 50, "--seed", seed,
                                  "--output", tmp_path / name))
        assert "300 calibration trials (150 target)" in result.stdout
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]
    trials = read_trials(tmp_path / "a")
    assert all(e != t for e, t in zip(trials.enroll, trials.test))
    speaker = {utt: utt.split("/")[0] for utt in utts}
    assert [speaker[e] == speaker[t] for e, t in zip(trials.enroll, trials.test)] == list(trials.is_target)


def test_errors_name_file_line_and_key(golden_scoring, golden_embeddings, tmp_path):
    bad_key = tmp_path / "trials_missing"
    bad_key.write_text("id10001/vid00/00001.wav id10002/vid00/00001.wav nontarget\n"
                       "id10001/vid00/00001.wav no/such/utt.wav nontarget\n")
    result = run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval, "--trials", bad_key,
                     "--output", tmp_path / "out")
    assert result.returncode == 1
    assert f"{bad_key}:2: test key 'no/such/utt.wav' has no embedding in {golden_embeddings.eval}" in result.stderr
    assert not (tmp_path / "out").exists()

    malformed = tmp_path / "trials_malformed"
    malformed.write_text("a b target\nc d target extra\n")
    result = run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval, "--trials", malformed,
                     "--output", tmp_path / "out")
    assert result.returncode == 1 and f"{malformed}:2: " in result.stderr and "4 fields" in result.stderr

    small = tmp_path / "cohort32.ark"
    write_embeddings(small, tmp_path / "cohort32.scp", [("s1", np.ones(32)), ("s2", -np.ones(32))])
    result = run_cli("wespk.bin.score_norm", "--method", "snorm", "--cohort", tmp_path / "cohort32.scp",
                     "--embeddings", golden_embeddings.eval, "--input", golden_scoring / "scores/cosine_mean.score.txt",
                     "--output", tmp_path / "normed")
    assert result.returncode == 1 and "has dimension 32" in result.stderr and "have 64" in result.stderr

    result = run_cli("wespk.bin.compute_metrics", tmp_path / "out_missing")
    assert result.returncode == 1 and "file not found" in result.stderr


def test_score_file_columns_stay_in_trial_order(golden_scoring, golden_embeddings, tmp_path):
    shuffled = tmp_path / "shuffled"
    lines = (golden_scoring / "trials/trials.txt").read_text().splitlines()[:50]
    shuffled.write_text("\n".join(reversed(lines)) + "\n")
    check_ok(run_cli("wespk.bin.score", "--embeddings", golden_embeddings.eval, "--trials", shuffled,
                     "--output", tmp_path / "out"))
    assert read_columns(tmp_path / "out", 0, 1) == read_columns(shuffled, 0, 1)
