"""Parity of an exported encoder with the PyTorch model, on real audio.

Every export is checked before it is kept: the eager model and the exported
one embed

1. the check utterance alone (real audio through the model dir's front end);
2. a zero-padded batch of that utterance and two shorter cuts of it, each
   with its own length, so the masks of the exported graph are exercised at
   a batch size and lengths other than those it was traced with.

The largest absolute difference over all embedding values must not exceed
:data:`DEFAULT_TOLERANCE`; otherwise :class:`ParityError` says by how much
it was exceeded.
"""

import dataclasses
import logging
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4
#: Fractions of the check utterance's frames kept in the padded-batch case.
BATCH_CUTS = (1.0, 0.62, 0.35)


class ParityError(RuntimeError):
    """The exported model's embeddings differ from PyTorch's by more than the tolerance."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclasses.dataclass
class ParityCase:
    """A named list of feature matrices embedded as one batch."""

    name: str
    feats: List[torch.Tensor]


@dataclasses.dataclass
class ParityReport:
    """Max abs difference per case; ``max_abs_diff`` over all of them."""

    backend: str
    source: str
    tolerance: float
    case_diffs: List[tuple]
    reference_scale: float

    @property
    def max_abs_diff(self) -> float:
        return max(diff for _, diff in self.case_diffs)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        cases = ", ".join(f"{name} {diff:.2e}" for name, diff in self.case_diffs)
        return (f"{self.backend} vs PyTorch on {self.source}: max abs difference {self.max_abs_diff:.2e} "
                f"(tolerance {self.tolerance:.0e}; {cases}; largest |embedding value| {self.reference_scale:.3g})")


def default_check_wav() -> str:
    """The first bundled test utterance (``corpus/mini/test``) of the source tree."""
    corpus = Path(__file__).resolve().parents[2] / "corpus" / "mini" / "test"
    files = sorted(corpus.glob("*/*.flac")) if corpus.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no bundled test audio under {corpus}; pass --check_wav FILE")
    return str(files[0])


def parity_cases(feats: torch.Tensor, cuts: Sequence[float] = BATCH_CUTS) -> List[ParityCase]:
    """The single-utterance case and the padded-batch case built from one feature matrix."""
    frames = feats.shape[0]
    batch = [feats[: max(1, int(round(frames * cut)))].clone() for cut in cuts]
    return [ParityCase("single utterance", [feats]),
            ParityCase(f"padded batch of {len(batch)} (lengths {', '.join(str(f.shape[0]) for f in batch)})", batch)]


def check_parity(reference: Callable[[List[torch.Tensor]], np.ndarray],
                 candidate: Callable[[List[torch.Tensor]], np.ndarray],
                 cases: Sequence[ParityCase], backend: str, source: str,
                 tolerance: float = DEFAULT_TOLERANCE, raise_on_failure: bool = True) -> ParityReport:
    """Compare two ``embed_features`` functions on every case.

    Raises :class:`ParityError` (unless ``raise_on_failure`` is false) when
    any embedding value differs by more than ``tolerance``.
    """
    diffs, scale = [], 0.0
    for case in cases:
        expected = np.asarray(reference(case.feats), dtype=np.float64)
        got = np.asarray(candidate(case.feats), dtype=np.float64)
        if got.shape != expected.shape:
            raise ParityError(f"{backend} vs PyTorch on {source} ({case.name}): output shape {got.shape} "
                              f"differs from PyTorch's {expected.shape}", float("inf"))
        if not np.isfinite(got).all():
            raise ParityError(f"{backend} vs PyTorch on {source} ({case.name}): non-finite output", float("inf"))
        diffs.append((case.name, float(np.abs(got - expected).max())))
        scale = max(scale, float(np.abs(expected).max()))
    report = ParityReport(backend=backend, source=source, tolerance=tolerance, case_diffs=diffs,
                          reference_scale=scale)
    if not report.passed:
        if raise_on_failure:
            raise ParityError("parity check FAILED: " + report.summary(), report.max_abs_diff)
        logger.error("parity check FAILED: %s", report.summary())
    else:
        logger.info("parity check passed: %s", report.summary())
    return report


def check_features(check_wav: Optional[str], frontend) -> tuple:
    """``(path, features)`` of the check utterance (default :func:`default_check_wav`)."""
    from wespk.io.audio import load_audio
    path = check_wav or default_check_wav()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: check audio not found")
    samples, sample_rate = load_audio(path)
    return path, frontend(samples, sample_rate, source=path)
