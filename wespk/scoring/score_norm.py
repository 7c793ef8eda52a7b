"""Score normalisation with a cohort: S-norm and adaptive S-norm (AS-norm).

For every utterance ``u`` that appears in a trial, the cosine scores of ``u``
against all cohort embeddings are computed; their mean ``mu_u`` and
population standard deviation ``sd_u`` (over the ``top_n`` highest scores for
AS-norm, over the whole cohort for S-norm) give the normalised trial score

    0.5 * ((s - mu_enroll) / sd_enroll + (s - mu_test) / sd_test)

as in WeSpeaker's ``bin/score_norm.py``. Both the utterance and the cohort
embeddings are mean-subtracted (when a mean vector is used) and L2-normalised
in float32 before the matrix product. Statistics are computed once per
utterance, in chunks of rows (``[chunk, cohort]`` score blocks, the top N
of each row selected by an in-place partition on all usable cores), so
memory stays bounded at VoxCeleb scale (one 196 MB block for 8192 rows x
5994 cohort speakers); the trials are then normalised with array indexing.
"""

import logging
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from tqdm import tqdm

from wespk.utils.parallel import for_row_ranges

logger = logging.getLogger(__name__)

#: Utterances per block of the utterance x cohort score matrix (8192 x 5994 float32 = 196 MB).
#: Smaller blocks were slower on the 2-core reference machine (per-call overhead of the matmul).
DEFAULT_CHUNK_ROWS = 8192
#: Rows per task when selecting the top N and reducing a block (S-norm: a 24 MB float64 temporary each).
STATS_ROWS = 512


def _unit_rows(matrix: np.ndarray, what: str) -> np.ndarray:
    """Float32 rows divided by their L2 norm (WeSpeaker's ``emb / sqrt(sum(emb**2))``).

    An all-zero row is an error: its cohort scores would be undefined.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.sqrt(np.sum(matrix ** 2, axis=1, keepdims=True))
    if np.any(norms == 0):
        row = int(np.flatnonzero(norms.reshape(-1) == 0)[0])
        raise ValueError(f"{what}: row {row} is an all-zero vector after mean subtraction")
    return matrix / norms


def cohort_score_stats(embeddings: np.ndarray, cohort: np.ndarray, top_n: Optional[int] = None,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True,
                       threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each embedding's top-N cosine scores against a cohort.

    ``embeddings`` ``[N, dim]`` and ``cohort`` ``[C, dim]`` are float32 and
    already mean-subtracted if a mean is used. ``top_n`` None (or >= C) uses
    the whole cohort (S-norm). Returns two float32 arrays of length N, like
    WeSpeaker's ``get_mean_std`` (the statistics are accumulated in float64
    and rounded to float32 at the end).

    The ``[chunk_rows, C]`` score block is computed with numpy's matmul into a
    reused buffer; the top N of each row are moved to its end by an in-place
    ``partition`` (the same values ``torch.topk`` selects, in another order,
    six times faster on 2 cores), on ``threads`` threads (default: the usable
    cores) over slices of rows.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    cohort = np.asarray(cohort, dtype=np.float32)
    if embeddings.ndim != 2 or cohort.ndim != 2:
        raise ValueError("embeddings and cohort must be 2-D matrices")
    if embeddings.shape[1] != cohort.shape[1]:
        raise ValueError(f"embedding dimension {embeddings.shape[1]} differs from the cohort's {cohort.shape[1]}")
    num_cohort = cohort.shape[0]
    if top_n is not None and top_n >= num_cohort:
        if top_n > num_cohort:
            logger.warning("top_n %d is larger than the cohort (%d): using the whole cohort", top_n, num_cohort)
        top_n = None
    if top_n is not None and top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    keep = num_cohort if top_n is None else top_n
    unit_cohort_t = np.ascontiguousarray(_unit_rows(cohort, "cohort").T)
    num = embeddings.shape[0]
    mean = np.empty(num, dtype=np.float32)
    std = np.empty(num, dtype=np.float32)
    chunk_rows = max(1, min(chunk_rows, num))
    buffer = np.empty((chunk_rows, num_cohort), dtype=np.float32)
    starts = range(0, num, chunk_rows)
    for start in tqdm(starts, desc="cohort statistics", unit="block", disable=not progress or len(starts) < 2,
                      mininterval=5):
        size = min(chunk_rows, num - start)
        block = buffer[:size]
        np.matmul(_unit_rows(embeddings[start:start + size], "embeddings"), unit_cohort_t, out=block)

        def block_stats(lo: int, hi: int, block=block, start=start) -> None:
            rows = block[lo:hi]
            if top_n is not None:
                rows.partition(num_cohort - top_n, axis=1)
            top = rows[:, num_cohort - keep:]
            row_mean = top.mean(axis=1, dtype=np.float64)
            deviation = top - row_mean[:, None]
            mean[start + lo:start + hi] = row_mean
            std[start + lo:start + hi] = np.sqrt(np.einsum("ij,ij->i", deviation, deviation) / keep)

        for_row_ranges(size, STATS_ROWS, block_stats, threads)
    if np.any(std == 0):
        row = int(np.flatnonzero(std == 0)[0])
        raise ValueError(f"embedding row {row} has zero spread of cohort scores: cannot normalise "
                         f"(is top_n 1, or the cohort degenerate?)")
    return mean, std


def normalize_scores(scores: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray,
                     mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Symmetric normalisation ``0.5*((s-mu_e)/sd_e + (s-mu_t)/sd_t)`` for every trial, in float64."""
    scores = np.asarray(scores, dtype=np.float64)
    mean = np.asarray(mean).astype(np.float64)
    std = np.asarray(std).astype(np.float64)
    return 0.5 * ((scores - mean[enroll_rows]) / std[enroll_rows] + (scores - mean[test_rows]) / std[test_rows])


@dataclass
class ScoreNormResult:
    """Normalised scores plus the per-utterance statistics behind them.

    ``mean``/``std``/``magnitude`` are indexed by embedding row (rows that no
    trial uses hold NaN).
    """

    scores: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    magnitude: np.ndarray


def _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, top_n, chunk_rows, progress):
    embeddings = np.asarray(embeddings, dtype=np.float32)
    enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    mask = np.zeros(embeddings.shape[0], dtype=bool)
    mask[enroll_rows] = True
    mask[test_rows] = True
    used = np.flatnonzero(mask)  # sorted, like np.unique, without sorting a million trial rows
    logger.info("cohort statistics for %d utterances against %d cohort embeddings (top_n %s)",
                len(used), len(cohort), "all" if top_n is None else top_n)
    used_mean, used_std = cohort_score_stats(embeddings[used], cohort, top_n, chunk_rows, progress)
    mean = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    std = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    mean[used] = used_mean
    std[used] = used_std
    magnitude = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    magnitude[used] = np.linalg.norm(embeddings[used], axis=1)
    normed = normalize_scores(scores, enroll_rows, test_rows, mean, std)
    return ScoreNormResult(scores=normed, mean=mean, std=std, magnitude=magnitude)


def asnorm(scores: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray, embeddings: np.ndarray,
           cohort: np.ndarray, top_n: int = 300, chunk_rows: int = DEFAULT_CHUNK_ROWS,
           progress: bool = True) -> ScoreNormResult:
    """Adaptive S-norm: each side is normalised by its ``top_n`` closest cohort scores.

    ``scores[i]`` is the raw score of trial ``i`` between embedding rows
    ``enroll_rows[i]`` and ``test_rows[i]``; ``embeddings`` and ``cohort``
    are float32 and already mean-subtracted if a mean is used.
    ``magnitude`` in the result is the L2 norm of each (mean-subtracted)
    embedding, a quality measure for calibration.
    """
    return _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, top_n, chunk_rows, progress)


def snorm(scores: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray, embeddings: np.ndarray,
          cohort: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True) -> ScoreNormResult:
    """Symmetric S-norm: like :func:`asnorm` with the whole cohort."""
    return _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, None, chunk_rows, progress)
