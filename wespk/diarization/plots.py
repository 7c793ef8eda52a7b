"""A diarization on a time line: reference turns above, hypothesis turns below (PNG).

Hypothesis speakers are drawn in the colour of the reference speaker they
are mapped to (the DER's optimal mapping), so confusions stand out.
"""

import logging
import os
from typing import List, Optional, Sequence

from wespk.diarization.rttm import Turn, turns_to_annotation

logger = logging.getLogger(__name__)


def plot_timeline(path: str, hypothesis: Sequence[Turn], reference: Optional[Sequence[Turn]] = None,
                  title: Optional[str] = None) -> str:
    """Draw one recording's turns into ``path`` (PNG, written atomically); returns ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wespk.io.files import write_png
    reference = list(reference or [])
    hypothesis = list(hypothesis)
    ref_speakers = sorted({t.speaker for t in reference})
    hyp_speakers = sorted({t.speaker for t in hypothesis})
    mapping = {}
    if reference and hypothesis:
        from pyannote.metrics.diarization import DiarizationErrorRate
        mapping = DiarizationErrorRate().optimal_mapping(turns_to_annotation(reference),
                                                          turns_to_annotation(hypothesis))
    palette = plt.get_cmap("tab10")
    colour = {s: palette(i % 10) for i, s in enumerate(ref_speakers)}
    unmapped = [s for s in hyp_speakers if s not in mapping]
    for i, s in enumerate(unmapped):
        colour.setdefault(f"hyp:{s}", palette((len(ref_speakers) + i) % 10))

    rows: List[tuple] = [("ref " + s, [t for t in reference if t.speaker == s], colour[s]) for s in ref_speakers]
    rows += [("hyp " + s, [t for t in hypothesis if t.speaker == s],
              colour[mapping[s]] if s in mapping else colour[f"hyp:{s}"]) for s in hyp_speakers]
    end = max([t.end for t in reference] + [t.end for t in hypothesis] + [1.0])
    fig, ax = plt.subplots(figsize=(max(8.0, min(24.0, end / 10.0)), 0.45 * max(len(rows), 1) + 1.2))
    for y, (_, turns, c) in enumerate(rows):
        ax.broken_barh([(t.start, t.duration) for t in turns], (len(rows) - 1 - y - 0.4, 0.8), facecolors=c)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([name for name, _, _ in reversed(rows)], fontsize=8)
    if reference and hypothesis:
        ax.axhline(len(hyp_speakers) - 0.5, color="black", linewidth=0.8)
    ax.set_xlim(0, end)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("time (s)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_png(fig, path, dpi=90)
    plt.close(fig)
    return path
