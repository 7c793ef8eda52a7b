"""Cohort statistics from exact scores: the same bits for every block size, thread count and device."""

import os

import numpy as np
import pytest

from wespk.io.embeddings import write_embeddings
from wespk.scoring.score_files import write_score_file
from wespk.scoring.score_norm import GRID_BITS, cohort_score_stats, grid_unit_rows, top_score_stats

from .conftest import run_cli

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def random_set(seed, rows, cohort_rows, dim):
    rng = np.random.default_rng(seed)
    offset = rng.standard_normal(dim)
    embeddings = (offset + rng.standard_normal((rows, dim))).astype(np.float32)
    cohort = (offset + rng.standard_normal((cohort_rows, dim))).astype(np.float32)
    return embeddings, cohort


def test_grid_products_are_exact_in_float64():
    embeddings, cohort = random_set(1, 300, 200, 256)
    a, b = grid_unit_rows(embeddings, "e"), grid_unit_rows(cohort, "c")
    units = float(2 ** GRID_BITS)
    a_int, b_int = (a * units).astype(np.int64), (b * units).astype(np.int64)
    assert np.array_equal(a_int / units, a) and np.abs(a_int).max() <= 2 ** GRID_BITS
    exact = a_int @ b_int.T  # integer arithmetic, |sum| < 2**53: no overflow
    np.testing.assert_array_equal(a @ b.T, exact / units ** 2)
    # in another order (reversed dimensions, one row at a time) the float64 sums are the same bits
    np.testing.assert_array_equal(np.stack([b[:, ::-1] @ row[::-1] for row in a[:7]]), (a @ b.T)[:7])
    # the grid moves a unit vector by about 1e-7 at most
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert np.abs(a - unit).max() <= 2.0 ** -(GRID_BITS + 1) + 1e-8


def test_stats_are_sorted_value_statistics():
    rng = np.random.default_rng(2)
    top = rng.standard_normal((4, 33)).astype(np.float32)
    mean, std = top_score_stats(top)
    shuffled = np.take_along_axis(top, np.argsort(rng.random(top.shape), axis=1), axis=1)
    assert np.array_equal(top_score_stats(shuffled)[0], mean) and np.array_equal(top_score_stats(shuffled)[1], std)
    np.testing.assert_allclose(mean, top.astype(np.float64).mean(1), rtol=1e-14)
    np.testing.assert_allclose(std, top.astype(np.float64).std(1), rtol=1e-12)


@pytest.mark.parametrize("top_n", [25, None])
def test_blocks_threads_and_torch_path_give_the_same_bits(top_n):
    embeddings, cohort = random_set(3, 700, 120, 64)
    reference = cohort_score_stats(embeddings, cohort, top_n, chunk_rows=4096, progress=False, threads=1)
    runs = [dict(chunk_rows=1, threads=2), dict(chunk_rows=97, threads=2), dict(chunk_rows=512, threads=1),
            dict(chunk_rows=200, device="cpu"), dict(chunk_rows=4096, device="auto")]
    for kwargs in runs:
        mean, std = cohort_score_stats(embeddings[:300] if kwargs["chunk_rows"] == 1 else embeddings, cohort, top_n,
                                       progress=False, **kwargs)
        n = len(mean)
        assert np.array_equal(mean, reference[0][:n]) and np.array_equal(std, reference[1][:n]), kwargs
    # and they are the textbook statistics of the float32 scores, to float32 precision
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    scores = np.sort(e.astype(np.float64) @ c.T.astype(np.float64), axis=1)[:, ::-1][:, :top_n or len(c)]
    np.testing.assert_allclose(reference[0], scores.mean(1), atol=3e-7)
    np.testing.assert_allclose(reference[1], scores.std(1), atol=3e-7)


def test_score_norm_files_are_byte_identical_for_threads_and_chunk_rows(tmp_path):
    embeddings, cohort = random_set(4, 1300, 150, 64)
    keys = [f"utt{i:05d}" for i in range(len(embeddings))]
    write_embeddings(tmp_path / "eval.ark", tmp_path / "eval.scp", zip(keys, embeddings))
    write_embeddings(tmp_path / "cohort.ark", tmp_path / "cohort.scp",
                     ((f"spk{i:04d}", vector) for i, vector in enumerate(cohort)))
    rng = np.random.default_rng(5)
    enroll, test = rng.integers(0, len(keys), 4000), rng.integers(0, len(keys), 4000)
    write_score_file(tmp_path / "input.score", [keys[i] for i in enroll], [keys[i] for i in test],
                     rng.uniform(-0.3, 0.9, 4000), ["target" if i % 9 == 0 else "nontarget" for i in range(4000)])
    outputs = []
    for threads, chunk_rows in ((1, 4096), (2, 4096), (2, 512), (1, 512)):
        env = {name: str(threads) for name in THREAD_VARIABLES}
        output = tmp_path / f"out_{threads}_{chunk_rows}.score"
        result = run_cli("wespk.bin.score_norm", "--method", "asnorm", "--top_n", 40, "--cohort", tmp_path / "cohort.scp",
                         "--embeddings", tmp_path / "eval.scp", "--mean_from", tmp_path / "cohort.scp",
                         "--input", tmp_path / "input.score", "--output", output, "--chunk_rows", chunk_rows,
                         "--no_progress", env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(output.read_bytes())
    assert len(outputs[0].splitlines()) == 4000
    assert all(output == outputs[0] for output in outputs[1:])


def test_streamed_files_equal_the_in_memory_path(tmp_path, monkeypatch):
    import wespk.scoring.score_norm as score_norm
    from wespk.scoring.cosine import EmbeddingSet, score_trial_file

    embeddings, cohort = random_set(6, 300, 60, 32)
    keys = [f"utt{i:04d}" for i in range(len(embeddings))]
    write_embeddings(tmp_path / "eval.ark", tmp_path / "eval.scp", zip(keys, embeddings))
    rng = np.random.default_rng(7)
    trials = tmp_path / "trials"
    trials.write_text("".join(f"{keys[a]} {keys[b]} {'target' if a % 5 == 0 else 'nontarget'}\n"
                              for a, b in rng.integers(0, len(keys), (2000, 2))))
    embedding_set = EmbeddingSet.from_scp(tmp_path / "eval.scp")
    assert score_trial_file(trials, tmp_path / "whole.score", embedding_set) == 2000
    score_trial_file(trials, tmp_path / "pieces.score", embedding_set, chunk_bytes=700)
    assert (tmp_path / "pieces.score").read_bytes() == (tmp_path / "whole.score").read_bytes()
    # and the same as scoring the whole list with the rows it uses, with or without a mean
    from wespk.io.trials import read_trials
    from wespk.scoring.cosine import score_trials
    trial_list = read_trials(trials)
    for mean in (None, embeddings[:50].mean(0)):
        scores, _, _ = score_trials(trial_list, embedding_set, mean)
        write_score_file(tmp_path / "direct.score", trial_list.enroll, trial_list.test, scores, trial_list.labels)
        score_trial_file(trials, tmp_path / "streamed.score", embedding_set, mean, chunk_bytes=700)
        assert (tmp_path / "streamed.score").read_bytes() == (tmp_path / "direct.score").read_bytes()
    outputs = []
    for keep, chunk_bytes in ((score_norm.KEEP_IN_MEMORY_BYTES, 1 << 20), (0, 900)):
        monkeypatch.setattr(score_norm, "KEEP_IN_MEMORY_BYTES", keep)
        output = tmp_path / f"normed_{keep}"
        score_norm.normalize_score_files([tmp_path / "whole.score"], [output], embedding_set.row_of, "eval",
                                         embedding_set.matrix, cohort, 20, progress=False, chunk_bytes=chunk_bytes)
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 2000
