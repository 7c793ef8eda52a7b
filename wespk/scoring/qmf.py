"""The QMF model: a linear fusion of the score and quality measures, fitted by minimising Cllr.

Split from :mod:`wespk.scoring.calibration` (which re-exports every name) because it needs torch:
the factor tables, their files and the bulk readers do not. See that module for the procedure.
"""

import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Union

import numpy as np
import torch
from torch import nn

from wespk.io.files import DataFileError, atomic_output
from wespk.io.trials import UNKNOWN_LABEL
from wespk.scoring.calibration import CalibrationFactors

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


class QualityMeasureFusion(nn.Module):
    """The QMF model: one linear layer ``[score, factors] -> llr``.

    The parameter names (``linear.weight`` ``[1, D]``, ``linear.bias``
    ``[1]``) match WeSpeaker's ``LinearModel``, so its
    ``calibration_model.pt`` loads as it is.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.linear = nn.Linear(num_features, 1)
        nn.init.constant_(self.linear.weight, 1.0 / num_features)
        nn.init.constant_(self.linear.bias, 0.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


def cllr_loss(target_llrs: torch.Tensor, nontarget_llrs: torch.Tensor) -> torch.Tensor:
    """Cllr in bits, as a differentiable torch expression (WeSpeaker's form, log1p(exp(.)))."""
    target_cost = torch.log1p(torch.exp(-target_llrs)).mean()
    nontarget_cost = torch.log1p(torch.exp(nontarget_llrs)).mean()
    return 0.5 * (target_cost + nontarget_cost) / math.log(2.0)


@dataclass
class TrainingResult:
    """The fitted state_dict and the loss history (bits) of the outer LBFGS steps."""

    state_dict: Dict[str, torch.Tensor]
    step_losses: List[float]
    initial_cllr: float
    final_cllr: float

    @property
    def num_steps(self) -> int:
        return len(self.step_losses)


def train_qmf(features: np.ndarray, is_target: np.ndarray, max_epochs: int = 50, lr: float = 0.01,
              min_improvement: float = 1e-4, standardize: bool = False) -> TrainingResult:
    """Fit the QMF linear model on labelled feature rows by minimising Cllr.

    ``features`` is ``[N, D]`` (score first), ``is_target`` a boolean array.
    Targets and non-targets keep their file order. Each of at most
    ``max_epochs`` outer steps is one ``LBFGS.step`` (up to 20 inner
    iterations, history kept across steps); training stops when the loss that
    ``step`` returns (the loss at the start of the step) is less than
    ``min_improvement`` below the best so far.

    With ``standardize`` the fit runs on features centred and scaled by their
    mean and standard deviation over the training rows (needed for the lap
    measures, whose L1 norms are in the hundreds: from weights ``1/D`` the
    first LBFGS step diverges), and the scaling is folded back into the
    returned weights and bias, so the model applies to the raw features. Off
    (the default) it is WeSpeaker's procedure exactly.
    """
    features = np.asarray(features, dtype=np.float64)
    is_target = np.asarray(is_target, dtype=bool)
    if features.ndim != 2 or len(features) != len(is_target):
        raise ValueError("features must be [N, D] with one label per row")
    if not is_target.any() or is_target.all():
        raise ValueError("calibration needs both target and non-target trials")
    # The problem is tiny (D ~ 13): intra-op threads only add synchronisation cost, and these sizes are
    # below torch's parallel grain anyway, so one thread gives the same numbers, several times faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if not standardize:
            return _train_qmf_single_thread(features, is_target, max_epochs, lr, min_improvement)
        centre = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale == 0] = 1.0
        result = _train_qmf_single_thread((features - centre) / scale, is_target, max_epochs, lr, min_improvement)
    finally:
        torch.set_num_threads(threads)
    weight = result.state_dict["linear.weight"] / torch.from_numpy(scale)
    bias = result.state_dict["linear.bias"] - (weight * torch.from_numpy(centre)).sum()
    result.state_dict = {"linear.weight": weight, "linear.bias": bias.reshape(1)}
    return result


def _train_qmf_single_thread(features: np.ndarray, is_target: np.ndarray, max_epochs: int, lr: float,
                             min_improvement: float) -> TrainingResult:
    target = torch.from_numpy(np.ascontiguousarray(features[is_target]))
    nontarget = torch.from_numpy(np.ascontiguousarray(features[~is_target]))
    model = QualityMeasureFusion(features.shape[1]).double()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=lr)

    def closure():
        optimizer.zero_grad()
        nontarget_llrs = model(nontarget)
        target_llrs = model(target)
        loss = cllr_loss(target_llrs, nontarget_llrs)
        loss.backward()
        return loss

    with torch.no_grad():
        initial = float(cllr_loss(model(target), model(nontarget)))
    logger.info("QMF training on %d target and %d non-target trials, %d features; initial Cllr %.4f",
                len(target), len(nontarget), features.shape[1], initial)
    best = math.inf
    step_losses: List[float] = []
    for epoch in range(max_epochs):
        loss = float(optimizer.step(closure).detach())
        step_losses.append(loss)
        logger.info("QMF step %d: Cllr %.6f at step start", epoch + 1, loss)
        if not math.isfinite(loss):
            magnitudes = np.abs(np.asarray(features, dtype=np.float64))
            column = int(magnitudes.max(axis=0).argmax())
            raise ValueError(f"QMF training diverged (Cllr {loss} at step {epoch + 1}): the quality features "
                             f"are ill-conditioned (largest |value| {magnitudes.max():.4g}, in feature "
                             f"{column}); max/min ratios explode when a cohort mean or magnitude is near 0, "
                             f"as with an untrained model")
        if best - loss < min_improvement:
            break
        best = min(best, loss)
    with torch.no_grad():
        final = float(cllr_loss(model(target), model(nontarget)))
    logger.info("QMF training stopped after %d steps; Cllr %.4f", len(step_losses), final)
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return TrainingResult(state_dict=state, step_losses=step_losses, initial_cllr=initial, final_cllr=final)


def train_qmf_on_factors(factors: CalibrationFactors, **kwargs) -> TrainingResult:
    """:func:`train_qmf` on a factor table; every trial needs a target/nontarget label."""
    unknown = [i for i, label in enumerate(factors.labels) if label == UNKNOWN_LABEL]
    if unknown:
        line = factors.line_numbers[unknown[0]] if factors.line_numbers is not None else None
        raise DataFileError(factors.path, None if line is None else int(line),
                            f"{len(unknown)} trials have no label; calibration training needs target/nontarget")
    is_target = np.array([label == "target" for label in factors.labels], dtype=bool)
    return train_qmf(factors.features, is_target, **kwargs)


def save_qmf_model(path: PathLike, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Save the model state_dict with ``torch.save`` atomically."""
    with atomic_output(path, "wb") as f:
        torch.save(dict(state_dict), f)


def load_qmf_model(path: PathLike) -> Dict[str, torch.Tensor]:
    """Load a state_dict saved by :func:`save_qmf_model` or by WeSpeaker."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"linear.weight", "linear.bias"} - set(state)
    if missing:
        raise ValueError(f"{path}: not a QMF calibration model (missing {sorted(missing)})")
    return state


def apply_qmf(state_dict: Mapping[str, torch.Tensor], features: np.ndarray,
              float32_weights: bool = False) -> np.ndarray:
    """Calibrated scores (natural-log likelihood ratios) for ``[N, D]`` feature rows, float64.

    The model runs in float64 with the saved float64 weights. WeSpeaker's
    ``infer_calibration`` loads the weights into a float32 model before
    switching it to float64, which rounds them to float32 (the scores move by
    about 1e-7 relative); ``float32_weights=True`` does the same, to
    reproduce its files exactly.
    """
    features = np.asarray(features, dtype=np.float64)
    num_features = int(state_dict["linear.weight"].shape[1])
    if features.ndim != 2 or features.shape[1] != num_features:
        raise ValueError(f"the model expects {num_features} features per trial, got shape {features.shape}")
    weight_type = torch.float32 if float32_weights else torch.float64
    model = QualityMeasureFusion(num_features).double()
    model.load_state_dict({k: v.to(weight_type).to(torch.float64) for k, v in state_dict.items()})
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(features))).view(-1).numpy().copy()
