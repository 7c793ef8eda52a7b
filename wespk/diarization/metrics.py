"""Diarization error rate (DER) and Jaccard error rate (JER) from ``pyannote.metrics``.

``collar`` here is md-eval's and dscore's: the seconds *on each side* of
every reference boundary that are not scored (0.25 s is the usual value).
``pyannote.metrics`` takes the total width of the collar, so it is given
``2 * collar``. Overlapping speech is scored (``skip_overlap=False``) unless
asked otherwise: a region where two reference speakers talk counts twice in
the total, as in md-eval. The scored region of a recording is its
reference and hypothesis extent, from 0 s.
"""

import dataclasses
import logging
from typing import Dict, List, Mapping, Optional, Sequence

from wespk.diarization.rttm import Turn, turns_to_annotation

logger = logging.getLogger(__name__)

DEFAULT_COLLAR = 0.25


@dataclasses.dataclass(frozen=True)
class DiarizationScore:
    """Error components of one recording (or of all, summed), in seconds of speech."""
    recording: str
    total: float
    missed: float
    false_alarm: float
    confusion: float
    jer: Optional[float] = None
    reference_speakers: int = 0
    hypothesis_speakers: int = 0

    @property
    def der(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total > 0 else 0.0

    def rate(self, component: float) -> float:
        return component / self.total if self.total > 0 else 0.0


def _uem(reference_turns: Sequence[Turn], hypothesis_turns: Sequence[Turn]):
    from pyannote.core import Segment, Timeline
    end = max([t.end for t in reference_turns] + [t.end for t in hypothesis_turns] + [0.0])
    return Timeline([Segment(0.0, end)]) if end > 0 else Timeline()


def score_recordings(reference: Mapping[str, List[Turn]], hypothesis: Mapping[str, List[Turn]],
                     collar: float = DEFAULT_COLLAR, skip_overlap: bool = False,
                     jer: bool = True) -> List[DiarizationScore]:
    """One :class:`DiarizationScore` per reference recording, then the total (named ``ALL``).

    A recording without hypothesis turns is all missed speech; hypothesis
    recordings absent from the reference are not scored (a warning names them).
    """
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
    if collar < 0:
        raise ValueError(f"collar must be >= 0, got {collar}")
    extra = sorted(set(hypothesis) - set(reference))
    if extra:
        logger.warning("%d hypothesis recording(s) have no reference and are not scored: %s",
                       len(extra), " ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    der_metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    jer_metric = JaccardErrorRate(collar=2 * collar, skip_overlap=skip_overlap) if jer else None
    scores: List[DiarizationScore] = []
    for recording in sorted(reference):
        ref_turns, hyp_turns = reference[recording], list(hypothesis.get(recording, []))
        ref, hyp = turns_to_annotation(ref_turns, recording), turns_to_annotation(hyp_turns, recording)
        uem = _uem(ref_turns, hyp_turns)
        components = der_metric(ref, hyp, uem=uem, detailed=True)
        jer_value = float(jer_metric(ref, hyp, uem=uem)) if jer_metric is not None else None
        scores.append(DiarizationScore(recording, float(components["total"]),
                                       float(components["missed detection"]), float(components["false alarm"]),
                                       float(components["confusion"]), jer_value,
                                       len(ref.labels()), len(hyp.labels())))
    total = sum(s.total for s in scores)
    jer_mean = None
    if jer_metric is not None and scores:
        jer_mean = sum(s.jer for s in scores) / len(scores)
    scores.append(DiarizationScore("ALL", total, sum(s.missed for s in scores),
                                   sum(s.false_alarm for s in scores), sum(s.confusion for s in scores),
                                   jer_mean, 0, 0))
    return scores


def format_score_table(scores: Sequence[DiarizationScore], collar: float = DEFAULT_COLLAR) -> str:
    """A Markdown table of DER and its components (percent of scored speech), one row per recording."""
    lines = [f"collar {collar:g} s each side; overlap scored; JER is the mean over recordings",
             "",
             "| recording | speakers ref/hyp | scored speech (s) | DER % | miss % | FA % | confusion % | JER % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in scores:
        speakers = f"{s.reference_speakers}/{s.hypothesis_speakers}" if s.recording != "ALL" else ""
        jer_text = f"{100 * s.jer:.2f}" if s.jer is not None else ""
        lines.append(f"| {s.recording} | {speakers} | {s.total:.2f} | {100 * s.der:.2f} | "
                     f"{100 * s.rate(s.missed):.2f} | {100 * s.rate(s.false_alarm):.2f} | "
                     f"{100 * s.rate(s.confusion):.2f} | {jer_text} |")
    return "\n".join(lines) + "\n"


def speaker_count_accuracy(scores: Sequence[DiarizationScore]) -> float:
    """Fraction of recordings whose hypothesis has as many speakers as the reference."""
    rows = [s for s in scores if s.recording != "ALL"]
    return sum(s.reference_speakers == s.hypothesis_speakers for s in rows) / len(rows) if rows else 0.0


def scores_as_dict(scores: Sequence[DiarizationScore]) -> Dict[str, Dict[str, float]]:
    return {s.recording: {"der": s.der, "missed": s.rate(s.missed), "false_alarm": s.rate(s.false_alarm),
                          "confusion": s.rate(s.confusion), "jer": s.jer, "total": s.total,
                          "reference_speakers": s.reference_speakers,
                          "hypothesis_speakers": s.hypothesis_speakers} for s in scores}
