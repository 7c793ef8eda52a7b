"""QMF calibration: a logistic-regression fusion of the score with quality measures.

This follows WeSpeaker's ``bin/score_calibration.py`` (see
``shared/golden/scoring/NOTES.md`` sections 4 to 6):

1. :func:`gather_factors` turns a score-norm file (normalised score, embedding
   magnitudes, cohort means) plus utterance durations into a factor table:
   for each pair (durations capped at ``max_dur``, magnitudes, cohort means)
   the side-independent ``min, max, max - min, max / min``, formatted with 4
   decimals. Line layout: ``enroll test label score dmin dmax ddiff dratio
   mmin mmax mdiff mratio cmin cmax cdiff cratio``.
2. :func:`train_qmf` fits ``llr = w . [score, factors] + b`` in float64 by
   minimising Cllr with ``torch.optim.LBFGS(lr=0.01)`` (default inner
   settings, no line search), at most 50 outer steps, stopping as soon as an
   outer step improves the loss by less than 1e-4 bits. Weights start at
   ``1/D`` (rounded to float32, as ``nn.Linear`` in float32 then ``.double()``
   does) and the bias at 0. With the same data this reproduces WeSpeaker's
   ``calibration_model.pt`` bit for bit.
3. :func:`apply_qmf` maps factor rows to calibrated scores, which are
   log-likelihood ratios (natural log).

``features="lap"`` replaces WeSpeaker's quality measures with those of the
LAP paper's QMF (Kim et al., Interspeech 2025): per side, not symmetrised, the
log duration, the L1 and L2 norms and the standard deviation of the raw
embedding (as read from the scp, before any mean subtraction), in the order
``score log_dur_e log_dur_t l1_e l2_e l1_t l2_t std_e std_t``. (LAP fits
sklearn's logistic regression on them; here the same Cllr/LBFGS fit as for
WeSpeaker's measures is used.)

The features are used exactly as written in the factor file (4 decimals);
the in-memory tables here hold those rounded values too, so training from a
file or from memory gives the same model.
"""

import logging
import operator
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.byte_table import ByteTable, KeyIndex, join_fields, parse_byte_table
from wespk.io.files import DataFileError, atomic_output
from wespk.io.trials import DEFAULT_CHUNK_BYTES, UNKNOWN_LABEL, as_text_table, check_label_column, read_text_table
from wespk.scoring.score_files import (ScoreTable, byte_float_column, format_fixed, iter_score_file, iter_score_pieces,
                                       parse_float_column, round_to_decimals, score_lines, score_table_of,
                                       write_score_file)
from wespk.utils.parallel import ordered_map

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: The torch part (the model, its fit and its application) lives in :mod:`wespk.scoring.qmf` and is
#: imported on first use, so that reading and gathering factors (and its entry points) do not wait for torch.
_QMF_NAMES = ("QualityMeasureFusion", "cllr_loss", "TrainingResult", "train_qmf", "train_qmf_on_factors",
              "save_qmf_model", "load_qmf_model", "apply_qmf")


def __getattr__(name):
    if name in _QMF_NAMES:
        from wespk.scoring import qmf

        return getattr(qmf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

PathLike = Union[str, os.PathLike]

#: Durations are capped at this many seconds before building features (WeSpeaker's recipe value).
DEFAULT_MAX_DUR = 20.0
#: Names of the feature columns of a factor file, in order (score first).
FACTOR_NAMES = ("score",
                "dur_min", "dur_max", "dur_diff", "dur_ratio",
                "mag_min", "mag_max", "mag_diff", "mag_ratio",
                "cohort_mean_min", "cohort_mean_max", "cohort_mean_diff", "cohort_mean_ratio")
#: The LAP paper's quality measures (score first), per side.
LAP_FACTOR_NAMES = ("score", "log_dur_enroll", "log_dur_test", "l1_enroll", "l2_enroll", "l1_test", "l2_test",
                    "std_enroll", "std_test")
#: Feature sets of :func:`gather_factors`.
FEATURE_SETS = ("wespeaker", "lap")
#: Trials per block of :func:`iter_factor_blocks` / :func:`calibrate_score_file`. The last digits of
#: the float64 product that applies the model depend on how the rows are split (and aligned), so the
#: split is fixed: a file of up to this many trials is one block, a longer one is cut every this many.
APPLY_ROWS = 1 << 20
#: Fewest target (and non-target) trials a cross-fit may train on (:mod:`wespk.scoring.calibration_cross_fit`;
#: defined here, without torch, for the entry point's defaults).
DEFAULT_MIN_TARGETS = 50


def factor_names(feature_set: str = "wespeaker", with_duration: bool = True) -> Tuple[str, ...]:
    """The feature names of a factor table of ``feature_set``, with or without the duration features."""
    if feature_set == "wespeaker":
        return FACTOR_NAMES if with_duration else FACTOR_NAMES[:1] + FACTOR_NAMES[5:]
    if feature_set == "lap":
        return LAP_FACTOR_NAMES if with_duration else LAP_FACTOR_NAMES[:1] + LAP_FACTOR_NAMES[3:]
    raise ValueError(f"unknown feature set {feature_set!r}; choose from {', '.join(FEATURE_SETS)}")


@dataclass
class CalibrationFactors:
    """A factor table: one row of features per trial, the score in column 0.

    ``features`` holds the values as written in the factor file (score as in
    the score-norm file, the rest rounded to 4 decimals); :meth:`text_columns`
    gives those strings. A table read from a factor file keeps its strings in
    ``feature_text``; a gathered one keeps the score strings (``score_text``)
    and the unrounded feature values (``unrounded``) and formats them only
    when asked (formatting millions of numbers is most of the cost of
    gathering). ``labels`` are ``target``, ``nontarget`` or ``unknown``
    (trials without a key).
    """

    path: str
    enroll: List[str]
    test: List[str]
    labels: List[str]
    features: np.ndarray
    feature_text: Optional[List[List[str]]]
    line_numbers: Optional[np.ndarray] = None
    feature_names: Sequence[str] = field(default_factory=lambda: FACTOR_NAMES)
    score_text: Optional[List[str]] = None
    unrounded: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.enroll)

    def text_columns(self) -> List[List[str]]:
        """The feature columns as written in a factor file (score first)."""
        if self.feature_text is not None:
            return self.feature_text
        return [list(self.score_text)] + [format_fixed(self.unrounded[:, c], 4) for c in range(self.unrounded.shape[1])]

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])


def _pair_features(first: np.ndarray, second: np.ndarray, what: str, table: ScoreTable) -> List[np.ndarray]:
    """``min, max, max-min, max/min`` of two columns (unrounded)."""
    low = np.minimum(first, second)
    high = np.maximum(first, second)
    zero = np.flatnonzero(low == 0)
    if len(zero):
        row = int(zero[0])
        raise DataFileError(table.path, table.line_of(row),
                            f"{what}: the smaller value is 0, so the ratio max/min is undefined")
    negative = int(np.count_nonzero(low < 0))
    if negative:
        logger.warning("%s: %d trials have a negative minimum %s; their max/min ratio is not meaningful "
                       "(S-norm cohort means can be negative; QMF is designed for AS-norm)",
                       table.path, negative, what)
    return [low, high, high - low, high / low]


def _trial_durations(score_norm: ScoreTable, durations: Mapping[str, float]) -> Tuple[np.ndarray, np.ndarray]:
    """Enroll and test durations of every trial; a key without a duration is an error naming the line."""
    def lookup(keys):  # operator.itemgetter runs the lookups in C
        if len(keys) < 2:
            return np.array([durations[k] for k in keys], dtype=np.float64)
        return np.array(operator.itemgetter(*keys)(durations), dtype=np.float64)

    try:
        enroll_dur = lookup(score_norm.enroll)
        test_dur = lookup(score_norm.test)
    except KeyError:
        for row, (enroll, test) in enumerate(zip(score_norm.enroll, score_norm.test)):
            for key in (enroll, test):
                if key not in durations:
                    raise DataFileError(score_norm.path, score_norm.line_of(row),
                                        f"no duration (utt2dur) for {key!r}") from None
        raise
    return enroll_dur, test_dur


def embedding_quality(matrix: np.ndarray) -> np.ndarray:
    """``[N, 3]`` float64: L1 norm, L2 norm and (population) standard deviation of each raw embedding."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.stack([np.abs(matrix).sum(axis=1), np.sqrt((matrix * matrix).sum(axis=1)), matrix.std(axis=1)], axis=1)


def _lap_factors(score_norm: ScoreTable, durations: Optional[Mapping[str, float]], embeddings) -> List[np.ndarray]:
    if embeddings is None:
        raise ValueError("the lap features need the raw embeddings of the trials (--embeddings)")
    from wespk.scoring.score_files import index_trial_keys

    enroll_rows, test_rows = index_trial_keys(score_norm.trial_list(), embeddings.row_of, embeddings.source)
    used = np.flatnonzero(np.bincount(np.concatenate([enroll_rows, test_rows]), minlength=len(embeddings.keys)))
    quality = np.full((len(embeddings.keys), 3), np.nan)
    quality[used] = embedding_quality(embeddings.matrix[used])
    columns = []
    if durations is not None:
        enroll_dur, test_dur = _trial_durations(score_norm, durations)
        bad = np.flatnonzero((enroll_dur <= 0) | (test_dur <= 0))
        if len(bad):
            raise DataFileError(score_norm.path, score_norm.line_of(int(bad[0])),
                                "a duration is not positive, so its log is undefined")
        columns += [np.log(enroll_dur), np.log(test_dur)]
    columns += [quality[enroll_rows, 0], quality[enroll_rows, 1], quality[test_rows, 0], quality[test_rows, 1],
                quality[enroll_rows, 2], quality[test_rows, 2]]
    return columns


def _wespeaker_columns(table, quality: np.ndarray, trial_durations: Optional[Tuple[np.ndarray, np.ndarray]],
                       max_dur: float) -> List[np.ndarray]:
    """WeSpeaker's symmetrised measures (unrounded) from the four score-norm columns and the durations;
    ``table`` (a score table or byte table) names the file and line of an error."""
    pairs = []
    if trial_durations is not None:
        enroll_dur, test_dur = trial_durations
        pairs.append((np.minimum(enroll_dur, max_dur), np.minimum(test_dur, max_dur), "duration"))
    pairs.append((quality[:, 0], quality[:, 1], "magnitude"))
    pairs.append((quality[:, 2], quality[:, 3], "cohort mean"))
    return [column for first, second, what in pairs for column in _pair_features(first, second, what, table)]


def _feature_matrix(scores: np.ndarray, columns: Sequence[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """``(unrounded, features)``: the measures as computed, and the feature rows (score first, the measures
    at the value of their 4-decimal text) that the model is trained on and applied to."""
    unrounded = np.stack(columns, axis=1)
    features = np.empty((len(scores), len(columns) + 1), dtype=np.float64)
    features[:, 0] = scores
    for c, column in enumerate(columns):
        features[:, c + 1] = round_to_decimals(column, 4)  # the value of the 4-decimal text, without formatting it
    return unrounded, features


def gather_factors(score_norm: ScoreTable, durations: Optional[Mapping[str, float]],
                   max_dur: float = DEFAULT_MAX_DUR, feature_set: str = "wespeaker",
                   embeddings=None) -> CalibrationFactors:
    """Build the QMF factor table from a score-norm file and utterance durations.

    ``score_norm`` is a table read with
    :func:`~wespk.scoring.score_files.read_score_norm_file`. ``durations``
    maps utterance keys to seconds; pass None to leave the duration features
    out (WeSpeaker's ``drop_duration``). A trial whose key has no duration is
    an error naming the score file line. ``feature_set`` ``"wespeaker"``
    (default) builds WeSpeaker's symmetrised measures from the score-norm
    columns; ``"lap"`` the LAP measures (module docstring) from ``durations``
    (not capped) and ``embeddings``, an
    :class:`~wespk.scoring.cosine.EmbeddingSet` of the raw embeddings of every
    trial utterance.
    """
    names = factor_names(feature_set, durations is not None)
    if score_norm.quality is None:
        raise ValueError(f"{score_norm.path}: not a score-norm file (no magnitude / cohort-mean columns)")
    labels = list(score_norm.labels) if score_norm.labels is not None else [UNKNOWN_LABEL] * len(score_norm)
    if feature_set == "lap":
        columns = _lap_factors(score_norm, durations, embeddings)
    else:
        columns = _wespeaker_columns(score_norm, score_norm.quality,
                                     None if durations is None else _trial_durations(score_norm, durations), max_dur)
    unrounded, features = _feature_matrix(score_norm.scores, columns)
    return CalibrationFactors(path=score_norm.path, enroll=list(score_norm.enroll), test=list(score_norm.test),
                              labels=labels, features=features, feature_text=None,
                              line_numbers=score_norm.line_numbers, feature_names=names,
                              score_text=list(score_norm.score_text), unrounded=unrounded)


def factor_lines(factors: CalibrationFactors) -> List[str]:
    """The lines of :func:`write_factors`."""
    return [" ".join(fields) + "\n" for fields in zip(factors.enroll, factors.test, factors.labels,
                                                       *factors.text_columns())]


def write_factors(path: PathLike, factors: CalibrationFactors) -> None:
    """Write a factor table atomically in WeSpeaker's ``.calibration`` layout."""
    with atomic_output(path) as f:
        f.writelines(factor_lines(factors))


def concat_factors(parts: Sequence[CalibrationFactors]) -> CalibrationFactors:
    """Consecutive factor tables of one file as one table."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    line_numbers = None if first.line_numbers is None else np.concatenate([p.line_numbers for p in parts])
    text = None
    if all(p.feature_text is not None for p in parts):
        text = [[t for p in parts for t in p.feature_text[c]] for c in range(len(first.feature_text))]
    return CalibrationFactors(path=first.path, enroll=[k for p in parts for k in p.enroll],
                              test=[k for p in parts for k in p.test], labels=[k for p in parts for k in p.labels],
                              features=np.concatenate([p.features for p in parts]), feature_text=text,
                              line_numbers=line_numbers, feature_names=first.feature_names,
                              score_text=None if text is not None else [t for p in parts for t in p.score_text],
                              unrounded=None if text is not None else np.concatenate([p.unrounded for p in parts]))


def _split_factors(factors: CalibrationFactors, rows: int) -> Tuple[CalibrationFactors, CalibrationFactors]:
    def part(lo, hi):
        def cut(value):
            return None if value is None else value[lo:hi]

        return CalibrationFactors(path=factors.path, enroll=factors.enroll[lo:hi], test=factors.test[lo:hi],
                                  labels=factors.labels[lo:hi], features=np.ascontiguousarray(factors.features[lo:hi]),
                                  feature_text=None if factors.feature_text is None else
                                  [column[lo:hi] for column in factors.feature_text],
                                  line_numbers=cut(factors.line_numbers), feature_names=factors.feature_names,
                                  score_text=cut(factors.score_text), unrounded=cut(factors.unrounded))

    return part(0, rows), part(rows, len(factors))


def iter_factor_blocks(path: PathLike, durations: Optional[Mapping[str, float]], max_dur: float = DEFAULT_MAX_DUR,
                       feature_set: str = "wespeaker", embeddings=None, rows: int = APPLY_ROWS,
                       chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[CalibrationFactors]:
    """:func:`gather_factors` of a score-norm file in consecutive blocks of ``rows`` trials (the last shorter).

    The file is read a piece of ``chunk_bytes`` at a time, so memory is bounded by the block size; the
    factors of a row do not depend on the pieces, so the blocks hold the same values as the whole table.
    """
    pending: List[CalibrationFactors] = []
    count = 0
    for table in iter_score_file(path, chunk_bytes=chunk_bytes):
        if table.quality is None:
            raise DataFileError(table.path, table.line_of(0),
                                "not a score-norm file: expected 'enroll test score [label] enroll_mag test_mag "
                                "enroll_cohort_mean test_cohort_mean' (7 or 8 fields)")
        pending.append(gather_factors(table, durations, max_dur, feature_set, embeddings))
        count += len(pending[-1])
        while count >= rows:
            block, rest = _split_factors(concat_factors(pending), rows)
            yield block
            pending, count = ([rest], len(rest)) if len(rest) else ([], 0)
    if count:
        yield concat_factors(pending)


@dataclass
class CalibratedFile:
    """What :func:`calibrate_score_file` computed: per trial the raw score, the llr and (if known) the label."""

    path: str
    scores: np.ndarray
    llrs: np.ndarray
    is_target: Optional[np.ndarray]


class _LineBlock:
    """Consecutive trials of a score-norm file with their feature rows, for :func:`calibrate_score_file`:
    the lines as a byte table (bulk path) or as a factor table (string path)."""

    def __init__(self, lines: Union[ByteTable, CalibrationFactors], features: np.ndarray,
                 is_target: Optional[np.ndarray]):
        self.lines, self.features, self.is_target = lines, features, is_target

    def __len__(self) -> int:
        return len(self.features)

    def split(self, rows: int) -> Tuple["_LineBlock", "_LineBlock"]:
        if isinstance(self.lines, ByteTable):
            lines = self.lines
            halves = [ByteTable(lines.path, lines.buffer, lines.starts[a:b], lines.lengths[a:b], lines.line_numbers[a:b])
                      for a, b in ((0, rows), (rows, len(self)))]
        else:
            halves = list(_split_factors(self.lines, rows))
        cut = (lambda v, a, b: None if v is None else v[a:b])
        return (_LineBlock(halves[0], self.features[:rows], cut(self.is_target, 0, rows)),
                _LineBlock(halves[1], self.features[rows:], cut(self.is_target, rows, len(self))))

    def calibrated_lines(self, llrs: np.ndarray, labelled: bool) -> bytes:
        """``enroll test llr [label]`` (llr at full precision, Python's shortest repr), as bytes."""
        if not isinstance(self.lines, ByteTable):
            return "".join(score_lines(self.lines.enroll, self.lines.test, llrs,
                                       self.lines.labels if labelled else None, decimals=None)).encode()
        text = ("\n".join(map(repr, np.asarray(llrs, dtype=np.float64).tolist())) + "\n").encode("ascii")
        llr_table = parse_byte_table("llr", text, width=1)
        columns = [self.lines.column_bytes(0), self.lines.column_bytes(1), llr_table.column_bytes(0)]
        if labelled:
            columns.append(self.lines.column_bytes(3))
        return join_fields([(data, lengths, "left") for data, lengths in columns])


def _line_blocks(input_path: PathLike, durations: Optional[Mapping[str, float]], max_dur: float, feature_set: str,
                 embeddings, chunk_bytes: int) -> Iterator[_LineBlock]:
    """The pieces of a score-norm file as :class:`_LineBlock` s: plain-ASCII pieces with WeSpeaker's features
    are read in bulk; the others through :func:`gather_factors` (which gives the errors)."""
    index = seconds = None
    if feature_set == "wespeaker" and durations is not None and len(durations):
        index = KeyIndex(list(durations))
        seconds = np.fromiter(durations.values(), dtype=np.float64, count=len(durations))

    def block_of(piece) -> _LineBlock:
        lines = piece.lines
        bulk = (isinstance(lines, ByteTable) and lines.num_columns in (7, 8) and feature_set == "wespeaker"
                and (durations is None or (index is not None and index.usable)))
        if bulk and durations is not None:
            enroll_rows, test_rows = index.lookup(lines, 0), index.lookup(lines, 1)
            bulk = enroll_rows.min(initial=0) >= 0 and test_rows.min(initial=0) >= 0
        if bulk:
            first = lines.num_columns - 4
            quality = np.stack([byte_float_column(lines, first + i, name) for i, name in
                                enumerate(("enroll_mag", "test_mag", "enroll_cohort_mean", "test_cohort_mean"))], axis=1)
            trial_durations = None if durations is None else (seconds[enroll_rows], seconds[test_rows])
            _, features = _feature_matrix(piece.scores, _wespeaker_columns(lines, quality, trial_durations, max_dur))
            return _LineBlock(lines, features, piece.is_target)
        table = score_table_of(as_text_table(lines)) if isinstance(lines, ByteTable) else lines
        if table.quality is None:
            raise DataFileError(table.path, table.line_of(0),
                                "not a score-norm file: expected 'enroll test score [label] enroll_mag test_mag "
                                "enroll_cohort_mean test_cohort_mean' (7 or 8 fields)")
        factors = gather_factors(table, durations, max_dur, feature_set, embeddings)
        is_target = None if table.labels is None else table.is_target
        return _LineBlock(factors, factors.features, is_target)

    # the factors of each piece are gathered on the usable cores, in file order
    yield from ordered_map(block_of, iter_score_pieces(input_path, chunk_bytes=chunk_bytes))


def calibrate_score_file(state_dict: Mapping[str, "torch.Tensor"], input_path: PathLike, output_path: PathLike,
                         durations: Optional[Mapping[str, float]], max_dur: float = DEFAULT_MAX_DUR,
                         feature_set: str = "wespeaker", embeddings=None, float32_weights: bool = False,
                         factors_path: Optional[PathLike] = None, rows: int = APPLY_ROWS,
                         chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> CalibratedFile:
    """Gather the factors of a score-norm file, apply the model and write the calibrated scores, streamed.

    The output (and the factor file, when ``factors_path`` is given) is the same as
    :func:`write_calibrated_scores` of :func:`apply_qmf` on the whole table for files of up to ``rows``
    trials; longer files are applied in blocks of ``rows`` (:data:`APPLY_ROWS`), so memory does not grow
    with the number of trials. Both outputs are written atomically. Plain-ASCII pieces are gathered and
    written in bulk (:mod:`wespk.io.byte_table`) unless a factor file is asked for; the bytes are the same.
    """
    from wespk.scoring.qmf import apply_qmf

    if factors_path is not None:
        return _calibrate_score_file_with_factors(state_dict, input_path, output_path, durations, max_dur,
                                                  feature_set, embeddings, float32_weights, factors_path, rows,
                                                  chunk_bytes)
    scores, llrs, targets = [], [], []
    labelled = None
    with atomic_output(output_path, "wb") as out:
        def flush(parts: Sequence[_LineBlock]) -> None:
            """Apply the model to the rows of ``parts`` as one block, then write each part's lines."""
            nonlocal labelled
            features = parts[0].features if len(parts) == 1 else np.concatenate([p.features for p in parts])
            block_llrs = apply_qmf(state_dict, features, float32_weights)
            if labelled is None:
                labelled = parts[0].is_target is not None
            start = 0
            for part in parts:
                out.write(part.calibrated_lines(block_llrs[start:start + len(part)], labelled))
                start += len(part)
                if labelled:
                    targets.append(part.is_target)
            scores.append(features[:, 0].copy())
            llrs.append(block_llrs)

        pending: List[_LineBlock] = []
        count = 0
        for block in _line_blocks(input_path, durations, max_dur, feature_set, embeddings, chunk_bytes):
            pending.append(block)
            count += len(block)
            while count >= rows:  # the same blocks of ``rows`` trials as iter_factor_blocks
                taken, size = [], 0
                while size < rows:
                    part = pending.pop(0)
                    if size + len(part) > rows:
                        part, rest = part.split(rows - size)
                        pending.insert(0, rest)
                    taken.append(part)
                    size += len(part)
                flush(taken)
                count -= rows
        if pending:
            flush(pending)
    return CalibratedFile(path=str(input_path), scores=np.concatenate(scores), llrs=np.concatenate(llrs),
                          is_target=np.concatenate(targets) if labelled else None)


def _calibrate_score_file_with_factors(state_dict, input_path, output_path, durations, max_dur, feature_set,
                                       embeddings, float32_weights, factors_path, rows, chunk_bytes) -> CalibratedFile:
    """:func:`calibrate_score_file` with the factor file written too (the string path)."""
    from wespk.scoring.qmf import apply_qmf

    scores, llrs, targets = [], [], []
    labelled = None
    with atomic_output(output_path) as out, atomic_output(factors_path) as factor_file:
        for block in iter_factor_blocks(input_path, durations, max_dur, feature_set, embeddings, rows, chunk_bytes):
            block_llrs = apply_qmf(state_dict, block.features, float32_weights)
            if labelled is None:
                labelled = not all(label == UNKNOWN_LABEL for label in block.labels)
            out.writelines(score_lines(block.enroll, block.test, block_llrs, block.labels if labelled else None,
                                       decimals=None))
            factor_file.writelines(factor_lines(block))
            scores.append(block.features[:, 0].copy())
            llrs.append(block_llrs)
            if labelled:
                targets.append(np.array([label == "target" for label in block.labels], dtype=bool))
    return CalibratedFile(path=str(input_path), scores=np.concatenate(scores), llrs=np.concatenate(llrs),
                          is_target=np.concatenate(targets) if labelled else None)


def read_factors(path: PathLike, feature_set: str = "wespeaker") -> CalibrationFactors:
    """Read a factor file (``enroll test label score f1 ... fK``) of ``feature_set``.

    WeSpeaker's files have 13 numeric columns (9 without durations), LAP's 9 (7).
    """
    layouts = {len(factor_names(feature_set, with_duration)) + 3: with_duration for with_duration in (True, False)}
    table = read_text_table(path, tuple(sorted(layouts)), f"{feature_set} calibration factor file")
    labels = check_label_column(table, 2, allow_unknown=True)
    names = factor_names(feature_set, layouts[table.num_columns])
    features = np.stack([parse_float_column(table, 3 + i, name) for i, name in enumerate(names)], axis=1)
    return CalibrationFactors(path=table.path, enroll=table.columns[0], test=table.columns[1], labels=labels,
                              features=features, feature_text=table.columns[3:],
                              line_numbers=table.line_numbers, feature_names=names)


def write_calibrated_scores(path: PathLike, factors: CalibrationFactors, llrs: np.ndarray) -> None:
    """Write ``enroll test llr label`` (full precision); the label is left out for unlabelled trials."""
    labels = None if all(label == UNKNOWN_LABEL for label in factors.labels) else factors.labels
    write_score_file(path, factors.enroll, factors.test, llrs, labels, decimals=None)
