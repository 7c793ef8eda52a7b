"""Training rules of models with an SSL frontend: the frontend's parameter group.

:func:`frontend_param_groups` splits the optimizer's parameter groups so the
frontend's parameters get ``frontend_lr_ratio`` times the learning rate of the
group they came from (the schedulers set ``lr = lr(t) * lr_ratio`` per group).
A frozen frontend's parameters are left out of the optimizer altogether, so
neither the update nor weight decay can touch them.
"""

import logging
from typing import Dict, List

import torch

logger = logging.getLogger(__name__)


def frontend_param_groups(model: torch.nn.Module, groups: List[Dict]) -> List[Dict]:
    """``groups`` with the parameters of ``model.frontend`` in groups of their own.

    Models without an SSL frontend (no ``frontend_lr_ratio`` attribute) get
    ``groups`` back unchanged. Each group ``g`` that holds frontend parameters
    is split into ``g`` without them and ``{"name": "frontend", "lr_ratio":
    g["lr_ratio"] * model.frontend_lr_ratio}``; parameters that do not require
    gradients (a frozen frontend) are dropped.
    """
    frontend = getattr(model, "frontend", None)
    ratio = getattr(model, "frontend_lr_ratio", None)
    if frontend is None or ratio is None:
        return groups
    frontend_ids = {id(p) for p in frontend.parameters()}
    result: List[Dict] = []
    for group in groups:
        params = list(group["params"])
        rest = [p for p in params if id(p) not in frontend_ids]
        own = [p for p in params if id(p) in frontend_ids and p.requires_grad]
        if rest:
            result.append({**group, "params": rest})
        if own:
            result.append({**group, "params": own, "name": "frontend",
                           "lr_ratio": float(group.get("lr_ratio", 1.0)) * float(ratio)})
    dropped = sum(1 for p in frontend.parameters() if not p.requires_grad)
    if dropped:
        logger.info("frontend: %d parameter tensors without gradient (frozen) left out of the optimizer",
                    dropped)
    logger.info("frontend learning-rate ratio %.4g", float(ratio))
    return [g for g in result if g["params"]]


def ddp_options(model: torch.nn.Module) -> Dict:
    """Extra ``DistributedDataParallel`` arguments for ``model``: a trainable frontend with
    layerdrop skips layers at random, so some parameters get no gradient in a step
    (``find_unused_parameters``)."""
    frontend = getattr(model, "frontend", None)
    if frontend is None or getattr(frontend, "frozen", True) or not getattr(frontend, "layerdrop", 0.0):
        return {}
    return {"find_unused_parameters": True}
