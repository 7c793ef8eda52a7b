"""Cosine scoring, the mean vector and speaker means against WeSpeaker's golden outputs.

Tolerances are those of shared/golden/README.md section 3. Values written
with 5 decimals can differ by one unit of the last decimal where our float32
cosine and sklearn's land on either side of a rounding boundary, hence the
1e-9 slack on top of 1e-5.
"""

import numpy as np
import pytest
import torch

from wespk.io.embeddings import read_embeddings
from wespk.io.files import DataFileError, read_spk2utt
from wespk.scoring.cohort import speaker_means
from wespk.scoring.cosine import (EmbeddingSet, cosine_scores, l2_normalize_rows, load_mean_vector, mean_embedding,
                                  mean_from_scp, prepare_embeddings, save_mean_vector, score_trials)
from wespk.io.trials import read_trials
from wespk.scoring.score_files import read_score_file

ROUNDED = 1e-5 + 1e-9


def test_mean_vec_matches_golden_bit_for_bit(golden_scoring, golden_embeddings):
    mean_vec = mean_from_scp(golden_embeddings.cohort_utts)
    golden = torch.load(golden_scoring / "embeddings/cohort/mean_vec.pt", weights_only=True).numpy()
    assert mean_vec.dtype == np.float32
    np.testing.assert_array_equal(mean_vec, golden)
    golden_text = np.loadtxt(golden_scoring / "embeddings/cohort/mean_vec.txt")
    assert np.max(np.abs(mean_vec - golden_text)) <= 1e-5


def test_mean_embedding_is_sequential_float32():
    rng = np.random.default_rng(3)
    matrix = (rng.standard_normal((1000, 16)) * 50 + 3).astype(np.float32)
    total = np.zeros(16, dtype=np.float32)
    for row in matrix:
        total += row
    np.testing.assert_array_equal(mean_embedding(matrix), total / np.float32(1000))
    # and it is really float32 accumulation, not float64 (which differs on this data)
    assert not np.array_equal(mean_embedding(matrix), (matrix.astype(np.float64).mean(0)).astype(np.float32))


@pytest.mark.parametrize("with_mean, golden_name", [(False, "nomean"), (True, "mean")])
def test_cosine_matches_golden(golden_scoring, golden_embeddings, with_mean, golden_name):
    trials = read_trials(golden_scoring / "trials/trials.txt")
    embeddings = EmbeddingSet.from_scp(golden_embeddings.eval)
    mean_vec = mean_from_scp(golden_embeddings.cohort_utts) if with_mean else None
    scores, _, _ = score_trials(trials, embeddings, mean_vec)
    full = torch.load(golden_scoring / "scores/fullprec_stats.pt", weights_only=True)
    # the committed subset holds the first lines of the 2,000-trial list; the full-precision cosines all of them
    assert np.max(np.abs(scores - full[f"cosine_fullprec_{golden_name}"].numpy()[:len(scores)])) <= 1e-6
    golden = read_score_file(golden_scoring / f"scores/cosine_{golden_name}.score.txt")
    assert golden.enroll == trials.enroll and golden.labels == trials.labels
    assert np.max(np.abs(scores - golden.scores)) <= ROUNDED


def test_calibration_trial_cosine_matches_golden(golden_scoring, golden_embeddings):
    trials = read_trials(golden_scoring / "trials/cali_trials.txt")
    embeddings = EmbeddingSet.from_scp(golden_embeddings.cohort_utts)
    scores, _, _ = score_trials(trials, embeddings, mean_embedding(embeddings.matrix))
    golden = read_score_file(golden_scoring / "scores/cali_trials_cosine_mean.score.txt")
    assert np.max(np.abs(scores - golden.scores)) <= ROUNDED


def test_cosine_equals_pairwise_definition_in_every_chunking():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((50, 8)).astype(np.float32)
    enroll, test = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    expected = [float(np.dot(matrix[a], matrix[b]) / np.linalg.norm(matrix[a]) / np.linalg.norm(matrix[b]))
                for a, b in zip(enroll, test)]
    single = cosine_scores(matrix, enroll, test, chunk_trials=7, threads=1)
    for chunk in (1, 7, 1000):
        for threads in (1, 2):
            scores = cosine_scores(matrix, enroll, test, chunk_trials=chunk, threads=threads)
            np.testing.assert_allclose(scores, expected, atol=1e-6)
            # each trial's dot product is the same whichever chunk or thread computes it
            np.testing.assert_array_equal(scores, single)


def test_length_norm_normalises_before_the_mean():
    rng = np.random.default_rng(1)
    matrix = (rng.standard_normal((20, 6)) * rng.uniform(0.5, 5, (20, 1))).astype(np.float32)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    mean_vec = mean_embedding(l2_normalize_rows(matrix))
    np.testing.assert_allclose(mean_vec, unit.mean(0), atol=1e-6)
    np.testing.assert_allclose(prepare_embeddings(matrix, mean_vec, length_norm=True), unit - unit.mean(0), atol=1e-6)
    # without length normalisation the result is different on this data
    assert np.max(np.abs(prepare_embeddings(matrix, mean_vec) - (unit - unit.mean(0)))) > 0.1


def test_zero_embedding_scores_zero():
    matrix = np.array([[0, 0], [1, 0], [0, 2]], dtype=np.float32)
    np.testing.assert_array_equal(cosine_scores(matrix, [0, 1], [1, 2]), [0.0, 0.0])


def test_missing_key_names_trial_file_line_and_key(tmp_path):
    trials_path = tmp_path / "trials"
    trials_path.write_text("u1 u2 target\nu1 ghost nontarget\n")
    embeddings = EmbeddingSet("emb.scp", ["u1", "u2"], np.eye(2, dtype=np.float32))
    with pytest.raises(DataFileError) as error:
        score_trials(read_trials(trials_path), embeddings)
    assert str(error.value) == f"{trials_path}:2: test key 'ghost' has no embedding in emb.scp"


def test_mean_vector_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dimension"):
        prepare_embeddings(np.zeros((2, 4), np.float32), np.zeros(3, np.float32))


@pytest.mark.parametrize("name", ["mean.npy", "mean.txt"])
def test_mean_vector_save_and_load(tmp_path, name):
    vector = np.random.default_rng(2).standard_normal(7).astype(np.float32)
    save_mean_vector(tmp_path / name, vector)
    np.testing.assert_array_equal(load_mean_vector(tmp_path / name), vector)


def test_speaker_means_match_golden_spk_xvector(golden_scoring, golden_embeddings):
    utts = EmbeddingSet.from_scp(golden_embeddings.cohort_utts)
    spk2utt = read_spk2utt(golden_scoring / "embeddings/cohort/spk2utt.txt")
    means = speaker_means(spk2utt, utts.row_of, utts.matrix)
    golden_keys, golden_matrix = read_embeddings(golden_embeddings.cohort)
    assert [spk for spk, _ in means] == golden_keys
    np.testing.assert_array_equal(np.stack([vec for _, vec in means]), golden_matrix)


def test_speaker_means_missing_utterance_is_an_error():
    with pytest.raises(DataFileError, match="utterance 'u9' of speaker 's1' has no embedding"):
        speaker_means({"s1": ["u1", "u9"]}, {"u1": 0}, np.ones((1, 3), np.float32), "spk2utt")
