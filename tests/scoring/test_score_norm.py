"""S-norm / AS-norm against WeSpeaker's golden score_norm.py outputs, and against a naive implementation."""

import numpy as np
import pytest
import torch

from wespk.scoring.cosine import EmbeddingSet, mean_from_scp, prepare_embeddings, score_trials
from wespk.scoring.score_files import index_trial_keys, read_score_file
from wespk.scoring.score_norm import asnorm, cohort_score_stats, normalize_scores, snorm

ROUNDED_5 = 1e-5 + 1e-9
ROUNDED_4 = 1e-4 + 1e-9
GOLDEN_RUNS = {  # golden score-norm file -> (method, input cosine file, trial embeddings)
    "asnorm100_mean": ("asnorm", "cosine_mean", "eval"),
    "snorm_mean": ("snorm", "cosine_mean", "eval"),
    "cali_trials_asnorm100_mean": ("asnorm", "cali_trials_cosine_mean", "cohort_utts"),
}


@pytest.fixture(scope="module")
def prepared(golden_embeddings):
    mean_vec = mean_from_scp(golden_embeddings.cohort_utts)
    sets = {name: EmbeddingSet.from_scp(getattr(golden_embeddings, name)) for name in ("eval", "cohort_utts", "cohort")}
    matrices = {name: prepare_embeddings(s.matrix, mean_vec) for name, s in sets.items()}
    return sets, matrices, mean_vec


def run_golden(golden_scoring, prepared, name, from_unrounded=False):
    sets, matrices, mean_vec = prepared
    method, cosine_name, embedding_name = GOLDEN_RUNS[name]
    table = read_score_file(golden_scoring / f"scores/{cosine_name}.score.txt")
    enroll, test = index_trial_keys(table.trial_list(), sets[embedding_name].row_of, embedding_name)
    scores = table.scores
    if from_unrounded:
        scores, _, _ = score_trials(table.trial_list(), sets[embedding_name], mean_vec)
    if method == "asnorm":
        result = asnorm(scores, enroll, test, matrices[embedding_name], matrices["cohort"], top_n=100, progress=False)
    else:
        result = snorm(scores, enroll, test, matrices[embedding_name], matrices["cohort"], progress=False)
    return result, enroll, test, read_score_file(golden_scoring / f"scores/{name}.score.txt")


@pytest.mark.parametrize("name", sorted(GOLDEN_RUNS))
def test_normalised_scores_from_golden_cosine(golden_scoring, prepared, name):
    result, enroll, test, golden = run_golden(golden_scoring, prepared, name)
    assert np.max(np.abs(result.scores - golden.scores)) <= ROUNDED_5
    # the quality columns: magnitude of the mean-subtracted embedding and the cohort mean
    expected = np.stack([result.magnitude[enroll], result.magnitude[test], result.mean[enroll], result.mean[test]], 1)
    assert np.max(np.abs(expected - golden.quality)) <= ROUNDED_4


@pytest.mark.parametrize("name", sorted(GOLDEN_RUNS))
def test_normalised_scores_from_unrounded_cosine(golden_scoring, prepared, name):
    result, _, _, golden = run_golden(golden_scoring, prepared, name, from_unrounded=True)
    assert np.max(np.abs(result.scores - golden.scores)) <= 2e-4


@pytest.mark.parametrize("golden_key, top_n", [("asnorm100_mean", 100), ("snorm_mean", None)])
def test_cohort_statistics_match_golden(golden_scoring, prepared, golden_key, top_n):
    sets, matrices, _ = prepared
    full = torch.load(golden_scoring / "scores/fullprec_stats.pt", weights_only=True)
    assert full["cohort_list"] == sets["cohort"].keys
    rows = [sets["eval"].row_of[key] for key in full["enroll_list"]]
    mean, std = cohort_score_stats(matrices["eval"][rows], matrices["cohort"], top_n, progress=False)
    assert mean.dtype == np.float32 and std.dtype == np.float32
    assert np.max(np.abs(mean - full[golden_key]["enroll_mean"].numpy())) <= 1e-6
    assert np.max(np.abs(std - full[golden_key]["enroll_std"].numpy())) <= 1e-6


def naive_stats(embeddings, cohort, top_n):
    """The textbook definition: full score matrix, full sort, float64."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    scores = np.sort(e.astype(np.float64) @ c.T.astype(np.float64), axis=1)[:, ::-1][:, :top_n]
    return scores.mean(1), scores.std(1)


def test_chunked_topk_equals_naive_sort():
    rng = np.random.default_rng(5)
    embeddings = rng.standard_normal((37, 12)).astype(np.float32)
    cohort = rng.standard_normal((50, 12)).astype(np.float32)
    expected_mean, expected_std = naive_stats(embeddings, cohort, 9)
    for chunk in (1, 8, 100):
        for threads in (1, 2):
            mean, std = cohort_score_stats(embeddings, cohort, 9, chunk_rows=chunk, progress=False,
                                           threads=threads)
            np.testing.assert_allclose(mean, expected_mean, atol=2e-6)
            np.testing.assert_allclose(std, expected_std, atol=2e-6)
    # top_n >= cohort size means the whole cohort, i.e. S-norm
    whole = cohort_score_stats(embeddings, cohort, 500, progress=False)
    np.testing.assert_array_equal(whole[0], cohort_score_stats(embeddings, cohort, None, progress=False)[0])


def test_normalisation_formula_and_unused_rows():
    scores = np.array([1.0, 0.5])
    mean = np.array([0.1, 0.2, 0.3], np.float32)
    std = np.array([0.5, 0.25, 2.0], np.float32)
    expected = [0.5 * ((1.0 - 0.1) / 0.5 + (1.0 - 0.3) / 2.0), 0.5 * ((0.5 - 0.2) / 0.25 + (0.5 - 0.2) / 0.25)]
    np.testing.assert_allclose(normalize_scores(scores, [0, 1], [2, 1], mean, std), expected, rtol=1e-6)
    rng = np.random.default_rng(6)
    embeddings = rng.standard_normal((5, 4)).astype(np.float32)
    result = asnorm(np.zeros(1), [0], [3], embeddings, rng.standard_normal((10, 4)).astype(np.float32), top_n=4,
                    progress=False)
    assert np.isnan(result.mean[[1, 2, 4]]).all() and not np.isnan(result.mean[[0, 3]]).any()


def test_dimension_mismatch_and_degenerate_cohort_are_errors():
    with pytest.raises(ValueError, match="dimension 4 differs from the cohort's 3"):
        cohort_score_stats(np.ones((2, 4), np.float32), np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match="all-zero"):
        cohort_score_stats(np.zeros((2, 3), np.float32), np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match="zero spread"):
        cohort_score_stats(np.ones((2, 3), np.float32), np.ones((5, 3), np.float32), top_n=2)


def test_stats_do_not_depend_on_row_slicing(monkeypatch):
    import wespk.scoring.score_norm as score_norm
    rng = np.random.default_rng(8)
    embeddings = rng.standard_normal((53, 16)).astype(np.float32)
    cohort = rng.standard_normal((40, 16)).astype(np.float32)
    reference = {top_n: cohort_score_stats(embeddings, cohort, top_n, progress=False, threads=1)
                 for top_n in (7, None)}
    monkeypatch.setattr(score_norm, "STATS_ROWS", 5)
    for top_n, (mean, std) in reference.items():
        sliced = cohort_score_stats(embeddings, cohort, top_n, chunk_rows=16, progress=False, threads=2)
        np.testing.assert_array_equal(sliced[0], mean)
        np.testing.assert_array_equal(sliced[1], std)
    expected_mean, expected_std = naive_stats(embeddings, cohort, 7)
    np.testing.assert_allclose(reference[7][0], expected_mean, atol=2e-6)
    np.testing.assert_allclose(reference[7][1], expected_std, atol=2e-6)
