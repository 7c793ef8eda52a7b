"""Cosine scoring of trials, with optional mean subtraction and length normalisation.

Numerics follow WeSpeaker's ``bin/score.py``: the mean vector is the plain
average of a set's embeddings accumulated in float32 in file order, it is
subtracted from the float32 embeddings, and the cosine is that of
``sklearn.metrics.pairwise.cosine_similarity`` in float32 (each row divided by
its L2 norm, then a dot product). Unlike WeSpeaker, which scores one trial at
a time, all trials are scored at once by gathering rows in chunks.
"""

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.embeddings import read_embeddings
from wespk.io.files import atomic_output
from wespk.io.byte_table import ByteTable, KeyIndex
from wespk.io.trials import (DEFAULT_CHUNK_BYTES, TrialList, as_text_table, byte_label_targets, iter_table_pieces,
                             trial_list_of)
from wespk.scoring.score_files import EmbeddingKeys, byte_score_lines, byte_trial_rows, index_trial_keys, score_lines
from wespk.utils.parallel import for_row_ranges

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Trials scored per chunk: the two gathered [chunk, dim] float32 blocks (2 x 1 MB at dim 256) stay in
#: a core's cache; chunks run on all usable cores (5x faster than one 16,384-trial chunk at a time for
#: 579,818 trials on 2 cores).
DEFAULT_CHUNK_TRIALS = 1024


def l2_normalize_rows(matrix: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Divide each row by its L2 norm in float32; an all-zero row stays zero (as sklearn does).

    ``in_place`` divides a writable float32 ``matrix`` itself (the same values; no second matrix of its
    size, which at a million embeddings is a gigabyte of fresh memory) and returns it.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    zero = norms == 0
    if zero.any():
        logger.warning("%d all-zero embedding(s): their cosine scores are 0", int(zero.sum()))
        norms = np.where(zero, np.float32(1), norms)
    if in_place:
        matrix /= norms[:, None]
        return matrix
    return matrix / norms[:, None]


def mean_embedding(matrix: np.ndarray) -> np.ndarray:
    """Mean of the rows of ``matrix`` in float32, accumulated row by row in row order.

    numpy reduces a C-contiguous matrix over axis 0 one row at a time, which is
    the same float32 sequence of additions as WeSpeaker's loop
    ``mean += vec`` over the scp, so the result is identical to it.
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"need a non-empty [N, dim] matrix, got shape {matrix.shape}")
    return matrix.sum(axis=0, dtype=np.float32) / np.float32(matrix.shape[0])


def load_mean_vector(path: PathLike) -> np.ndarray:
    """Load a mean vector saved as ``.npy`` (WeSpeaker's ``mean_vec.npy``) or as text (one line of numbers)."""
    path = Path(path)
    if path.suffix == ".npy":
        vector = np.load(path)
    else:
        vector = np.loadtxt(path, dtype=np.float64, ndmin=1)
    return np.asarray(vector, dtype=np.float32).reshape(-1)


def save_mean_vector(path: PathLike, mean_vec: np.ndarray) -> None:
    """Save a mean vector atomically: ``.npy`` when the name ends so, else one text line."""
    path = Path(path)
    mean_vec = np.asarray(mean_vec, dtype=np.float32)
    if path.suffix == ".npy":
        with atomic_output(path, "wb") as f:
            np.save(f, mean_vec)
    else:
        with atomic_output(path) as f:
            f.write(" ".join(repr(float(v)) for v in mean_vec) + "\n")


def prepare_embeddings(matrix: np.ndarray, mean_vec: Optional[np.ndarray] = None,
                       length_norm: bool = False, in_place: bool = False) -> np.ndarray:
    """Apply the scoring front end to a float32 embedding matrix.

    With ``length_norm`` each embedding is first scaled to unit length; then
    ``mean_vec`` (if given) is subtracted. ``mean_vec`` must have been
    computed from embeddings that went through the same length
    normalisation (see :func:`mean_from_scp`). ``in_place`` overwrites a
    writable float32 ``matrix`` with the result (the same values).
    """
    if in_place and not (isinstance(matrix, np.ndarray) and matrix.dtype == np.float32
                         and matrix.flags.writeable):
        raise ValueError("in_place=True needs a writable float32 numpy matrix")
    matrix = np.asarray(matrix, dtype=np.float32)
    if length_norm:
        matrix = l2_normalize_rows(matrix, in_place)
    if mean_vec is not None:
        mean_vec = np.asarray(mean_vec, dtype=np.float32)
        if mean_vec.shape != (matrix.shape[1],):
            raise ValueError(f"mean vector has dimension {mean_vec.shape}, embeddings have {matrix.shape[1]}")
        matrix = np.subtract(matrix, mean_vec, out=matrix) if in_place else matrix - mean_vec
    return matrix


def unit_rows(matrix: np.ndarray, mean_vec: Optional[np.ndarray] = None, length_norm: bool = False,
              in_place: bool = False) -> np.ndarray:
    """``l2_normalize_rows(prepare_embeddings(matrix, mean_vec, length_norm))`` with at most one new matrix
    (the same float32 operations, so the same values).

    ``in_place`` computes the result in ``matrix`` itself (a writable float32 array the caller no longer
    needs), with no new matrix: at a million 256-dim embeddings, a gigabyte of fresh memory less.
    """
    prepared = prepare_embeddings(matrix, mean_vec, length_norm, in_place)
    # a copy made by the preparation is ours to normalise in place
    return l2_normalize_rows(prepared, in_place=in_place or prepared is not matrix)


def mean_from_scp(scp_path: PathLike, length_norm: bool = False) -> np.ndarray:
    """Mean embedding of the set in ``scp_path`` (length-normalised first if asked)."""
    keys, matrix = read_embeddings(scp_path)
    logger.info("mean of %d embeddings from %s", len(keys), scp_path)
    if length_norm:
        matrix = l2_normalize_rows(matrix)
    return mean_embedding(matrix)


def cosine_scores(embeddings: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray,
                  chunk_trials: int = DEFAULT_CHUNK_TRIALS, threads: Optional[int] = None) -> np.ndarray:
    """Cosine similarity of each (enroll, test) row pair of ``embeddings``, as float64.

    ``embeddings`` is ``[N, dim]`` (already mean-subtracted if wanted);
    ``enroll_rows[i]`` and ``test_rows[i]`` index the two sides of trial ``i``.
    The rows are normalised once in float32 and the dot products are taken in
    chunks of ``chunk_trials`` trials, on ``threads`` threads (default: the
    usable cores).
    """
    return unit_cosine_scores(l2_normalize_rows(embeddings), enroll_rows, test_rows, chunk_trials, threads)


def unit_cosine_scores(unit: np.ndarray, enroll_rows: np.ndarray, test_rows: np.ndarray,
                       chunk_trials: int = DEFAULT_CHUNK_TRIALS, threads: Optional[int] = None) -> np.ndarray:
    """:func:`cosine_scores` of rows that are already L2-normalised (``l2_normalize_rows``)."""
    enroll_rows = np.asarray(enroll_rows, dtype=np.int64)
    test_rows = np.asarray(test_rows, dtype=np.int64)
    if enroll_rows.shape != test_rows.shape:
        raise ValueError("enroll_rows and test_rows must have the same shape")
    scores = np.empty(len(enroll_rows), dtype=np.float64)

    def score_chunk(start: int, stop: int) -> None:
        enroll_block = np.take(unit, enroll_rows[start:stop], axis=0)
        test_block = np.take(unit, test_rows[start:stop], axis=0)
        scores[start:stop] = np.einsum("ij,ij->i", enroll_block, test_block)

    for_row_ranges(len(enroll_rows), chunk_trials, score_chunk, threads)
    return scores


@dataclass
class EmbeddingSet:
    """Embeddings read from an scp, with a key -> row index."""

    source: str
    keys: List[str]
    matrix: np.ndarray

    def __post_init__(self):
        self.row_of = {key: row for row, key in enumerate(self.keys)}
        if len(self.row_of) != len(self.keys):
            seen = set()
            for key in self.keys:
                if key in seen:
                    raise ValueError(f"{self.source}: duplicate embedding key {key!r}")
                seen.add(key)

    @classmethod
    def from_scp(cls, scp_path: PathLike) -> "EmbeddingSet":
        keys, matrix = read_embeddings(scp_path)
        logger.info("read %d embeddings of dimension %d from %s", len(keys), matrix.shape[1], scp_path)
        return cls(str(scp_path), keys, matrix)

    @classmethod
    def from_scps(cls, scp_paths: Sequence[PathLike]) -> "EmbeddingSet":
        """The embeddings of several scp files as one set (a key in two of them is an error)."""
        if len(scp_paths) == 1:
            return cls.from_scp(scp_paths[0])
        sets = [cls.from_scp(path) for path in scp_paths]
        return cls(" + ".join(s.source for s in sets), [key for s in sets for key in s.keys],
                   np.concatenate([s.matrix for s in sets]))

    @functools.cached_property
    def key_index(self) -> KeyIndex:
        """The keys' :class:`~wespk.io.byte_table.KeyIndex`, for bulk lookups of trial fields."""
        return KeyIndex(self.keys)

    @property
    def lookup_keys(self) -> EmbeddingKeys:
        """The keys for :func:`~wespk.scoring.score_files.iter_score_pieces` (dict and bulk index)."""
        return EmbeddingKeys(self.row_of, self.key_index, self.source)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])


def compact_rows(num_rows: int, *row_arrays: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The sorted rows used by ``row_arrays`` and a map from each row to its position among them.

    ``used, compact = compact_rows(n, a, b)`` gives ``matrix[used][compact[a]] == matrix[a]``;
    a mask over the ``num_rows`` rows does in O(n) what ``np.unique`` does with a sort.
    """
    mask = np.zeros(num_rows, dtype=bool)
    for rows in row_arrays:
        mask[rows] = True
    used = np.flatnonzero(mask)
    compact = np.full(num_rows, -1, dtype=np.int64)
    compact[used] = np.arange(len(used), dtype=np.int64)
    return used, compact


def score_trials(trials: TrialList, embeddings: EmbeddingSet, mean_vec: Optional[np.ndarray] = None,
                 length_norm: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine-score a trial list; returns ``(scores, enroll_rows, test_rows)``.

    Missing keys are errors naming the trial file, line and key.
    """
    enroll_rows, test_rows = index_trial_keys(trials, embeddings.row_of, embeddings.source)
    # Only the rows the trials use are prepared (a VoxCeleb1-O list uses 4,874 of 153,516 embeddings).
    used, compact = compact_rows(len(embeddings.keys), enroll_rows, test_rows)
    prepared = prepare_embeddings(embeddings.matrix[used], mean_vec, length_norm)
    scores = cosine_scores(prepared, compact[enroll_rows], compact[test_rows])
    return scores, enroll_rows, test_rows


def score_trial_file(trials_path: PathLike, output_path: PathLike, embeddings: EmbeddingSet,
                     mean_vec: Optional[np.ndarray] = None, length_norm: bool = False, decimals: Optional[int] = 5,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES, unit: Optional[np.ndarray] = None) -> int:
    """Cosine-score a trial list into ``enroll test score [label]`` lines, a piece of the list at a time.

    The embeddings are prepared and normalised once (every row, in float32,
    as :func:`score_trials` does for the rows it uses), so memory does not
    grow with the number of trials and each score is the one
    :func:`score_trials` gives. Plain ASCII pieces are looked up, scored and
    written in bulk (:mod:`wespk.io.byte_table`), the others line by line; the
    bytes written are the same. ``unit`` is that preparation when the caller
    has made it (``unit_rows(embeddings.matrix, mean_vec, length_norm)``, once
    for several lists; ``mean_vec`` and ``length_norm`` are then not used).
    Returns the number of trials.
    """
    if unit is None:  # once, for every row: each piece then only gathers rows
        unit = unit_rows(embeddings.matrix, mean_vec, length_norm)

    def score_piece(piece) -> Tuple[bytes, int]:
        """The output lines of one piece of the list and its number of trials (run on the usable cores)."""
        if isinstance(piece, ByteTable) and decimals is not None and embeddings.key_index.usable:
            rows = byte_trial_rows(piece, embeddings.key_index)
            labelled = piece.num_columns == 3
            if rows is not None and (not labelled or byte_label_targets(piece, 2) is not None):
                scores = unit_cosine_scores(unit, *rows)
                return byte_score_lines(piece, [0, 1, (scores, decimals)] + ([2] if labelled else [])), len(piece)
        trials = trial_list_of(as_text_table(piece))
        enroll_rows, test_rows = index_trial_keys(trials, embeddings.row_of, embeddings.source)
        scores = unit_cosine_scores(unit, enroll_rows, test_rows)
        return "".join(score_lines(trials.enroll, trials.test, scores, trials.labels, decimals)).encode(), len(trials)

    count = 0
    with atomic_output(output_path, "wb") as f:
        for lines, num in iter_table_pieces(trials_path, (2, 3), "trial list", chunk_bytes, transform=score_piece):
            f.write(lines)
            count += num
    return count
