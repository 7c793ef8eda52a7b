"""The bulk (byte-span) paths of score, score_norm and the score-file readers against the string paths.

Each list mixes plain-ASCII pieces (bulk path) with a piece holding a UTF-8
key (string path), read in small pieces, so both paths and their seams are
exercised; the outputs must be byte-identical to the in-memory string
writers, and the errors the same.
"""

import re

import numpy as np
import pytest

from wespk.io.embeddings import write_embeddings
from wespk.io.files import DataFileError
from wespk.io.trials import read_trials
from wespk.scoring.cosine import EmbeddingSet, l2_normalize_rows, prepare_embeddings, score_trial_file, score_trials
from wespk.scoring.score_files import (read_score_file, read_scores_and_targets, write_score_file,
                                       write_score_norm_file)
from wespk.scoring.score_norm import asnorm, normalize_score_files

CHUNK = 2048  # bytes: about 40 trial lines per piece


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bulk")
    rng = np.random.default_rng(11)
    keys = [f"id{i % 37:05d}/v{i % 5}/{i:05d}.wav" for i in range(400)] + ["spk\u00e9/utt1.wav"]
    matrix = (rng.standard_normal((len(keys), 32)) + 0.5).astype(np.float32)
    write_embeddings(directory / "e.ark", directory / "e.scp", zip(keys, matrix))
    cohort = (rng.standard_normal((60, 32)) + 0.5).astype(np.float32)
    write_embeddings(directory / "c.ark", directory / "c.scp", ((f"c{i}", v) for i, v in enumerate(cohort)))
    lines = []
    for i in range(1500):
        a, b = rng.integers(0, 400, 2)
        lines.append(f"{keys[a]} {keys[b]} {'target' if i % 4 == 0 else 'nontarget'}\n")
    lines[700] = f"{keys[-1]} {keys[3]} target\n"
    (directory / "trials").write_text("".join(lines))
    return directory, keys, matrix, cohort


def test_score_trial_file_bulk_equals_string_writer(data, tmp_path):
    directory, keys, matrix, _ = data
    embeddings = EmbeddingSet.from_scp(directory / "e.scp")
    mean = matrix.mean(axis=0)
    score_trial_file(directory / "trials", tmp_path / "bulk.score", embeddings, mean, chunk_bytes=CHUNK)
    trials = read_trials(directory / "trials")
    scores, _, _ = score_trials(trials, embeddings, mean)
    write_score_file(tmp_path / "ref.score", trials.enroll, trials.test, scores, trials.labels)
    assert (tmp_path / "bulk.score").read_bytes() == (tmp_path / "ref.score").read_bytes()


def test_normalize_score_files_bulk_equals_string_writer(data, tmp_path):
    directory, keys, matrix, cohort = data
    embeddings = EmbeddingSet.from_scp(directory / "e.scp")
    mean = matrix.mean(axis=0)
    score_trial_file(directory / "trials", tmp_path / "cos.score", embeddings, mean)
    eval_matrix = prepare_embeddings(matrix, mean)
    cohort_matrix = prepare_embeddings(cohort, mean)
    normalize_score_files([tmp_path / "cos.score"], [tmp_path / "bulk.asnorm"], embeddings.lookup_keys, "e.scp",
                          eval_matrix, cohort_matrix, 20, progress=False, chunk_bytes=CHUNK)
    table = read_score_file(tmp_path / "cos.score")
    enroll = np.array([embeddings.row_of[k] for k in table.enroll])
    test = np.array([embeddings.row_of[k] for k in table.test])
    result = asnorm(table.scores, enroll, test, eval_matrix, cohort_matrix, 20, progress=False)
    write_score_norm_file(tmp_path / "ref.asnorm", table.enroll, table.test, result.scores, table.labels,
                          result.magnitude[enroll], result.magnitude[test], result.mean[enroll], result.mean[test])
    assert (tmp_path / "bulk.asnorm").read_bytes() == (tmp_path / "ref.asnorm").read_bytes()
    # and the reader gives the same scores and targets as the whole-table reader
    scores, targets = read_scores_and_targets(tmp_path / "bulk.asnorm", chunk_bytes=CHUNK)
    whole = read_score_file(tmp_path / "bulk.asnorm")
    assert np.array_equal(scores, whole.scores) and np.array_equal(targets, whole.is_target)


def test_bulk_reader_parses_every_number_form(tmp_path):
    path = tmp_path / "odd.score"
    # plain decimals (parsed exactly in bulk), every spelling float() takes, and the 17-digit reprs of
    # calibrated scores (both through numpy's bytes -> float64 conversion)
    rng = np.random.default_rng(3)
    values = (["0.12345", "-3", "1e-05", "-2.5E+3", "12345678901234567.5", ".5", "007.25", "+1", "1.", "1_0",
               "4.9e-324", "1e-400", "0.1000000000000000055511151231257827"]
              + [repr(v) for v in (rng.standard_normal(500) * 10.0 ** rng.integers(-8, 8, 500)).tolist()]
              + ["-0.00000"])
    path.write_text("".join(f"a{i} b{i} {v} {'target' if i % 2 else 'nontarget'}\n" for i, v in enumerate(values)))
    scores, targets = read_scores_and_targets(path)
    assert np.array_equal(scores.view(np.int64), np.array([float(v) for v in values]).view(np.int64))
    assert np.signbit(scores[-1])
    assert targets.tolist() == [bool(i % 2) for i in range(len(values))]


@pytest.mark.parametrize("bad, message", [
    ("a9 b9 0.5 tarjet\n", ":10: label must be 'target' or 'nontarget' (field 4), got 'tarjet'"),
    ("a9 b9 0.5x target\n", ":10: score (field 3) is not a number: '0.5x'"),
    ("a9 b9 inf target\n", ":10: score (field 3) is not finite: 'inf'"),
    ("a9 b9 0.5\n", ":10: score file line has 3 fields but line 1 has 4"),
])
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 64])  # one piece; pieces of two lines, parsed on threads
def test_bulk_reader_errors_name_file_and_line(tmp_path, bad, message, chunk_bytes):
    lines = [f"a{i} b{i} 0.{i} target\n" for i in range(20)]
    lines[9] = bad
    path = tmp_path / "bad.score"
    path.write_text("".join(lines))
    with pytest.raises(DataFileError, match=re.escape(message)) as error:
        read_scores_and_targets(path, chunk_bytes=chunk_bytes)
    assert str(path) in str(error.value)


def test_missing_key_in_a_bulk_piece_names_the_line(data, tmp_path):
    directory, keys, _, _ = data
    embeddings = EmbeddingSet.from_scp(directory / "e.scp")
    lines = [f"{keys[i]} {keys[i + 1]} target\n" for i in range(100)]
    lines[61] = f"{keys[0]} nobody/utt.wav nontarget\n"
    (tmp_path / "trials").write_text("".join(lines))
    with pytest.raises(DataFileError, match=r":62: test key 'nobody/utt.wav' has no embedding"):
        score_trial_file(tmp_path / "trials", tmp_path / "out.score", embeddings, chunk_bytes=CHUNK)
    assert not (tmp_path / "out.score").exists()


def test_unit_rows_equal_normalised_prepared_rows(data):
    _, _, matrix, _ = data
    from wespk.scoring.cosine import unit_rows

    mean = matrix.mean(axis=0)
    original = matrix.copy()
    for mean_vec, length_norm in ((mean, False), (None, False), (mean, True), (None, True)):
        expected = l2_normalize_rows(prepare_embeddings(matrix, mean_vec, length_norm))
        assert np.array_equal(unit_rows(matrix, mean_vec, length_norm), expected)
        assert np.array_equal(matrix, original)  # not in place: the input is left as it was
        own = matrix.copy()
        result = unit_rows(own, mean_vec, length_norm, in_place=True)
        assert result is own and np.array_equal(own, expected)
    with pytest.raises(ValueError, match="writable float32"):
        unit_rows(matrix.astype(np.float64), mean, in_place=True)
    frozen = matrix.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable float32"):
        unit_rows(frozen, None, in_place=True)


def test_score_cli_scores_several_lists_from_one_in_place_preparation(data, tmp_path):
    # the entry point normalises the embeddings in place once: every list must still get the scores that
    # score_trial_file gives from the untouched set
    from wespk.bin.score import main

    directory, _, matrix, _ = data
    np.save(tmp_path / "mean.npy", matrix.mean(axis=0))
    trials = directory / "trials"
    assert main(["--embeddings", str(directory / "e.scp"), "--trials", str(trials), "--trials", str(trials),
                 "--output", str(tmp_path / "a.score"), "--output", str(tmp_path / "b.score"),
                 "--mean_vec", str(tmp_path / "mean.npy")]) == 0
    embeddings = EmbeddingSet.from_scp(directory / "e.scp")
    score_trial_file(trials, tmp_path / "ref.score", embeddings, np.load(tmp_path / "mean.npy"))
    reference = (tmp_path / "ref.score").read_bytes()
    assert (tmp_path / "a.score").read_bytes() == reference
    assert (tmp_path / "b.score").read_bytes() == reference


def test_calibrate_bulk_equals_string_path_across_pieces_and_blocks(golden_scoring, tmp_path):
    """Blocks of 64 trials cut across pieces of 1 kB, with one non-ASCII piece: the bulk path writes the
    bytes of the string path (which a factor file forces) and of the whole table."""
    import torch

    from wespk.scoring.calibration import apply_qmf, calibrate_score_file, gather_factors, write_calibrated_scores
    from wespk.scoring.calibration_trials import read_durations
    from wespk.scoring.score_files import read_score_norm_file

    lines = (golden_scoring / "scores/asnorm100_mean.score.txt").read_text().splitlines(keepends=True)
    durations = read_durations([golden_scoring / "utt2dur.txt"])
    first = lines[0].split()
    durations["\u00e9l\u00e8ve"] = 3.5
    lines.insert(90, " ".join(["\u00e9l\u00e8ve", *first[1:]]) + "\n")
    path = tmp_path / "mixed.score"
    path.write_text("".join(lines))
    state = torch.load(golden_scoring / "calibration/calibration_model.pt", weights_only=True)
    for rows in (64, 1 << 20):
        calibrate_score_file(state, path, tmp_path / "bulk.score", durations, rows=rows, chunk_bytes=1000)
        calibrate_score_file(state, path, tmp_path / "string.score", durations, rows=rows, chunk_bytes=1000,
                             factors_path=tmp_path / "f.calibration")
        assert (tmp_path / "bulk.score").read_bytes() == (tmp_path / "string.score").read_bytes()
    factors = gather_factors(read_score_norm_file(path), durations)
    write_calibrated_scores(tmp_path / "whole.score", factors, apply_qmf(state, factors.features))
    assert (tmp_path / "bulk.score").read_bytes() == (tmp_path / "whole.score").read_bytes()
    del durations[first[0]]
    with pytest.raises(DataFileError, match=f"no duration \\(utt2dur\\) for '{first[0]}'"):
        calibrate_score_file(state, path, tmp_path / "missing.score", durations, chunk_bytes=1000)
    assert not (tmp_path / "missing.score").exists()


def test_statistics_of_all_rows_when_nearly_all_are_used_and_unused_rows_do_not_matter():
    """With >= 90 % of the rows used, every row's statistics are computed (no copy); an unused all-zero row
    must not make it fail, and the used rows get the same bits either way."""
    from wespk.scoring.score_norm import used_row_statistics

    rng = np.random.default_rng(5)
    embeddings = rng.standard_normal((50, 16)).astype(np.float32)
    cohort = rng.standard_normal((30, 16)).astype(np.float32)
    embeddings[7] = 0  # unused
    used = np.delete(np.arange(50), [7, 20])
    mean, std, _ = used_row_statistics(embeddings, used, cohort, 10, progress=False)
    few = used[:10]
    few_mean, few_std, _ = used_row_statistics(embeddings, few, cohort, 10, progress=False)  # only these rows
    assert np.array_equal(mean[few], few_mean[few]) and np.array_equal(std[few], few_std[few])
    assert np.isnan(mean[7]) and np.isnan(mean[20]) and np.isfinite(mean[used]).all()


def test_durations_bulk_reader_gives_the_values_and_errors_of_the_line_reader(tmp_path):
    """utt2dur files read in bulk hold the doubles ``float()`` gives for every spelling of a number; the
    files the bulk reader leaves to the line reader (repeated key, three fields, a word) keep its errors."""
    from wespk.scoring import calibration_trials
    from wespk.scoring.calibration_trials import read_durations

    rng = np.random.default_rng(5)
    values = ([f"{v:.2f}" for v in rng.uniform(0.5, 30, 300)] + [repr(v) for v in rng.uniform(0, 1, 50).tolist()]
              + ["3.", ".5", "-0.0", "1e1", "2.5E-1", "1_0", "inf", "0001.2500", "12345678901234567.5"])
    keys = [f"id{i:04d}/u{i}.wav" for i in range(len(values))]
    path = tmp_path / "utt2dur"
    path.write_text("".join(f"{k}  {v}\r\n" if i % 7 == 0 else f"{k} {v}\n" for i, (k, v) in
                            enumerate(zip(keys, values))) + "\n")
    assert calibration_trials._bulk_durations(path) is not None  # the bulk path is the one tested
    durations = read_durations(path)
    assert list(durations) == keys
    assert [durations[k] for k in keys] == [float(v) for v in values]  # the same doubles, not approximations
    # several files: the first value of a key wins, in bulk as in the line reader
    other = tmp_path / "utt2dur.2"
    other.write_text(f"{keys[0]} 99.0\nnew/utt.wav 4.25\n")
    both = read_durations([path, other])
    assert both[keys[0]] == float(values[0]) and both["new/utt.wav"] == 4.25 and len(both) == len(keys) + 1
    for text, message in ((f"{keys[0]} 1.0\n{keys[1]} 2.0\n{keys[0]} 3.0\n", ":3: duplicate key"),
                          ("a 1.0\nb 2.0 extra\n", ":2: duration of 'b' is not a number: '2.0 extra'"),
                          ("a 1.0\nb two\n", ":2: duration of 'b' is not a number: 'two'")):
        path.write_text(text)
        assert calibration_trials._bulk_durations(path) is None
        with pytest.raises(DataFileError, match=re.escape(message)):
            read_durations(path)
