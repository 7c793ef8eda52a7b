"""Score normalisation with a cohort: S-norm and adaptive S-norm (AS-norm).

For every utterance ``u`` that appears in a trial, the cosine scores of ``u``
against all cohort embeddings are computed; their mean ``mu_u`` and
population standard deviation ``sd_u`` (over the ``top_n`` highest scores for
AS-norm, over the whole cohort for S-norm) give the normalised trial score

    0.5 * ((s - mu_enroll) / sd_enroll + (s - mu_test) / sd_test)

as in WeSpeaker's ``bin/score_norm.py``. Both the utterance and the cohort
embeddings are mean-subtracted (when a mean vector is used) and L2-normalised
in float32 before the product.

The statistics do not depend on the CPU, the BLAS kernels, the number of
threads, the block size or the device: a float32 matrix product gives each
score with a rounding error whose size depends on how the library splits the
work (on a Zen 4 CPU the same row differs by 3e-8 between two block sizes),
so the scores are computed exactly instead. Every unit vector is put on the
grid of multiples of 2**-26 (a change of at most 2**-27 per component, about
1e-7 on a score at dimension 256), which makes each product of components a
multiple of 2**-52 below 2**0 and, by Cauchy-Schwarz, every partial sum of a
dot product a multiple of 2**-52 below 2 in magnitude: all of them are exact
in float64, so any float64 matrix product (any order, with or without FMA,
numpy, torch, CUDA) returns the exact score. Each exact score is rounded to
float32 (the precision of WeSpeaker's scores), the ``top_n`` highest are
selected (a partition on the CPU, ``topk`` on another device), sorted, and
their mean and standard deviation are taken in float64 on the CPU in that
fixed order. Statistics are computed once per utterance, in blocks of rows, so
memory stays bounded at VoxCeleb scale; the trials are then normalised with
array indexing.

For AS-norm the full float64 product is not needed: a bf16 (or float32)
search product finds candidates with a proven error margin, only their exact
scores are computed, and a check proves that the kept values are the top N of
the exact row (:mod:`wespk.scoring.cohort_search`); rows that fail the check
(rare) take the full exact path. Both give the same values, hence the same
bits; ``exact=True`` computes every row the full way.
"""

import logging
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from wespk.io.files import atomic_output
from wespk.io.trials import DEFAULT_CHUNK_BYTES
from wespk.scoring.cohort_search import (BF16_UNIT, CohortSearch, kernel_available, preload_in_background,
                                         search_error_bound, torch_top_scores)
from wespk.scoring.device import resolve_scoring_device
from wespk.io.byte_table import ByteTable, KeyIndex
from wespk.scoring.score_files import EmbeddingKeys, ScorePiece, byte_score_lines, iter_score_pieces, score_norm_lines
from wespk.utils.parallel import for_row_ranges, ordered_map

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Utterances per block of the utterance x cohort score matrix (4096 x 5994 float64 = 196 MB, plus
#: its float32 copy).
DEFAULT_CHUNK_ROWS = 4096
#: Rows per task when selecting the top N and reducing a block.
STATS_ROWS = 512
#: Unit vectors are rounded to multiples of 2**-GRID_BITS, which makes every float64 dot product exact.
GRID_BITS = 26


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


def grid_unit_rows(matrix: np.ndarray, what: str) -> np.ndarray:
    """Unit rows (float32 normalisation) rounded to multiples of ``2**-GRID_BITS``, as float64.

    Components are at most 1 in magnitude, so each is an integer of at most
    27 bits times ``2**-26``; products of two are exact in float64 and so is
    every partial sum of a dot product of two such rows (its magnitude is at
    most the product of the two norms, about 1, i.e. below 2**53 units).
    """
    scale = float(2 ** GRID_BITS)
    return np.rint(_unit_rows(matrix, what).astype(np.float64) * scale) / scale


def top_score_stats(top: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and population std (float64) of each row of ``top`` (the selected float32 scores).

    The values are sorted first, so the sums run in the same order whatever
    order the selection left them in, and the result depends only on the set
    of values.
    """
    return sorted_score_stats(np.sort(np.asarray(top, dtype=np.float32), axis=1))


def sorted_score_stats(top: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`top_score_stats` of rows already sorted ascending."""
    top = np.asarray(top, dtype=np.float32).astype(np.float64)
    mean = top.sum(axis=1) / top.shape[1]
    deviation = top - mean[:, None]
    return mean, np.sqrt((deviation * deviation).sum(axis=1) / top.shape[1])


def _check_inputs(embeddings, cohort, top_n):
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
    return embeddings, cohort, top_n


def _exact_rows_stats(rows: np.ndarray, grid_cohort_t: np.ndarray, top_n: Optional[int],
                      threads: Optional[int] = None, exact: Optional[np.ndarray] = None,
                      buffer: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Statistics of grid ``rows`` from their full exact (float64) score rows, on the CPU."""
    size, num_cohort = rows.shape[0], grid_cohort_t.shape[1]
    exact = np.empty((size, num_cohort), dtype=np.float64) if exact is None else exact[:size]
    block = np.empty((size, num_cohort), dtype=np.float32) if buffer is None else buffer[:size]
    keep = num_cohort if top_n is None else top_n
    np.matmul(rows, grid_cohort_t, out=exact)
    mean = np.empty(size, dtype=np.float64)
    std = np.empty(size, dtype=np.float64)

    def block_stats(lo: int, hi: int) -> None:
        part = block[lo:hi]
        part[...] = exact[lo:hi]  # float32 rounding of the exact scores
        if top_n is not None:
            part.partition(num_cohort - top_n, axis=1)
        mean[lo:hi], std[lo:hi] = top_score_stats(part[:, num_cohort - keep:])

    for_row_ranges(size, STATS_ROWS, block_stats, threads)
    return mean, std


def _proven_stats(top: np.ndarray, proven: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`sorted_score_stats` of the proven rows of ``top``; the other rows are left NaN."""
    mean = np.full(len(top), np.nan)
    std = np.full(len(top), np.nan)
    rows = np.flatnonzero(proven)
    mean[rows], std[rows] = sorted_score_stats(top[rows])
    return mean, std


def cohort_score_stats(embeddings: np.ndarray, cohort: np.ndarray, top_n: Optional[int] = None,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True,
                       threads: Optional[int] = None, device: Optional[str] = None,
                       exact: bool = False,
                       bf16_ready: Optional[Callable[[], bool]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each embedding's top-N cosine scores against a cohort.

    ``embeddings`` ``[N, dim]`` and ``cohort`` ``[C, dim]`` are float32 and
    already mean-subtracted if a mean is used. ``top_n`` None (or >= C) uses
    the whole cohort (S-norm). Returns two float32 arrays of length N, like
    WeSpeaker's ``get_mean_std`` (the statistics are taken in float64 and
    rounded to float32 at the end).

    The scores are exact (see the module docstring), so the result is the
    same, bit for bit, for every ``chunk_rows``, ``threads`` (the CPU threads
    of the selection; default: the usable cores), ``device`` and ``exact``:
    ``device`` None runs on the CPU (the candidate search of
    :mod:`wespk.scoring.cohort_search` when numba is installed, else the full
    float64 product with numpy), ``"auto"`` uses a GPU when one is present
    (else the CPU path), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` run the search,
    the product and the selection with torch on that device. ``exact`` forces
    the full float64 product for every row. ``bf16_ready`` (CPU search only) says whether torch may be
    used yet for a bf16 search product (:class:`~wespk.scoring.cohort_search.Preload`); blocks before
    that are searched in float32, with the same result.
    """
    embeddings, cohort, top_n = _check_inputs(embeddings, cohort, top_n)
    num_cohort = cohort.shape[0]
    torch_device = resolve_scoring_device(device)
    grid_cohort = grid_unit_rows(cohort, "cohort")
    grid_cohort_t = np.ascontiguousarray(grid_cohort.T)
    num = embeddings.shape[0]
    mean = np.empty(num, dtype=np.float32)
    std = np.empty(num, dtype=np.float32)
    chunk_rows = max(1, min(chunk_rows, num))
    starts = range(0, num, chunk_rows)
    use_search = top_n is not None and not exact
    search = None
    if torch_device is None:
        exact_scores = np.empty((chunk_rows, num_cohort), dtype=np.float64)
        buffer = np.empty((chunk_rows, num_cohort), dtype=np.float32)
        if use_search and kernel_available():
            search = CohortSearch(grid_cohort, GRID_BITS, top_n, bf16_ready)
        elif use_search:
            logger.info("numba is not installed: cohort statistics from the full float64 product (same result, "
                        "slower)")
    else:
        import torch

        cohort_on_device = torch.from_numpy(grid_cohort_t).to(torch_device)
        if use_search:
            cohort_rows_on_device = torch.from_numpy(grid_cohort).to(torch_device)
            cohort_search_on_device = cohort_on_device.float()
            cohort_norm = float(np.sqrt((grid_cohort * grid_cohort).sum(axis=1)).max())
    unproven = 0
    for start in tqdm(starts, desc="cohort statistics", unit="block", disable=not progress or len(starts) < 2,
                      mininterval=5):
        size = min(chunk_rows, num - start)
        rows = grid_unit_rows(embeddings[start:start + size], "embeddings")
        if torch_device is not None:
            rows_on_device = torch.from_numpy(rows).to(torch_device)
            if use_search:
                row_norm = float(np.sqrt((rows * rows).sum(axis=1)).max())
                # the bound of a float32 product whose inputs may be rounded to 8 bits (TF32, bf16 modes)
                c1 = search_error_bound(BF16_UNIT, 0.0, rows.shape[1], row_norm, cohort_norm)[0]
                top, proven = torch_top_scores(rows_on_device, cohort_rows_on_device, cohort_search_on_device,
                                               top_n, c1)
                block_mean, block_std = _proven_stats(top, proven)
            else:
                scores = (rows_on_device @ cohort_on_device).float()
                top = scores if top_n is None else scores.topk(top_n, dim=1, sorted=False).values
                block_mean, block_std = top_score_stats(top.cpu().numpy())
                proven = None
        elif search is not None:
            block_mean, block_std, proven = search.block_stats(rows, sorted_score_stats, threads)
        else:
            block_mean, block_std = _exact_rows_stats(rows, grid_cohort_t, top_n, threads, exact_scores, buffer)
            proven = None
        if proven is not None and not proven.all():
            redo = np.flatnonzero(~proven)
            unproven += len(redo)
            block_mean[redo], block_std[redo] = _exact_rows_stats(rows[redo], grid_cohort_t, top_n, threads)
        mean[start:start + size] = block_mean
        std[start:start + size] = block_std
    if use_search:
        logger.info("cohort statistics of %d utterances: %d from the candidate search, %d recomputed exactly",
                    num, num - unproven, unproven)
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


#: When the trials use at least this share of the embeddings, the statistics are computed for all of them
#: (the few extra rows cost less than copying the used ones out of a large matrix).
ALL_ROWS_SHARE = 0.9


def _rows(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix[rows]`` for sorted unique ``rows``, without a copy when they are all the rows."""
    return matrix if len(rows) == len(matrix) else matrix[rows]


def used_row_statistics(embeddings: np.ndarray, used: np.ndarray, cohort: np.ndarray, top_n: Optional[int],
                        chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True,
                        device: Optional[str] = None,
                        bf16_ready: Optional[Callable[[], bool]] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cohort mean, std and magnitude (L2 norm) of the ``used`` rows of ``embeddings``, indexed by row.

    Rows that are not used hold NaN. ``bf16_ready`` as in :func:`cohort_score_stats`. The magnitudes are taken in blocks, so no
    temporary as large as the matrix is made.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    logger.info("cohort statistics for %d utterances against %d cohort embeddings (top_n %s)",
                len(used), len(cohort), "all" if top_n is None else top_n)
    # a row's statistics depend on that row only, so computing them for unused rows too changes nothing
    rows = used
    if len(used) >= ALL_ROWS_SHARE * len(embeddings):
        unused = np.ones(len(embeddings), dtype=bool)
        unused[used] = False
        norms = np.linalg.norm(embeddings[unused], axis=1)
        if np.all(np.isfinite(norms) & (norms > 0)):  # an unused bad row must not stop the others
            rows = np.arange(len(embeddings))
    used_mean, used_std = cohort_score_stats(_rows(embeddings, rows), cohort, top_n, chunk_rows, progress,
                                             device=device, bf16_ready=bf16_ready)
    if len(rows) != len(used):
        used_mean, used_std = used_mean[used], used_std[used]
    mean = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    std = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    mean[used] = used_mean
    std[used] = used_std
    magnitude = np.full(embeddings.shape[0], np.nan, dtype=np.float32)
    for start in range(0, len(used), 65536):
        rows = used[start:start + 65536]
        magnitude[rows] = np.linalg.norm(embeddings[rows], axis=1)
    return mean, std, magnitude


def _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, top_n, chunk_rows, progress, device):
    enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    mask = np.zeros(len(embeddings), dtype=bool)
    mask[enroll_rows] = True
    mask[test_rows] = True
    used = np.flatnonzero(mask)  # sorted, like np.unique, without sorting a million trial rows
    mean, std, magnitude = used_row_statistics(embeddings, used, cohort, top_n, chunk_rows, progress, device)
    normed = normalize_scores(scores, enroll_rows, test_rows, mean, std)
    return ScoreNormResult(scores=normed, mean=mean, std=std, magnitude=magnitude)


def asnorm(scores: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray, embeddings: np.ndarray,
           cohort: np.ndarray, top_n: int = 300, chunk_rows: int = DEFAULT_CHUNK_ROWS,
           progress: bool = True, device: Optional[str] = None) -> ScoreNormResult:
    """Adaptive S-norm: each side is normalised by its ``top_n`` closest cohort scores.

    ``scores[i]`` is the raw score of trial ``i`` between embedding rows
    ``enroll_rows[i]`` and ``test_rows[i]``; ``embeddings`` and ``cohort``
    are float32 and already mean-subtracted if a mean is used.
    ``magnitude`` in the result is the L2 norm of each (mean-subtracted)
    embedding, a quality measure for calibration. ``device`` as in
    :func:`cohort_score_stats` (the result does not depend on it).
    """
    return _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, top_n, chunk_rows, progress,
                                  device)


def snorm(scores: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray, embeddings: np.ndarray,
          cohort: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS, progress: bool = True,
          device: Optional[str] = None) -> ScoreNormResult:
    """Symmetric S-norm: like :func:`asnorm` with the whole cohort."""
    return _normalize_with_cohort(scores, enroll_rows, test_rows, embeddings, cohort, None, chunk_rows, progress,
                                  device)


#: Score files up to this total size are parsed once and kept in memory; larger ones are read twice
#: (once for the utterances they use, once to normalise and write), a chunk at a time.
KEEP_IN_MEMORY_BYTES = 256 * 1024 ** 2


def normalize_score_files(input_paths: Sequence[PathLike], output_paths: Sequence[PathLike],
                          keys: Union[EmbeddingKeys, Dict[str, int]], source: str, embeddings: np.ndarray,
                          cohort: np.ndarray, top_n: Optional[int], chunk_rows: int = DEFAULT_CHUNK_ROWS,
                          progress: bool = True, device: Optional[str] = None,
                          chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
    """S-norm (``top_n`` None) or AS-norm of cosine score files into WeSpeaker's score-norm layout.

    ``keys`` maps keys to rows of ``embeddings`` (mean-subtracted, like
    ``cohort``): an :class:`~wespk.scoring.score_files.EmbeddingKeys` (bulk
    lookups) or a plain dict; ``source`` names them in errors. Cohort
    statistics are computed once per utterance for all files together; the
    files are read and written in pieces of ``chunk_bytes``, so memory does not
    grow with the number of trials. The normalised score is computed from the
    score as written in the input file.
    """
    if not isinstance(keys, EmbeddingKeys):
        keys = EmbeddingKeys(dict(keys), KeyIndex([]), source)
    keep = sum(os.path.getsize(path) for path in input_paths) <= KEEP_IN_MEMORY_BYTES
    preload = preload_in_background() if top_n is not None and device in (None, "auto") else None

    def pieces(path):
        return iter_score_pieces(path, keys=keys, chunk_bytes=chunk_bytes)

    mask = np.zeros(len(embeddings), dtype=bool)
    kept: Dict[str, list] = {}
    for path in input_paths:
        for piece in pieces(path):
            mask[piece.enroll_rows] = True
            mask[piece.test_rows] = True
            if keep:
                kept.setdefault(str(path), []).append(piece)
    if preload is not None:
        preload.kernel_loaded()
    mean, std, magnitude = used_row_statistics(embeddings, np.flatnonzero(mask), cohort, top_n, chunk_rows,
                                               progress, device, None if preload is None else preload.bf16_ready)
    def normed_lines(piece: ScorePiece) -> Tuple[bytes, int]:
        """The output lines of one piece and its number of trials (formatted on the usable cores)."""
        e, t = piece.enroll_rows, piece.test_rows
        normed = normalize_scores(piece.scores, e, t, mean, std)
        if isinstance(piece.lines, ByteTable):
            label = [3] if piece.has_labels else []
            return byte_score_lines(piece.lines, [0, 1, (normed, 5), *label, (magnitude[e], 4),
                                                  (magnitude[t], 4), (mean[e], 4), (mean[t], 4)]), len(piece)
        table = piece.lines
        return "".join(score_norm_lines(table.enroll, table.test, normed, table.labels, magnitude[e],
                                        magnitude[t], mean[e], mean[t])).encode(), len(piece)

    for path, output_path in zip(input_paths, output_paths):
        count = 0
        with atomic_output(output_path, "wb") as f:
            source = kept.get(str(path), []) if keep else pieces(path)
            for lines, num in ordered_map(normed_lines, source):
                f.write(lines)
                count += num
        logger.info("%s: %d trials -> %s", path, count, output_path)
