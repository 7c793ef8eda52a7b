"""DET curves and score histograms as PNG files (matplotlib, Agg canvas, no display needed).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``),
which renders with the Agg canvas without touching pyplot's global state, and
are written atomically.
"""

import logging
import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from wespk.io.files import write_png
from wespk.scoring.metrics import det_points

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Error rates shown on the probit axes of a DET plot (as fractions).
DET_TICKS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


@dataclass
class ScoreSet:
    """Scores of one system to plot: a legend name, the scores and the target mask."""

    name: str
    scores: np.ndarray
    is_target: np.ndarray
    eer: float = float("nan")


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure, path: PathLike) -> None:
    write_png(figure, path)
    logger.info("wrote %s", path)


def plot_det_curves(score_sets: Sequence[ScoreSet], path: PathLike, title: str = "DET curve") -> None:
    """One DET curve per score set on probit (normal deviate) axes, the EER point marked."""
    from scipy.special import ndtri

    lowest, highest = DET_TICKS[0], DET_TICKS[-1] + 0.1
    figure = _new_figure(6.0, 6.0)
    axes = figure.add_subplot(1, 1, 1)
    for score_set in score_sets:
        p_fa, p_miss = det_points(score_set.scores, score_set.is_target)
        x = ndtri(np.clip(p_fa, lowest / 10, 1 - 1e-12))
        y = ndtri(np.clip(p_miss, lowest / 10, 1 - 1e-12))
        label = score_set.name if np.isnan(score_set.eer) else f"{score_set.name} (EER {100 * score_set.eer:.2f}%)"
        line, = axes.plot(x, y, linewidth=1.5, label=label)
        if not np.isnan(score_set.eer) and score_set.eer > 0:
            point = ndtri(score_set.eer)
            axes.plot([point], [point], "o", color=line.get_color())
    ticks = ndtri(np.array(DET_TICKS))
    tick_labels = [f"{100 * t:g}" for t in DET_TICKS]
    axes.set_xticks(ticks, tick_labels)
    axes.set_yticks(ticks, tick_labels)
    limits = ndtri(np.array([lowest, highest]))
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.plot(limits, limits, color="0.7", linewidth=0.8, linestyle=":")
    axes.set_xlabel("false-alarm rate (%)")
    axes.set_ylabel("miss rate (%)")
    axes.set_title(title)
    axes.grid(True, linewidth=0.5, alpha=0.6)
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    _save_png(figure, path)


def plot_score_histograms(score_sets: Sequence[ScoreSet], path: PathLike, bins: int = 100) -> None:
    """Target and non-target score histograms (densities), one panel per score set."""
    figure = _new_figure(7.0, 2.8 * len(score_sets) + 0.4)
    for index, score_set in enumerate(score_sets):
        axes = figure.add_subplot(len(score_sets), 1, index + 1)
        scores = np.asarray(score_set.scores, dtype=np.float64)
        mask = np.asarray(score_set.is_target, dtype=bool)
        edges = np.histogram_bin_edges(scores, bins=bins)
        axes.hist(scores[~mask], bins=edges, density=True, alpha=0.55, label=f"non-target ({int((~mask).sum())})")
        axes.hist(scores[mask], bins=edges, density=True, alpha=0.55, label=f"target ({int(mask.sum())})")
        if not np.isnan(score_set.eer):
            axes.set_title(f"{score_set.name} (EER {100 * score_set.eer:.2f}%)", fontsize="medium")
        else:
            axes.set_title(score_set.name, fontsize="medium")
        axes.set_xlabel("score")
        axes.set_ylabel("density")
        axes.legend(fontsize="small")
    figure.tight_layout()
    _save_png(figure, path)
