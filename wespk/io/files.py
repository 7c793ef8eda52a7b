"""Kaldi-style text files (``key value`` per line) and atomic writes."""

import contextlib
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


class DataFileError(ValueError):
    """A malformed line in a Kaldi data file; the message names file and line."""

    def __init__(self, path: PathLike, line_no: Optional[int], problem: str):
        where = f"{path}:{line_no}" if line_no is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line_no = line_no
        self.problem = problem


def _process_umask() -> int:
    """The process umask, read without changing it (os.umask would, briefly)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(path: PathLike, mode: str = "w", **open_kwargs):
    """Open a temporary file next to ``path``; rename it to ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` keeps its
    previous content (or stays absent), so a killed or failed job never leaves
    a half-written file behind under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the usual umask-based mode
    os.chmod(tmp, 0o666 & ~_process_umask())
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class KaldiLine(NamedTuple):
    """One line of a Kaldi text file: its fields (key first), line number and the text after the key."""

    fields: List[str]
    line_no: int
    value: str


@dataclass(frozen=True)
class KaldiFileProblem:
    """A problem of a Kaldi text file; ``fatal`` when a reader cannot go on (bad format),
    else the file only breaks the data-dir contract (order, empty lines, line endings)."""

    path: str
    line_no: Optional[int]
    message: str
    fatal: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line_no}: {self.message}" if self.line_no is not None \
            else f"{self.path}: {self.message}"

    def error(self) -> DataFileError:
        return DataFileError(self.path, self.line_no, self.message)


def scan_kaldi_file(path: PathLike, min_fields: int = 2, max_fields: Optional[int] = None,
                    fmt: str = "key value", ordered: bool = True
                    ) -> Tuple["OrderedDict[str, KaldiLine]", List[KaldiLine], List[KaldiFileProblem]]:
    """Every line of a Kaldi text file and every problem, as ``tools/validate_data_dir.sh``
    sees them: ``(by_key, in_order, problems)``. ``fmt`` names the expected line format in
    messages; ``ordered`` files (all but trials) must have unique keys in C-locale order."""
    path = os.fspath(path)
    by_key: "OrderedDict[str, KaldiLine]" = OrderedDict()
    lines: List[KaldiLine] = []
    problems: List[KaldiFileProblem] = []
    try:
        stream = open(path, encoding="utf-8", newline="\n")
    except OSError as e:
        problems.append(KaldiFileProblem(path, None, f"cannot read: {e.strerror}", True))
        return by_key, lines, problems
    previous: Optional[Tuple[str, int]] = None
    disorder_reported = False
    with stream:
        try:
            for line_no, text in enumerate(stream, 1):
                text = text.rstrip("\n")
                if "\r" in text:
                    problems.append(KaldiFileProblem(path, line_no, "carriage return in line (DOS line ending?)", False))
                    text = text.replace("\r", "")
                if not text.strip():
                    problems.append(KaldiFileProblem(path, line_no, "empty line", False))
                    continue
                if text[0].isspace():
                    problems.append(KaldiFileProblem(path, line_no, "line starts with whitespace", True))
                    continue
                fields = text.split()
                if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
                    problems.append(KaldiFileProblem(path, line_no, f"malformed line, expected '{fmt}': '{text}'", True))
                    continue
                key = fields[0]
                line = KaldiLine(fields, line_no, text.strip()[len(key):].strip())
                if ordered:
                    if key in by_key:
                        problems.append(KaldiFileProblem(path, line_no, f"duplicate key '{key}' (first on line "
                                                                f"{by_key[key].line_no})", True))
                        continue
                    if previous is not None and key.encode("utf-8") < previous[0].encode("utf-8") \
                            and not disorder_reported:
                        problems.append(KaldiFileProblem(path, line_no, f"not sorted: '{key}' comes after "
                                                                f"'{previous[0]}' (line {previous[1]}); sort "
                                                                "with LC_ALL=C sort", False))
                        disorder_reported = True
                    previous = (key, line_no)
                    by_key[key] = line
                lines.append(line)
        except UnicodeDecodeError as e:
            problems.append(KaldiFileProblem(path, None, f"not UTF-8 text ({e})", True))
    if not lines and not problems:
        problems.append(KaldiFileProblem(path, None, "file is empty", False))
    return by_key, lines, problems


def read_kaldi_table(path: PathLike, min_fields: int = 2, max_fields: Optional[int] = None,
                     fmt: str = "key value") -> "OrderedDict[str, KaldiLine]":
    """``key -> KaldiLine`` of a Kaldi text file with unique keys (any order; empty lines skipped).

    Raises :class:`DataFileError` naming the file and line for a missing or
    unreadable file, a line with the wrong number of fields, a line starting
    with whitespace, or a duplicate key.
    """
    table, _, problems = scan_kaldi_file(path, min_fields, max_fields, fmt)
    for problem in problems:
        if problem.fatal:
            raise problem.error()
    return table


def iter_kaldi_lines(path: PathLike, min_fields: int = 2,
                     max_fields: Optional[int] = None) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(line_no, fields)`` for each non-empty line of a Kaldi text file.

    Raises :class:`DataFileError` naming the file and line when a line has too
    few or too many whitespace-separated fields.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, None, "file not found")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < min_fields:
                raise DataFileError(path, line_no,
                                    f"expected at least {min_fields} fields, got {len(fields)}: {line.strip()!r}")
            if max_fields is not None and len(fields) > max_fields:
                raise DataFileError(path, line_no,
                                    f"expected at most {max_fields} fields, got {len(fields)}: {line.strip()!r}")
            yield line_no, fields


def read_kaldi_map(path: PathLike, allow_duplicates: bool = False) -> "OrderedDict[str, str]":
    """Read ``key value...`` lines into an ordered dict (value = rest of the line).

    A duplicate key is an error naming both lines unless ``allow_duplicates``
    (then the first occurrence wins).
    """
    path = Path(path)
    table: "OrderedDict[str, str]" = OrderedDict()
    first_line: Dict[str, int] = {}
    if not path.is_file():
        raise DataFileError(path, None, "file not found")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                raise DataFileError(path, line_no, f"expected 'key value', got {line!r}")
            key, value = parts
            if key in table:
                if allow_duplicates:
                    continue
                raise DataFileError(path, line_no,
                                    f"duplicate key {key!r} (first on line {first_line[key]})")
            table[key] = value
            first_line[key] = line_no
    return table


def read_spk2utt(path: PathLike) -> "OrderedDict[str, List[str]]":
    """Read a ``spk2utt`` file: speaker followed by its utterances."""
    return OrderedDict((key, value.split()) for key, value in read_kaldi_map(path).items())


def write_kaldi_map(path: PathLike, items: Union[Dict[str, object], Iterable[Tuple[str, object]]],
                    sort: bool = True) -> None:
    """Write ``key value`` lines atomically, sorted by key in C-locale order by default."""
    pairs = list(items.items() if isinstance(items, dict) else items)
    if sort:
        pairs.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_output(path) as f:
        for key, value in pairs:
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            f.write(f"{key} {value}\n")


def utt2spk_to_spk2utt(utt2spk: Dict[str, str]) -> "OrderedDict[str, List[str]]":
    """Invert utt2spk, keeping utterances in C-sorted order per speaker."""
    spk2utt: "OrderedDict[str, List[str]]" = OrderedDict()
    for utt in sorted(utt2spk, key=lambda u: u.encode("utf-8")):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return OrderedDict(sorted(spk2utt.items(), key=lambda kv: kv[0].encode("utf-8")))




def write_png(figure, path: PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG atomically (a half-written plot never replaces a good one)."""
    with atomic_output(path, "wb") as f:
        figure.savefig(f, format="png", dpi=dpi)
