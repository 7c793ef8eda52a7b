"""Text outputs of the metrics stage: the stdout lines, a markdown summary, a JSON record."""

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

from wespk.io.files import atomic_output
from wespk.scoring.metrics import CalibrationMetrics, DetectionMetrics

PathLike = Union[str, os.PathLike]


@dataclass
class ScoreFileMetrics:
    """All metrics of one score file."""

    path: str
    detection: DetectionMetrics
    calibration: Optional[CalibrationMetrics] = None


def format_p_target(p_target: float) -> str:
    """``0.01`` -> ``'0.01'``: the shortest form that reads back as the same number."""
    return f"{p_target:g}" if float(f"{p_target:g}") == p_target else repr(p_target)


def metric_lines(result: ScoreFileMetrics) -> List[str]:
    """The stdout block for one file: ``EER = 3.132%``, ``minDCF(p_target=0.01) = 0.3111``, ..."""
    detection = result.detection
    lines = [f"EER = {100 * detection.eer:.3f}%"]
    lines += [f"minDCF(p_target={format_p_target(p)}) = {value:.4f}" for p, value in detection.min_dcf.items()]
    if result.calibration is not None:
        lines += [f"actDCF(p_target={format_p_target(p)}) = {value:.4f}"
                  for p, value in result.calibration.act_dcf.items()]
        lines.append(f"Cllr = {result.calibration.cllr:.4f}")
    return lines


def markdown_summary(results: Sequence[ScoreFileMetrics], images: Sequence[str] = (),
                     command: Optional[str] = None) -> str:
    """A markdown table with one row per score file (EER in %, DCFs, Cllr when known)."""
    p_targets = list(results[0].detection.min_dcf) if results else []
    calibrated = any(r.calibration is not None for r in results)
    act_p_targets = []
    if calibrated:
        act_p_targets = list(next(r for r in results if r.calibration is not None).calibration.act_dcf)
    header = ["scores", "trials", "targets", "EER (%)", "EER threshold"]
    header += [f"minDCF({format_p_target(p)})" for p in p_targets]
    if calibrated:
        header += [f"actDCF({format_p_target(p)})" for p in act_p_targets] + ["Cllr"]
    rows = []
    for result in results:
        detection = result.detection
        row = [f"`{result.path}`", str(detection.num_trials), str(detection.num_target),
               f"{100 * detection.eer:.3f}", f"{detection.eer_threshold:.5g}"]
        row += [f"{detection.min_dcf.get(p, float('nan')):.4f}" for p in p_targets]
        if calibrated:
            if result.calibration is None:
                row += ["-"] * (len(act_p_targets) + 1)
            else:
                row += [f"{result.calibration.act_dcf.get(p, float('nan')):.4f}" for p in act_p_targets]
                row.append(f"{result.calibration.cllr:.4f}")
        rows.append(row)
    costs = {(r.detection.c_miss, r.detection.c_fa) for r in results}
    cost_text = ", ".join(f"c_miss = {m:g}, c_fa = {f:g}" for m, f in sorted(costs))
    lines = ["# Scoring results", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"DCFs are normalised ({cost_text}); actDCF and Cllr treat the scores as natural-log "
                  "likelihood ratios and are shown only for calibrated score files."
              if calibrated else f"DCFs are normalised ({cost_text})."]
    for image in images:
        lines += ["", f"![{os.path.basename(image)}]({image})"]
    return "\n".join(lines) + "\n"


def write_markdown_summary(path: PathLike, results: Sequence[ScoreFileMetrics], images: Sequence[PathLike] = (),
                           command: Optional[str] = None) -> None:
    """Write :func:`markdown_summary` atomically; image links are made relative to the report."""
    base = os.path.dirname(os.path.abspath(path))
    relative = [os.path.relpath(os.path.abspath(image), base) for image in images]
    with atomic_output(path) as f:
        f.write(markdown_summary(results, relative, command))


def metrics_record(result: ScoreFileMetrics) -> Dict[str, object]:
    """A JSON-ready dict of one file's metrics (EER as a fraction and in %)."""
    detection = result.detection
    record: Dict[str, object] = {
        "path": result.path,
        "num_trials": detection.num_trials,
        "num_target": detection.num_target,
        "eer": detection.eer,
        "eer_percent": 100 * detection.eer,
        "eer_threshold": detection.eer_threshold,
        "min_dcf": {format_p_target(p): v for p, v in detection.min_dcf.items()},
        "c_miss": detection.c_miss,
        "c_fa": detection.c_fa,
    }
    if result.calibration is not None:
        record["act_dcf"] = {format_p_target(p): v for p, v in result.calibration.act_dcf.items()}
        record["cllr"] = result.calibration.cllr
    return record


def write_metrics_json(path: PathLike, results: Sequence[ScoreFileMetrics]) -> None:
    """Write the metrics of all files as a JSON list, atomically."""
    with atomic_output(path) as f:
        json.dump([metrics_record(r) for r in results], f, indent=1)
        f.write("\n")
