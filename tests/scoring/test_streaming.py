"""calibrate and compute_metrics read score files a piece at a time: the same output as reading them whole."""

import numpy as np
import torch

from wespk.scoring.calibration import (calibrate_score_file, gather_factors, iter_factor_blocks, apply_qmf,
                                       write_calibrated_scores, write_factors)
from wespk.scoring.calibration_trials import read_durations
from wespk.scoring.score_files import read_score_file, read_score_norm_file, read_scores_and_targets

from .conftest import run_cli

GOLDEN_MODEL = "calibration/calibration_model.pt"


def test_calibrated_file_streamed_equals_the_whole_table(golden_scoring, tmp_path):
    score_norm = golden_scoring / "scores/asnorm100_mean.score.txt"
    durations = read_durations([golden_scoring / "utt2dur.txt"])
    state = torch.load(golden_scoring / GOLDEN_MODEL, weights_only=True)
    factors = gather_factors(read_score_norm_file(score_norm), durations)
    write_calibrated_scores(tmp_path / "whole.score", factors, apply_qmf(state, factors.features))
    write_factors(tmp_path / "whole.calibration", factors)
    # pieces of about 1 kB (a dozen lines) and blocks larger than the file: the same bytes
    result = calibrate_score_file(state, score_norm, tmp_path / "streamed.score", durations,
                                  factors_path=tmp_path / "streamed.calibration", chunk_bytes=1000)
    assert (tmp_path / "streamed.score").read_bytes() == (tmp_path / "whole.score").read_bytes()
    assert (tmp_path / "streamed.calibration").read_bytes() == (tmp_path / "whole.calibration").read_bytes()
    assert len(result.llrs) == len(factors) == 200 and result.is_target.sum() == sum(
        label == "target" for label in factors.labels)
    # blocks of 64 trials (the apply is cut there): the factors are the same, the llrs to the last bits
    blocks = list(iter_factor_blocks(score_norm, durations, rows=64, chunk_bytes=1000))
    assert [len(b) for b in blocks] == [64, 64, 64, 8]
    assert np.array_equal(np.concatenate([b.features for b in blocks]), factors.features)
    assert [line for b in blocks for line in b.line_numbers] == list(factors.line_numbers)
    result = calibrate_score_file(state, score_norm, tmp_path / "blocks.score", durations, rows=64, chunk_bytes=1000)
    whole, streamed = read_score_file(tmp_path / "whole.score"), read_score_file(tmp_path / "blocks.score")
    assert streamed.enroll == whole.enroll and streamed.test == whole.test and streamed.labels == whole.labels
    np.testing.assert_allclose(streamed.scores, whole.scores, rtol=1e-14, atol=1e-14)


def test_calibrate_run_cli_streams_and_keeps_factor_files(golden_scoring, tmp_path):
    scores = golden_scoring / "scores"
    result = run_cli("wespk.bin.calibrate", "run", "--utt2dur", golden_scoring / "utt2dur.txt",
                     "--cali_input", scores / "cali_trials_asnorm100_mean.score.txt", "--model", tmp_path / "m.pt",
                     "--input", scores / "asnorm100_mean.score.txt", "--output", tmp_path / "qmf.score",
                     "--factors_dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(calibrated)" in result.stdout
    golden_factors = golden_scoring / "calibration/asnorm100_mean_trials.calibration.txt"
    assert (tmp_path / "asnorm100_mean.score.txt.calibration").read_bytes() == golden_factors.read_bytes()
    assert len((tmp_path / "qmf.score").read_text().splitlines()) == 200


def test_scores_and_targets_read_in_pieces(golden_scoring):
    path = golden_scoring / "scores/cosine_mean.score.txt"
    table = read_score_file(path, require_labels=True)
    scores, is_target = read_scores_and_targets(path, chunk_bytes=500)
    assert np.array_equal(scores, table.scores) and np.array_equal(is_target, table.is_target)
