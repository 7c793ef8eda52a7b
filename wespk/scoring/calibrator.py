"""A model dir's score calibrator: a single trial's cosine score -> a calibrated log-likelihood ratio.

Read from the model dir by :func:`load_score_calibrator`, used by
``wespk verify`` / ``wespk identify`` and :mod:`wespk.api`. The calibration
itself is trained by ``python -m wespk.bin.calibrate``
(:mod:`wespk.scoring.calibration`).
"""

import dataclasses
import json
import math
import os
from typing import Any, Optional

import numpy as np

CALIBRATION_JSON = "calibration.json"
QMF_MODEL_FILES = ("qmf_model.pt", "calibration_model.pt")


class CalibrationError(ValueError):
    """A calibration file that cannot be used for a single trial's score."""


@dataclasses.dataclass(frozen=True)
class ScoreCalibrator:
    """Maps a cosine score to a calibrated log-likelihood ratio.

    ``llr = scale * score + offset``. ``threshold`` is an optional cosine
    decision threshold recommended for the model (``calibration.json`` may
    carry one).
    """

    source: str
    scale: float
    offset: float
    threshold: Optional[float] = None

    def calibrate(self, score: float) -> float:
        return self.scale * float(score) + self.offset


def _finite_number(value: Any, what: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CalibrationError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


def load_score_calibrator(model_dir: str) -> Optional[ScoreCalibrator]:
    """The score calibrator of a model dir, or None when it has none.

    Looked for, in this order:

    * ``calibration.json``: ``{"scale": a, "offset": b}`` (optional
      ``"threshold"``: a cosine decision threshold);
    * ``qmf_model.pt`` / ``calibration_model.pt``: a QMF model saved by
      ``python -m wespk.bin.calibrate`` or WeSpeaker, loaded with
      :func:`wespk.scoring.calibration.load_qmf_model`. Only a score-only
      model (one input) applies to a single trial; a model with quality
      measures (durations, magnitudes, AS-norm cohort means) raises
      :class:`CalibrationError` saying so.
    """
    path = os.path.join(model_dir, CALIBRATION_JSON)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as e:
            raise CalibrationError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or "scale" not in data or "offset" not in data:
            raise CalibrationError(f"{path}: expected an object with 'scale' and 'offset'")
        threshold = data.get("threshold")
        return ScoreCalibrator(source=path, scale=_finite_number(data["scale"], "scale", path),
                               offset=_finite_number(data["offset"], "offset", path),
                               threshold=None if threshold is None else _finite_number(threshold, "threshold", path))
    for name in QMF_MODEL_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            from wespk.scoring.calibration import apply_qmf, load_qmf_model
            state = load_qmf_model(path)
            inputs = int(state["linear.weight"].shape[1])
            if inputs != 1:
                raise CalibrationError(f"{path}: this QMF model takes {inputs} inputs (score plus quality measures "
                                       f"from AS-norm cohort statistics), which a single trial does not have")
            offset = float(apply_qmf(state, np.zeros((1, 1)))[0])
            scale = float(apply_qmf(state, np.ones((1, 1)))[0]) - offset
            return ScoreCalibrator(source=path, scale=scale, offset=offset)
    return None
