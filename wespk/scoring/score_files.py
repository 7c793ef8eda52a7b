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

from wespk.io.files import DataFileError, atomic_output
from wespk.io.trials import (DEFAULT_CHUNK_BYTES, TextTable, TrialList, check_label_column, iter_text_table,
                             labels_to_targets, read_text_table)

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
    return _score_table(read_text_table(path, SCORE_FILE_WIDTHS, "score file"), require_labels)


def iter_score_file(path: PathLike, require_labels: bool = False,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[ScoreTable]:
    """:func:`read_score_file` in consecutive pieces (whole lines, file order), for files of any length."""
    for table in iter_text_table(path, SCORE_FILE_WIDTHS, "score file", chunk_bytes):
        yield _score_table(table, require_labels)


def read_scores_and_targets(path: PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Tuple[np.ndarray, np.ndarray]:
    """The scores (float64) and target flags of a labelled score file, read a piece at a time.

    Only the two arrays are kept (9 bytes per trial), not the keys, so memory
    stays small for lists of millions of trials.
    """
    scores, targets = [], []
    for table in iter_score_file(path, require_labels=True, chunk_bytes=chunk_bytes):
        scores.append(table.scores)
        targets.append(table.is_target)
    return np.concatenate(scores), np.concatenate(targets)


def _score_table(table: TextTable, require_labels: bool) -> ScoreTable:
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

