"""Score files: fast column reading, exact error messages, atomic writing.

The scoring stages pass plain text tables between them (see DESIGN.md); the
trial list ``enroll test [target|nontarget]`` is read by
:func:`wespk.io.trials.read_trials`, the rest here:

* score file: ``enroll test score [target|nontarget]``
* score-norm file: ``enroll test normed_score [label] enroll_mag test_mag
  enroll_cohort_mean test_cohort_mean`` (WeSpeaker's ``score_norm.py`` layout
  when the label is present)

VoxCeleb-E/H lists have over half a million lines, so the files are read with
the vectorised table reader of :mod:`wespk.io.trials`. Any problem (wrong field count,
bad label, a score that is not a number) is reported as a
:class:`~wespk.io.files.DataFileError` naming the file and the line.
"""

import logging
import operator
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.byte_table import ByteTable, KeyIndex, field_bytes, fixed_decimals, join_fields, parse_decimals
from wespk.io.files import DataFileError, atomic_output
from wespk.io.trials import (DEFAULT_CHUNK_BYTES, TextTable, TrialList, as_text_table, byte_label_targets,
                             check_label_column, iter_table_pieces, iter_text_table, labels_to_targets, read_text_table)

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Field counts of a score file: with or without label, plus the four score-norm columns.
SCORE_FILE_WIDTHS = (3, 4, 7, 8)


def parse_float_column(table: TextTable, column: int, name: str) -> np.ndarray:
    """Column ``column`` of ``table`` as float64; a bad value is an error naming its line."""
    values = table.columns[column]
    try:
        result = np.array(list(map(float, values)), dtype=np.float64)
    except ValueError:
        for row, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise DataFileError(table.path, table.line_of(row),
                                    f"{name} (field {column + 1}) is not a number: {value!r}") from None
        raise
    bad = np.flatnonzero(~np.isfinite(result))
    if len(bad):
        row = int(bad[0])
        raise DataFileError(table.path, table.line_of(row),
                            f"{name} (field {column + 1}) is not finite: {values[row]!r}")
    return result


@dataclass
class ScoreTable:
    """A score file in file order.

    ``score_text`` keeps the score fields as written, so that a later stage can
    copy them without reformatting. ``quality`` holds the four extra columns of
    a score-norm file (enroll_mag, test_mag, enroll_cohort_mean,
    test_cohort_mean) as an ``[N, 4]`` float64 array, else None.
    """

    path: str
    enroll: List[str]
    test: List[str]
    scores: np.ndarray
    score_text: List[str]
    labels: Optional[List[str]]
    line_numbers: np.ndarray
    quality: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.enroll)

    @property
    def is_target(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError(f"{self.path}: score file has no label column")
        return labels_to_targets(self.labels)

    def line_of(self, row: int) -> int:
        """The 1-based file line of ``row``."""
        return int(self.line_numbers[row])

    def trial_list(self) -> TrialList:
        """The trials of this file (keys, labels and lines) without the scores."""
        return TrialList(self.path, self.enroll, self.test, self.labels, self.line_numbers)


def read_score_file(path: PathLike, require_labels: bool = False) -> ScoreTable:
    """Read ``enroll test score [label]``; also accepts score-norm files (their extra columns are kept).

    Column 3 is the score, column 4 the label (``target`` or ``nontarget``).
    """
    return score_table_of(read_text_table(path, SCORE_FILE_WIDTHS, "score file"), require_labels)


def iter_score_file(path: PathLike, require_labels: bool = False,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[ScoreTable]:
    """:func:`read_score_file` in consecutive pieces (whole lines, file order), for files of any length."""
    for table in iter_text_table(path, SCORE_FILE_WIDTHS, "score file", chunk_bytes):
        yield score_table_of(table, require_labels)


@dataclass
class ScorePiece:
    """A piece of a score file (:func:`iter_score_pieces`): its scores, target flags and, when asked for,
    the embedding rows of its keys.

    ``lines`` holds the fields: a :class:`~wespk.io.byte_table.ByteTable` for a
    plain-ASCII piece handled in bulk, else a :class:`ScoreTable`.
    """

    lines: Union[ByteTable, "ScoreTable"]
    scores: np.ndarray
    is_target: Optional[np.ndarray]
    enroll_rows: Optional[np.ndarray] = None
    test_rows: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def has_labels(self) -> bool:
        return self.is_target is not None


def iter_score_pieces(path: PathLike, require_labels: bool = False, keys: Optional["EmbeddingKeys"] = None,
                      chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[ScorePiece]:
    """The scores of a score file (or score-norm file) in consecutive pieces, checked as
    :func:`iter_score_file` checks them; with ``keys``, also the embedding rows of each trial (a missing key
    is an error naming the line).

    Plain-ASCII pieces are read in bulk (:mod:`wespk.io.byte_table`), the others through :class:`ScoreTable`;
    the values and the errors are the same.
    """
    bulk_keys = keys is None or keys.index.usable

    def score_piece(piece: Union[ByteTable, TextTable]) -> ScorePiece:
        if isinstance(piece, ByteTable) and bulk_keys:
            has_label = piece.num_columns in (4, 8)
            is_target = byte_label_targets(piece, 3) if has_label else None
            rows = byte_trial_rows(piece, keys.index) if keys is not None else (None, None)
            if (has_label or not require_labels) and (is_target is not None or not has_label) and rows is not None:
                return ScorePiece(piece, byte_float_column(piece, 2, "score"), is_target, *rows)
        table = score_table_of(as_text_table(piece), require_labels)
        rows = (index_trial_keys(table.trial_list(), keys.row_of, keys.source) if keys is not None
                else (None, None))
        return ScorePiece(table, table.scores, table.is_target if table.labels is not None else None, *rows)

    # the pieces are parsed, checked and looked up on the usable cores, in file order
    yield from iter_table_pieces(path, SCORE_FILE_WIDTHS, "score file", chunk_bytes, transform=score_piece)


def read_scores_and_targets(path: PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Tuple[np.ndarray, np.ndarray]:
    """The scores (float64) and target flags of a labelled score file, read a piece at a time.

    Only the two arrays are kept (9 bytes per trial), not the keys, so memory
    stays small for lists of millions of trials.
    """
    scores, targets = [], []
    for piece in iter_score_pieces(path, require_labels=True, chunk_bytes=chunk_bytes):
        scores.append(piece.scores)
        targets.append(piece.is_target)
    return np.concatenate(scores), np.concatenate(targets)


def score_table_of(table: TextTable, require_labels: bool = False) -> ScoreTable:
    """The :class:`ScoreTable` of a score-file :class:`TextTable` (labels and numbers checked)."""
    width = table.num_columns
    has_label = width in (4, 8)
    if require_labels and not has_label:
        raise DataFileError(table.path, table.line_of(0),
                            "score file has no label column (target/nontarget) in field 4")
    labels = check_label_column(table, 3) if has_label else None
    scores = parse_float_column(table, 2, "score")
    quality = None
    if width in (7, 8):
        first = 4 if has_label else 3
        names = ("enroll_mag", "test_mag", "enroll_cohort_mean", "test_cohort_mean")
        quality = np.stack([parse_float_column(table, first + i, name) for i, name in enumerate(names)], axis=1)
    return ScoreTable(path=table.path, enroll=table.columns[0], test=table.columns[1], scores=scores,
                      score_text=table.columns[2], labels=labels, line_numbers=table.line_numbers,
                      quality=quality)


def read_score_norm_file(path: PathLike) -> ScoreTable:
    """Read a score-norm file (7 or 8 fields) with its quality columns."""
    table = read_score_file(path)
    if table.quality is None:
        raise DataFileError(table.path, table.line_of(0),
                            "not a score-norm file: expected 'enroll test score [label] enroll_mag test_mag "
                            "enroll_cohort_mean test_cohort_mean' (7 or 8 fields)")
    return table


def format_fixed(values: np.ndarray, decimals: int) -> List[str]:
    """Format floats with a fixed number of decimals, as ``'{:.Nf}'.format`` does."""
    fmt = f"%.{decimals}f"
    return [fmt % v for v in np.asarray(values, dtype=np.float64).tolist()]


def _rounded(values: np.ndarray, decimals: int) -> Tuple[np.ndarray, np.ndarray]:
    """``rint(x * 10**d) / 10**d`` and the indices where that may differ from parsing ``'%.{d}f' % x``."""
    values = np.asarray(values, dtype=np.float64)
    scale = 10.0 ** decimals
    scaled = values * scale
    result = np.rint(scaled) / scale
    distance_to_half = np.abs(scaled - np.floor(scaled) - 0.5)
    risky = (distance_to_half <= 4 * np.spacing(np.abs(scaled))) | (np.abs(scaled) >= 2.0 ** 52)
    return result, np.flatnonzero(risky)


def round_like_format(values: np.ndarray, text: Sequence[str], decimals: int) -> np.ndarray:
    """``float(text[i])`` for every ``i``, where ``text == format_fixed(values, decimals)``, mostly without parsing.

    ``rint(x * 10**d) / 10**d`` is the same double as parsing the correctly
    rounded ``'%.{d}f'`` string, except where ``x * 10**d`` lies within a
    rounding error of a half-way point; those few values are parsed from
    ``text``.
    """
    result, risky = _rounded(values, decimals)
    for index in risky:
        result[index] = float(text[index])
    return result


def round_to_decimals(values: np.ndarray, decimals: int) -> np.ndarray:
    """:func:`round_like_format` without the text: only the few values near a half-way point are formatted."""
    result, risky = _rounded(values, decimals)
    fmt = f"%.{decimals}f"
    for index in risky:
        result[index] = float(fmt % float(values[index]))
    return result


def score_lines(enroll: Sequence[str], test: Sequence[str], scores: Union[np.ndarray, Sequence[str]],
                labels: Optional[Sequence[str]] = None, decimals: Optional[int] = 5) -> List[str]:
    """The lines ``enroll test score [label]`` of :func:`write_score_file`."""
    if not (len(enroll) == len(test) == len(scores)) or (labels is not None and len(labels) != len(enroll)):
        raise ValueError("enroll, test, scores and labels must have the same length")
    if len(scores) and isinstance(scores[0], str):
        values, score_format = list(scores), "%s"
    elif decimals is None:
        values, score_format = [repr(v) for v in np.asarray(scores, dtype=np.float64).tolist()], "%s"
    else:
        values, score_format = np.asarray(scores, dtype=np.float64).tolist(), f"%.{decimals}f"
    columns = [enroll, test, values] + ([labels] if labels is not None else [])
    line_format = " ".join(["%s", "%s", score_format] + (["%s"] if labels is not None else [])) + "\n"
    return [line_format % fields for fields in zip(*columns)]


def write_score_file(path: PathLike, enroll: Sequence[str], test: Sequence[str], scores: Union[np.ndarray, Sequence[str]],
                     labels: Optional[Sequence[str]] = None, decimals: Optional[int] = 5) -> None:
    """Write ``enroll test score [label]`` lines atomically.

    ``scores`` is an array (formatted with ``decimals`` decimals, or Python's
    shortest round-trip form when ``decimals`` is None) or a list of
    already-formatted strings.
    """
    lines = score_lines(enroll, test, scores, labels, decimals)
    with atomic_output(path) as f:
        f.writelines(lines)


def score_norm_lines(enroll: Sequence[str], test: Sequence[str], normed_scores: np.ndarray,
                     labels: Optional[Sequence[str]], enroll_mag: np.ndarray, test_mag: np.ndarray,
                     enroll_cohort_mean: np.ndarray, test_cohort_mean: np.ndarray) -> List[str]:
    """The lines of :func:`write_score_norm_file`."""
    numbers = [np.asarray(v, dtype=np.float64).tolist()
               for v in (enroll_mag, test_mag, enroll_cohort_mean, test_cohort_mean)]
    columns = [enroll, test, np.asarray(normed_scores, dtype=np.float64).tolist()]
    line_format = "%s %s %.5f"
    if labels is not None:
        columns.append(labels)
        line_format += " %s"
    line_format += " %.4f %.4f %.4f %.4f\n"
    return [line_format % fields for fields in zip(*columns, *numbers)]


def write_score_norm_file(path: PathLike, enroll: Sequence[str], test: Sequence[str], normed_scores: np.ndarray,
                          labels: Optional[Sequence[str]], enroll_mag: np.ndarray, test_mag: np.ndarray,
                          enroll_cohort_mean: np.ndarray, test_cohort_mean: np.ndarray) -> None:
    """Write WeSpeaker's score-norm layout atomically.

    ``enroll test normed_score label enroll_mag test_mag enroll_cohort_mean
    test_cohort_mean`` with the score at 5 decimals and the rest at 4; the
    label field is left out when ``labels`` is None.
    """
    lines = score_norm_lines(enroll, test, normed_scores, labels, enroll_mag, test_mag, enroll_cohort_mean,
                             test_cohort_mean)
    with atomic_output(path) as f:
        f.writelines(lines)


@dataclass
class EmbeddingKeys:
    """The keys of an embedding set, for mapping trial fields to rows: a dict for the string path, a
    :class:`~wespk.io.byte_table.KeyIndex` for the bulk path; ``source`` names the set in errors."""

    row_of: Dict[str, int]
    index: KeyIndex
    source: str


#: Lines assembled at a time by the byte writers (a few tens of MB of temporaries).
JOIN_ROWS = 65536


def byte_trial_rows(table: ByteTable, index: KeyIndex) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Embedding rows of the enroll and test fields (columns 0 and 1) of a :class:`ByteTable` piece, or
    None when a key is missing (then :func:`index_trial_keys` on the piece's :class:`TrialList` names it)."""
    enroll_rows = index.lookup(table, 0)
    test_rows = index.lookup(table, 1)
    if enroll_rows.min(initial=0) < 0 or test_rows.min(initial=0) < 0:
        return None
    return enroll_rows, test_rows


def byte_score_lines(table: ByteTable, columns: Sequence[Union[int, Tuple[np.ndarray, int]]]) -> bytes:
    """Lines of fields joined by single spaces: an ``int`` copies that column of ``table``, ``(values, d)``
    formats numbers as ``'%.{d}f'``; the same bytes as the ``%``-formatted lines of the string path."""
    out = []
    for lo in range(0, table.num_rows, JOIN_ROWS):
        hi = min(table.num_rows, lo + JOIN_ROWS)
        fields = []
        for column in columns:
            if isinstance(column, int):
                data, lengths = field_bytes(table.buffer, table.starts[lo:hi, column], table.lengths[lo:hi, column]), \
                    table.lengths[lo:hi, column]
                fields.append((data, lengths, "left"))
            else:
                values, decimals = column
                fields.append((*fixed_decimals(values[lo:hi], decimals), "right"))
        out.append(join_fields(fields))
    return b"".join(out)


def byte_float_column(table: ByteTable, column: int, name: str) -> np.ndarray:
    """:func:`parse_float_column` of a :class:`ByteTable` column: plain decimals parsed in bulk, the rest
    by ``float()``, with the same errors."""
    values, parsed = parse_decimals(table, column)
    rest = np.flatnonzero(~parsed)
    if len(rest):
        # the other spellings (exponents, 17-digit calibrated scores) through numpy's bytes -> float64,
        # which parses each field as float() does, in one call; a field it rejects or a value that is not
        # finite goes to the per-field path below for its error message
        fields = field_bytes(table.buffer, table.starts[rest, column], table.lengths[rest, column])
        try:
            rest_values = fields.view(f"S{fields.shape[1]}").reshape(-1).astype(np.float64)
        except ValueError:
            rest_values = None
        if rest_values is not None and np.isfinite(rest_values).all():
            values[rest] = rest_values
            return values
        texts = [table.field(int(row), column) for row in rest]
        columns = [[] for _ in range(column)] + [texts]
        values[rest] = parse_float_column(TextTable(table.path, columns, table.line_numbers[rest]), column, name)
    return values


def lookup_rows(key_to_row: Dict[str, int], keys: Sequence[str]) -> np.ndarray:
    """``key_to_row[key]`` for every key, as int64; raises KeyError for a missing key.

    ``operator.itemgetter`` runs the lookups in C, a third faster than a
    Python-level ``map`` over half a million trial keys.
    """
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    if len(keys) == 1:
        return np.array([key_to_row[keys[0]]], dtype=np.int64)
    return np.array(operator.itemgetter(*keys)(key_to_row), dtype=np.int64)


def index_trial_keys(trials: TrialList, key_to_row: Dict[str, int], source: str) -> Tuple[np.ndarray, np.ndarray]:
    """Map the enroll and test keys of ``trials`` to rows of an embedding matrix.

    A key missing from ``key_to_row`` is an error naming the trial file, its
    line and the key; ``source`` names where the embeddings came from.
    """
    try:
        enroll_rows = lookup_rows(key_to_row, trials.enroll)
        test_rows = lookup_rows(key_to_row, trials.test)
    except KeyError:
        for row, (enroll, test) in enumerate(zip(trials.enroll, trials.test)):
            for side, key in (("enroll", enroll), ("test", test)):
                if key not in key_to_row:
                    raise DataFileError(trials.path, int(trials.line_numbers[row]),
                                        f"{side} key {key!r} has no embedding in {source}") from None
        raise
    return enroll_rows, test_rows

