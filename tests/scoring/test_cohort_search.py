"""The candidate search of the cohort statistics: its error bound, and the same bits as the full exact product."""

import itertools
import logging

import numpy as np
import pytest
import torch

import wespk.scoring.cohort_search as cohort_search
from wespk.scoring.cohort_search import BF16_UNIT, FP32_UNIT, kernel_available, search_error_bound
from wespk.scoring.score_norm import cohort_score_stats, grid_unit_rows

needs_kernel = pytest.mark.skipif(not kernel_available(), reason="numba is not installed (the CPU search needs it)")


def random_set(seed, rows, cohort_rows, dim, offset_scale=1.0):
    rng = np.random.default_rng(seed)
    offset = offset_scale * rng.standard_normal(dim)
    embeddings = (offset + rng.standard_normal((rows, dim))).astype(np.float32)
    cohort = (offset + rng.standard_normal((cohort_rows, dim))).astype(np.float32)
    return embeddings, cohort


def near_tie_set(seed, dim=64):
    """A cohort full of near-duplicates, so that many scores tie, or nearly tie, at the top-N boundary.

    Each of 40 base speakers comes in 6 copies moved by 0, 1e-8 (below the float32 resolution of a score),
    1e-6, 1e-4 and 3e-3 (about the bf16 error) and an exact duplicate; the rows are copies of cohort
    vectors moved a little, so that their top scores are dense and the candidate margin holds many ties.
    """
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((40, dim))
    copies = [base, base.copy()] + [base + step * rng.standard_normal(base.shape) for step in (1e-8, 1e-6, 1e-4, 3e-3)]
    cohort = np.concatenate(copies).astype(np.float32)
    rows = np.concatenate([base[rng.integers(0, 40, 150)] + 0.3 * rng.standard_normal((150, dim)),
                           rng.standard_normal((50, dim))]).astype(np.float32)
    return rows, cohort


def test_search_product_stays_within_its_bound():
    """The bound of the bf16 and float32 search products holds on random and on worst-case vectors."""
    embeddings, cohort = random_set(1, 400, 300, 256)
    # worst case for the input rounding: every component just above a bf16 rounding midpoint (all round
    # up by almost 2**-8), the last one chosen so that the norm is a power of 2 (normalising keeps the bits)
    worst = (1 + 2.0 ** -8 + 2.0 ** -11) * 2.0 ** np.random.default_rng(0).integers(-6, -3, 256)
    worst[-1] = 0
    worst[-1] = np.sqrt(4 ** np.ceil(np.log2((worst ** 2).sum()) / 2) - (worst ** 2).sum())
    worst = np.stack([worst, worst]).astype(np.float32)
    a = grid_unit_rows(np.concatenate([embeddings, worst]), "e")
    b = grid_unit_rows(np.concatenate([cohort, worst]), "c")
    exact = a @ b.T
    norm_a, norm_b = np.linalg.norm(a, axis=1).max(), np.linalg.norm(b, axis=1).max()
    search = (torch.from_numpy(a.astype(np.float32)).bfloat16() @ torch.from_numpy(b.astype(np.float32)).bfloat16().T)
    search = search.float().numpy().astype(np.float64)
    c1, c2 = search_error_bound(BF16_UNIT + 2 * FP32_UNIT, BF16_UNIT, 256, norm_a, norm_b)
    error = np.abs(search - exact)
    assert (error <= c1 + c2 * np.abs(search)).all()
    assert error[-1, -1] > 0.5 * c1  # the worst case comes close to the bound: the bound is not vacuous
    search32 = (a.astype(np.float32) @ b.astype(np.float32).T).astype(np.float64)
    c1, c2 = search_error_bound(FP32_UNIT, 0.0, 256, norm_a, norm_b)
    assert c2 == 0 and (np.abs(search32 - exact) <= c1).all()


@needs_kernel
@pytest.mark.parametrize("bf16", [True, False])
@pytest.mark.parametrize("case", ["random", "uncentred", "near_ties"])
def test_candidate_search_equals_the_full_product_bit_for_bit(monkeypatch, case, bf16):
    monkeypatch.setattr(cohort_search, "cpu_has_native_bf16", lambda: bf16)
    if case == "near_ties":
        embeddings, cohort = near_tie_set(2)
        top_ns = (6, 40, 41, 100)  # boundaries inside and between the groups of copies
    else:
        embeddings, cohort = random_set(3, 600, 500, 64, offset_scale=0.0 if case == "random" else 1.0)
        top_ns = (2, 40, 250, 499)
    for top_n in top_ns:
        reference = cohort_score_stats(embeddings, cohort, top_n, progress=False, exact=True)
        for kwargs in (dict(), dict(chunk_rows=77, threads=1), dict(device="cpu", chunk_rows=130)):
            mean, std = cohort_score_stats(embeddings, cohort, top_n, progress=False, **kwargs)
            assert np.array_equal(mean, reference[0]) and np.array_equal(std, reference[1]), (top_n, kwargs)


@needs_kernel
def test_blocks_searched_before_torch_is_ready_give_the_same_bits(monkeypatch):
    """score_norm searches in float32 while torch is still being imported, then in bf16: one result."""
    monkeypatch.setattr(cohort_search, "cpu_has_native_bf16", lambda: True)
    embeddings, cohort = random_set(6, 700, 500, 64, offset_scale=1.0)
    reference = cohort_score_stats(embeddings, cohort, 50, progress=False, exact=True)
    asked = []

    def bf16_ready():
        asked.append(len(asked) >= 3)  # the first three blocks before torch is "imported"
        return asked[-1]

    mean, std = cohort_score_stats(embeddings, cohort, 50, chunk_rows=100, progress=False, bf16_ready=bf16_ready)
    assert np.array_equal(mean, reference[0]) and np.array_equal(std, reference[1])
    assert asked[:4] == [False, False, False, True]  # both kinds of block ran (bf16 stays on once started)


@needs_kernel
def test_rows_the_check_rejects_are_recomputed(monkeypatch, caplog):
    """With a negative slack the candidates miss part of the top N: the check must catch every such row.

    How negative a slack leaves some rows proven depends on the search's margin (bf16 or float32, per
    CPU), so several are tried, on the CPU kernel and on the torch path: every one must give the exact
    statistics (rows with fewer than N candidates included), and at least one must leave some rows to the
    kernel and send others to the exact path."""
    embeddings, cohort = random_set(4, 500, 400, 64)
    reference = cohort_score_stats(embeddings, cohort, 30, progress=False, exact=True)
    mixed = []
    for slack, device in itertools.product((-0.0005, -0.001, -0.002, -0.004), (None, "cpu")):
        monkeypatch.setattr(cohort_search, "SEARCH_SLACK", slack)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="wespk.scoring.score_norm"):
            mean, std = cohort_score_stats(embeddings, cohort, 30, progress=False, device=device)
        assert np.array_equal(mean, reference[0]) and np.array_equal(std, reference[1]), (slack, device)
        message = next(r.getMessage() for r in caplog.records if "recomputed exactly" in r.getMessage())
        recomputed = int(message.split(",")[-1].split()[0])
        mixed.append(0 < recomputed < len(embeddings))
    assert any(mixed[0::2]), mixed  # the CPU kernel's rows; the device path (exact N-th score) recomputes all


def test_without_numba_the_full_product_gives_the_same_bits(monkeypatch):
    embeddings, cohort = random_set(5, 300, 200, 32)
    reference = cohort_score_stats(embeddings, cohort, 20, progress=False, exact=True)
    monkeypatch.setattr(cohort_search, "_kernel", lambda: None)
    monkeypatch.setattr("wespk.scoring.score_norm.kernel_available", lambda: False)
    mean, std = cohort_score_stats(embeddings, cohort, 20, progress=False)
    assert np.array_equal(mean, reference[0]) and np.array_equal(std, reference[1])


@needs_kernel
def test_kernel_threshold_and_candidates_are_those_of_the_whole_row():
    # The kernel guesses a threshold from every 8th score and histograms only the scores above the guess;
    # rows where the sample misleads it (high scores at the sampled positions only, or none of the top
    # ones sampled) must fall back to the whole row. Either way the threshold is the whole row's
    # histogram threshold and the candidates are exactly the columns at or above it, in column order.
    from wespk.scoring.cohort_kernel import HISTOGRAM_BINS, SAMPLE_STRIDE, candidates

    rng = np.random.default_rng(5)
    width, top_n, dim = 2000, 100, 8
    search = rng.normal(0.1, 0.15, (6, width)).astype(np.float32)
    search[1, ::SAMPLE_STRIDE] += 0.6  # the sample says the top is far higher than it is for most columns
    search[2, 1::SAMPLE_STRIDE] += 0.6  # the top scores all sit between the sampled positions
    search[3, :] = 0.25  # every score ties
    search[4, :top_n + 3] += 1.0
    search[5, rng.permutation(width)[:top_n // 2]] += 0.5  # fewer high scores than top_n
    rows = rng.integers(-100, 100, (6, dim)).astype(np.float64)
    cohort = rng.integers(-100, 100, (width, dim)).astype(np.int32)
    c1, c2, slack = 4e-3, 0.0, 1e-3
    found = np.empty((6, width), np.float32)
    counts = np.empty(6, np.int64)
    taus = np.empty(6)
    candidates(search, False, rows, cohort, top_n, c1, c2, slack, 1.0, found, counts, taus)
    per_unit = HISTOGRAM_BINS / 4.0
    for i, row in enumerate(search):
        bins = np.clip(((row.astype(np.float64) + 2.0) * per_unit).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        above = np.cumsum(np.bincount(bins, minlength=HISTOGRAM_BINS)[::-1])[::-1]  # values in bins >= b
        reached = np.flatnonzero(above[1:] >= top_n)
        b = int(reached[-1]) + 1 if len(reached) else 0
        t_lo = b / per_unit - 2.0 - 2.0 ** -30
        assert taus[i] == t_lo - (c1 + 2 * c2 * abs(t_lo)) - slack, f"row {i}"
        columns = np.flatnonzero(row >= taus[i])
        assert counts[i] == len(columns), f"row {i}"
        exact = (rows[i] @ cohort[columns].T.astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(found[i, :counts[i]], exact, err_msg=f"row {i}")
