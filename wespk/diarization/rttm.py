"""Speaker turns and NIST RTTM files.

An RTTM line for a speaker turn has ten fields::

    SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>

(``<NA>`` written as ``<NA>``; channel 1). Times are in seconds.
"""

import dataclasses
import logging
import os
from typing import Dict, Iterable, List, Union

from wespk.io.files import DataFileError, atomic_output

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class Turn:
    """One speaker's turn in one recording: ``[start, end)`` seconds."""
    recording: str
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def format_rttm_line(turn: Turn) -> str:
    return (f"SPEAKER {turn.recording} 1 {turn.start:.3f} {turn.duration:.3f} "
            f"<NA> <NA> {turn.speaker} <NA> <NA>\n")


def write_rttm(path: PathLike, turns: Iterable[Turn]) -> int:
    """Write turns (sorted by recording, then start) atomically; returns the line count."""
    ordered = sorted(turns, key=lambda t: (t.recording, t.start, t.end, t.speaker))
    with atomic_output(path) as f:
        for turn in ordered:
            f.write(format_rttm_line(turn))
    return len(ordered)


def read_rttm(path: PathLike) -> Dict[str, List[Turn]]:
    """Turns of an RTTM file grouped by recording (``SPEAKER`` lines; other types are skipped).

    A malformed line is a :class:`~wespk.io.files.DataFileError` naming file and line.
    """
    by_recording: Dict[str, List[Turn]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";"):
                continue
            if fields[0] != "SPEAKER":
                continue
            if len(fields) < 9:
                raise DataFileError(path, line_no, f"an RTTM SPEAKER line has 9 or 10 fields, got {len(fields)}")
            try:
                start, duration = float(fields[3]), float(fields[4])
            except ValueError:
                raise DataFileError(path, line_no, f"onset {fields[3]!r} / duration {fields[4]!r} "
                                                   "are not numbers") from None
            if start < 0 or duration < 0:
                raise DataFileError(path, line_no, "negative onset or duration")
            turn = Turn(fields[1], start, start + duration, fields[7])
            by_recording.setdefault(turn.recording, []).append(turn)
    for turns in by_recording.values():
        turns.sort(key=lambda t: (t.start, t.end, t.speaker))
    return by_recording


def turns_to_annotation(turns: Iterable[Turn], uri: str = None):
    """A ``pyannote.core.Annotation`` of the turns (one track per turn)."""
    from pyannote.core import Annotation, Segment
    turns = list(turns)
    annotation = Annotation(uri=uri if uri is not None else (turns[0].recording if turns else None))
    for i, turn in enumerate(turns):
        if turn.end > turn.start:
            annotation[Segment(turn.start, turn.end), i] = turn.speaker
    return annotation
