"""Trial lists: ``enroll test [target|nontarget]`` per line, the one reader every stage uses.

Also the fast reader of whitespace-separated text tables behind it (shared
with the score files of :mod:`wespk.scoring.score_files`): VoxCeleb-E/H lists
have over half a million lines, so the whole file is split at once and the
number of fields of every line is checked with numpy instead of a Python loop
over lines. Any problem (wrong field count, bad label) is reported as a
:class:`~wespk.io.files.DataFileError` naming the file and the line.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.byte_table import ByteTable, RowLines, parse_byte_table
from wespk.io.files import DataFileError
from wespk.utils.parallel import ordered_map

PathLike = Union[str, os.PathLike]

#: Labels accepted in trial lists and score files, and whether each means "target".
LABEL_IS_TARGET: Dict[str, bool] = {"target": True, "nontarget": False}
#: Placeholder written in the label column of files derived from unlabelled trials.
UNKNOWN_LABEL = "unknown"

_IS_ASCII_WHITESPACE = np.zeros(256, dtype=bool)
_IS_ASCII_WHITESPACE[[ord(c) for c in " \t\n\r\x0b\x0c"]] = True


@dataclass
class TextTable(RowLines):
    """The whitespace-separated fields of a text file, column by column.

    ``line_numbers[i]`` is the 1-based line of row ``i`` in ``path`` (blank
    lines are skipped, so rows and lines can differ).
    """

    path: str
    columns: List[List[str]]
    line_numbers: np.ndarray

    @property
    def num_columns(self) -> int:
        return len(self.columns)


def _fields_per_line(data: bytes, text: str, num_tokens: int) -> np.ndarray:
    """Number of whitespace-separated fields on each line of ``data``, vectorised."""
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    buf = np.frombuffer(data, dtype=np.uint8)
    is_space = _IS_ASCII_WHITESPACE[buf]
    follows_space = np.empty_like(is_space)
    follows_space[0] = True
    follows_space[1:] = is_space[:-1]
    token_starts = np.flatnonzero(follows_space & ~is_space)
    newlines = np.flatnonzero(buf == ord("\n"))
    counts = np.bincount(np.searchsorted(newlines, token_starts), minlength=n_lines)
    if int(counts.sum()) != num_tokens:
        # Non-ASCII whitespace (str.split also splits on e.g. U+00A0): count slowly.
        counts = np.array([len(line.split()) for line in text.split("\n")[:n_lines]], dtype=np.int64)
    return counts


#: Bytes read at a time by the chunked readers (about 80,000 trial lines): pieces this size are parsed
#: faster than larger ones (their temporaries stay in cache) and spread over the cores.
DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024


def _parse_table(path: Path, data: bytes, allowed_widths: Sequence[int], what: str, first_line: int,
                 first_width: Optional[Tuple[int, int]]) -> Optional[TextTable]:
    """The fields of ``data`` (whole lines starting at line ``first_line``), or None when it is blank.

    ``first_width`` is ``(width, line)`` of the file's first non-blank line when
    it lies before ``data``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = first_line + data[:e.start].count(b"\n")
        raise DataFileError(path, line_no, f"not valid UTF-8: {e.reason}") from None
    tokens = text.split()
    if not tokens:
        return None
    counts = _fields_per_line(data, text, len(tokens))
    rows = np.flatnonzero(counts)
    widths = counts[rows]
    width, width_line = first_width or (int(widths[0]), first_line + int(rows[0]))
    wrong = np.flatnonzero(widths != width)
    if width not in allowed_widths or len(wrong):
        row = 0 if width not in allowed_widths else int(wrong[0])
        line = text.split("\n")[int(rows[row])].strip()
        expected = " or ".join(str(w) for w in allowed_widths)
        if width in allowed_widths:
            problem = (f"{what} line has {int(widths[row])} fields but line {width_line} has "
                       f"{width}; every line needs the same layout: {line!r}")
        else:
            problem = f"expected {expected} fields in a {what}, got {int(widths[row])}: {line!r}"
        raise DataFileError(path, first_line + int(rows[row]), problem)
    columns = [tokens[i::width] for i in range(width)]
    return TextTable(path=str(path), columns=columns, line_numbers=rows + first_line)


def iter_line_pieces(path: PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[Tuple[bytes, int]]:
    """``(data, first_line)``: consecutive pieces of about ``chunk_bytes`` bytes of whole lines of a file.

    ``first_line`` is the 1-based file line where ``data`` starts. A missing
    file is a :class:`~wespk.io.files.DataFileError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, None, "file not found")
    first_line = 1
    with open(path, "rb") as f:
        tail = b""
        while True:
            block = f.read(chunk_bytes)
            data = tail + block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no newline yet: one very long line
                    tail = data
                    continue
                data, tail = data[:cut], data[cut:]
            else:
                tail = b""
            if data:
                yield data, first_line
                first_line += data.count(b"\n")
            if not block:
                break


def iter_table_pieces(path: PathLike, allowed_widths: Sequence[int], what: str,
                      chunk_bytes: int = DEFAULT_CHUNK_BYTES, transform: Optional[Callable] = None) -> Iterator:
    """The pieces of :func:`iter_text_table`, each as a :class:`~wespk.io.byte_table.ByteTable` when it is
    plain ASCII with the file's layout (no Python object per field), else as a :class:`TextTable`.

    A :class:`TextTable` piece has been checked as :func:`iter_text_table` checks
    it; a :class:`ByteTable` piece has the right field counts, and
    :func:`as_text_table` turns it into the :class:`TextTable` of the same lines
    (for the checks that only the string path makes, and their error messages).

    With ``transform``, ``transform(piece)`` is yielded instead. After the first piece (which fixes the
    layout), the pieces are parsed and transformed on the usable cores
    (:func:`~wespk.utils.parallel.ordered_map`), in file order; an error is raised at its piece's turn, so
    a caller writing as it goes has written exactly the pieces before it.
    """
    pieces = iter_line_pieces(path, chunk_bytes)
    finish = transform or (lambda table: table)
    first_width = None

    def parse(item) -> Optional[Union[ByteTable, TextTable]]:
        data, first_line = item
        table = parse_byte_table(str(path), data, first_line, None if first_width is None else first_width[0])
        if table is None or table.num_columns not in allowed_widths:
            table = _parse_table(Path(path), data, allowed_widths, what, first_line, first_width)
        return table

    for item in pieces:  # up to the first non-blank piece: its layout is every other piece's
        table = parse(item)
        if table is not None:
            first_width = (table.num_columns, int(table.line_numbers[0]))
            yield finish(table)
            break
    if first_width is None:
        raise DataFileError(path, None, f"empty {what}")

    def work(item):
        table = parse(item)
        return None if table is None else finish(table)

    for result in ordered_map(work, pieces):
        if result is not None:
            yield result


def as_text_table(table: Union[ByteTable, TextTable]) -> TextTable:
    """The :class:`TextTable` of a piece from :func:`iter_table_pieces` (itself if it is one)."""
    if isinstance(table, TextTable):
        return table
    return TextTable(path=table.path, columns=[table.strings(j) for j in range(table.num_columns)],
                     line_numbers=table.line_numbers)


def iter_text_table(path: PathLike, allowed_widths: Sequence[int], what: str,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[TextTable]:
    """:func:`read_text_table` in consecutive pieces of about ``chunk_bytes`` bytes (whole lines).

    Memory stays bounded whatever the length of the file; line numbers and
    errors are those of the whole file.
    """
    first_width = None
    for data, first_line in iter_line_pieces(path, chunk_bytes):
        table = _parse_table(Path(path), data, allowed_widths, what, first_line, first_width)
        if table is not None:
            if first_width is None:
                first_width = (table.num_columns, int(table.line_numbers[0]))
            yield table
    if first_width is None:
        raise DataFileError(path, None, f"empty {what}")


def read_text_table(path: PathLike, allowed_widths: Sequence[int], what: str) -> TextTable:
    """Read a file whose non-blank lines all have the same number of fields.

    ``allowed_widths`` lists the acceptable field counts (for example ``(3, 4)``
    for a score file with an optional label column); ``what`` names the kind of
    file in error messages. The first line fixes the width for the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, None, "file not found")
    table = _parse_table(path, path.read_bytes(), allowed_widths, what, 1, None)
    if table is None:
        raise DataFileError(path, None, f"empty {what}")
    return table


def check_label_column(table: TextTable, column: int, allow_unknown: bool = False) -> List[str]:
    """Return column ``column`` after checking that every value is a known label."""
    labels = table.columns[column]
    allowed = set(LABEL_IS_TARGET) | ({UNKNOWN_LABEL} if allow_unknown else set())
    if not set(labels) <= allowed:
        for row, label in enumerate(labels):
            if label not in allowed:
                names = "' or '".join(sorted(allowed, key=lambda name: name != "target"))
                raise DataFileError(table.path, table.line_of(row),
                                    f"label must be '{names}' (field {column + 1}), got {label!r}")
    return labels


def byte_label_targets(table: ByteTable, column: int) -> Optional[np.ndarray]:
    """Target flags of the label column of a :class:`ByteTable`, or None when a field is not a label
    (then :func:`check_label_column` on :func:`as_text_table` names it)."""
    is_target = table.equals(column, b"target")
    if not np.all(is_target | table.equals(column, b"nontarget")):
        return None
    return is_target


def labels_to_targets(labels: Sequence[str]) -> np.ndarray:
    """Boolean array, True where the label is ``target``."""
    return np.fromiter(map("target".__eq__, labels), dtype=bool, count=len(labels))


@dataclass
class TrialList:
    """A trial list in file order; ``labels`` is None when it has no label column."""

    path: str
    enroll: List[str]
    test: List[str]
    labels: Optional[List[str]]
    line_numbers: np.ndarray

    def __len__(self) -> int:
        return len(self.enroll)

    def __iter__(self) -> Iterator[Tuple[str, str, Optional[str]]]:
        """``(enroll, test, label)`` per trial (label None without a label column)."""
        labels = self.labels if self.labels is not None else [None] * len(self.enroll)
        return iter(zip(self.enroll, self.test, labels))

    @property
    def is_target(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError(f"{self.path}: trial list has no labels")
        return labels_to_targets(self.labels)


def trial_list_of(table: TextTable) -> TrialList:
    """The :class:`TrialList` of a trial-list :class:`TextTable` (its labels checked)."""
    labels = check_label_column(table, 2) if table.num_columns == 3 else None
    return TrialList(path=table.path, enroll=table.columns[0], test=table.columns[1],
                     labels=labels, line_numbers=table.line_numbers)


def iter_trials(path: PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[TrialList]:
    """:func:`read_trials` in consecutive pieces (whole lines, file order), for lists of any length."""
    for table in iter_text_table(path, (2, 3), "trial list", chunk_bytes):
        yield trial_list_of(table)


def read_trials(path: PathLike) -> TrialList:
    """Read a trial list, ``enroll test [target|nontarget]`` per line, in file order.

    Every line has a label or none has; a wrong field count, a bad label, a
    missing or empty file is a :class:`~wespk.io.files.DataFileError` naming the
    file and the line.
    """
    return trial_list_of(read_text_table(path, (2, 3), "trial list"))
