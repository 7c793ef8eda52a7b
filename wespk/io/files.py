"""Kaldi-style text files (``key value`` per line) and atomic writes."""

import contextlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

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


def read_trials(path: PathLike) -> List[Tuple[str, str, Optional[str]]]:
    """Read a trial list ``enroll test [target|nontarget]``, keeping file order."""
    trials = []
    for line_no, fields in iter_kaldi_lines(path, min_fields=2, max_fields=3):
        label = fields[2] if len(fields) == 3 else None
        if label is not None and label not in ("target", "nontarget"):
            raise DataFileError(path, line_no, f"label must be 'target' or 'nontarget', got {label!r}")
        trials.append((fields[0], fields[1], label))
    return trials
