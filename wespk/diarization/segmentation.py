"""Speech regions -> fixed-length sub-segments, and labelled sub-segments -> speaker turns."""

import dataclasses
from typing import List, Sequence, Tuple

import numpy as np

from wespk.diarization.rttm import Turn

#: WeSpeaker's and 3D-Speaker's sub-segment window and shift (seconds).
DEFAULT_WINDOW = 1.5
DEFAULT_SHIFT = 0.75


@dataclasses.dataclass(frozen=True)
class SubSegment:
    """``[start, end)`` seconds of one window inside speech region ``region``."""
    start: float
    end: float
    region: int


def subsegment_regions(regions: Sequence[Tuple[float, float]], window: float = DEFAULT_WINDOW,
                       shift: float = DEFAULT_SHIFT, min_duration: float = 0.0) -> List[SubSegment]:
    """Cut each speech region ``(start, end)`` into windows of ``window`` s every ``shift`` s.

    A region shorter than ``window`` is one sub-segment; otherwise windows
    start every ``shift`` seconds and the last one is placed to end where
    the region ends, so every part of a region is covered. Regions shorter
    than ``min_duration`` are dropped (too short to embed).
    """
    if window <= 0 or shift <= 0:
        raise ValueError(f"window and shift must be positive, got {window} and {shift}")
    if shift > window:
        raise ValueError(f"shift {shift} s is longer than the window {window} s (speech would be skipped)")
    subsegments: List[SubSegment] = []
    for index, (start, end) in enumerate(regions):
        length = end - start
        if length < min_duration or length <= 0:
            continue
        if length <= window:
            subsegments.append(SubSegment(start, end, index))
            continue
        count = int(np.ceil((length - window) / shift - 1e-9))   # windows before the end-aligned one
        for k in range(count):
            subsegments.append(SubSegment(start + k * shift, start + k * shift + window, index))
        subsegments.append(SubSegment(end - window, end, index))
    return subsegments


def labels_to_turns(subsegments: Sequence[SubSegment], labels: Sequence[int], recording: str,
                    speaker_prefix: str = "spk") -> List[Turn]:
    """Labelled sub-segments -> speaker turns.

    Within a speech region, consecutive sub-segments overlap; where their
    labels differ, the change is put at the middle of the overlap. Turns of
    one speaker that touch are merged; silence between regions stays
    silence. Speakers are named ``spk00``, ``spk01`` ... in the order of
    their first turn.
    """
    if len(subsegments) != len(labels):
        raise ValueError(f"{len(subsegments)} sub-segments but {len(labels)} labels")
    order = sorted(range(len(subsegments)), key=lambda i: (subsegments[i].start, subsegments[i].end))
    pieces: List[List] = []          # [start, end, label]
    previous = None
    for i in order:
        seg, label = subsegments[i], int(labels[i])
        if previous is not None and seg.region == previous.region and seg.start < pieces[-1][1]:
            if label == pieces[-1][2]:
                pieces[-1][1] = max(pieces[-1][1], seg.end)
            else:
                boundary = 0.5 * (seg.start + previous.end)
                boundary = max(boundary, pieces[-1][0])
                pieces[-1][1] = boundary
                pieces.append([boundary, seg.end, label])
        else:
            pieces.append([seg.start, seg.end, label])
        previous = seg
    merged: List[List] = []
    for piece in pieces:
        if piece[1] <= piece[0]:
            continue
        if merged and merged[-1][2] == piece[2] and piece[0] <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], piece[1])
        else:
            merged.append(list(piece))
    names = {}
    for _, _, label in merged:
        names.setdefault(label, f"{speaker_prefix}{len(names):02d}")
    return [Turn(recording, float(s), float(e), names[label]) for s, e, label in merged]
