"""Learning-rate and margin schedules, stepped once per training step.

Both are pure functions of the global step, so resuming from a checkpoint
only needs the step number, and both match WeSpeaker's schedules of the same
names and arguments.
"""

import logging
import math
from typing import Dict, List

logger = logging.getLogger(__name__)


class _WarmUpSchedule:
    """A base learning rate ``base_lr(t)`` times WeSpeaker's warm-up coefficient.

    ``scale_ratio`` is the global batch divided by 64 (WeSpeaker's linear
    scaling rule); during the first ``warm_up_epoch`` epochs the coefficient
    ``c`` rises linearly to it (from 1, or from 0 with ``warm_from_zero``),
    and it equals ``scale_ratio`` after. Because it depends on the global
    batch only, the schedule is the same for any split of that batch over
    processes. Each parameter group gets ``lr * group["lr_ratio"]``.
    """

    def __init__(self, optimizer, num_epochs: int, epoch_iter: int, initial_lr: float,
                 final_lr: float, warm_up_epoch: float = 6, scale_ratio: float = 1.0,
                 warm_from_zero: bool = False):
        if initial_lr <= 0 or final_lr <= 0:
            raise ValueError("initial_lr and final_lr must be positive")
        self.optimizer = optimizer
        self.max_iter = max(1, num_epochs * epoch_iter)
        self.warm_up_iter = warm_up_epoch * epoch_iter
        self.initial_lr = initial_lr
        self.final_lr = final_lr
        self.scale_ratio = scale_ratio
        self.warm_from_zero = warm_from_zero
        self.current_iter = 0
        self.step(0)

    def warm_up_coeff(self, it: int) -> float:
        if it < self.warm_up_iter:
            if self.warm_from_zero:
                return self.scale_ratio * it / self.warm_up_iter
            if self.scale_ratio > 1:
                return (self.scale_ratio - 1) * it / self.warm_up_iter + 1.0
        return self.scale_ratio

    def base_lr(self, it: int) -> float:
        raise NotImplementedError

    def lr_at(self, it: int) -> float:
        return self.base_lr(it) * self.warm_up_coeff(it)

    def step(self, current_iter: int) -> float:
        self.current_iter = current_iter
        lr = self.lr_at(current_iter)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_ratio", 1.0)
        return lr

    def get_lr(self) -> float:
        return self.lr_at(self.current_iter)

    def state_dict(self) -> Dict:
        return {"current_iter": self.current_iter}

    def load_state_dict(self, state: Dict) -> None:
        self.step(state["current_iter"])


class ExponentialDecrease(_WarmUpSchedule):
    """Warm-up, then exponential decay from ``initial_lr`` to ``final_lr`` (WeSpeaker's schedule).

    ``lr(t) = initial_lr * exp(t / T * ln(final_lr / initial_lr)) * c(t)``
    over ``T = num_epochs * epoch_iter`` steps, with the warm-up coefficient
    ``c`` of :class:`_WarmUpSchedule`.
    """

    def base_lr(self, it: int) -> float:
        return self.initial_lr * math.exp(it / self.max_iter * math.log(self.final_lr / self.initial_lr))


class CosineDecrease(_WarmUpSchedule):
    """Warm-up at ``initial_lr``, then a half cosine from ``initial_lr`` down to ``final_lr``.

    ``lr(t) = (final_lr + (initial_lr - final_lr) * (1 + cos(pi * p)) / 2) * c(t)``
    with ``p = (t - W) / (T - W)`` clipped to ``[0, 1]``, ``W`` the warm-up
    steps and ``T = num_epochs * epoch_iter``: the schedule of the Layer
    Attentive Pooling recipes (Adam, linear warm-up, cosine decay), with the
    same warm-up coefficient ``c`` and batch scaling as
    :class:`ExponentialDecrease`, so the two are interchangeable in a config.
    """

    def base_lr(self, it: int) -> float:
        span = max(1.0, self.max_iter - self.warm_up_iter)
        progress = min(1.0, max(0.0, (it - self.warm_up_iter) / span))
        return self.final_lr + (self.initial_lr - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class MarginScheduler:
    """Margin of the classification head as a function of the step.

    The margin is ``initial_margin`` before ``increase_start_epoch``, rises to
    ``final_margin`` until ``fix_start_epoch`` (``increase_type`` ``exp`` or
    ``linear``) and stays there after; epochs are counted from 1, as in
    WeSpeaker. With ``update_margin: false`` the margin stays at
    ``initial_margin``. The head is updated through its ``update(margin)``.
    """

    def __init__(self, head, epoch_iter: int, increase_start_epoch: int, fix_start_epoch: int,
                 initial_margin: float, final_margin: float, update_margin: bool = True,
                 increase_type: str = "exp"):
        if increase_type not in ("exp", "linear"):
            raise ValueError(f"increase_type must be 'exp' or 'linear', got {increase_type!r}")
        self.head = head
        self.increase_start_iter = (increase_start_epoch - 1) * epoch_iter
        self.fix_start_iter = (fix_start_epoch - 1) * epoch_iter
        self.increase_iter = max(1, self.fix_start_iter - self.increase_start_iter)
        self.initial_margin = initial_margin
        self.final_margin = final_margin
        self.update_margin = update_margin
        self.increase_type = increase_type
        self.current_iter = 0
        self.head.update(margin=initial_margin)

    def margin_at(self, it: int) -> float:
        if not self.update_margin:
            return self.initial_margin
        if it >= self.fix_start_iter:
            return self.final_margin
        if it < self.increase_start_iter:
            return self.initial_margin
        progress = (it - self.increase_start_iter) / self.increase_iter
        if self.increase_type == "exp":
            ratio = 1.0 - math.exp(progress * math.log(1e-3 / (1.0 + 1e-6)))
        else:
            ratio = progress
        return self.initial_margin + (self.final_margin - self.initial_margin) * ratio

    def step(self, current_iter: int) -> float:
        self.current_iter = current_iter
        margin = self.margin_at(current_iter)
        self.head.update(margin=margin)
        return margin

    def get_margin(self) -> float:
        return self.margin_at(self.current_iter)

    def state_dict(self) -> Dict:
        return {"current_iter": self.current_iter}

    def load_state_dict(self, state: Dict) -> None:
        self.step(state["current_iter"])


SCHEDULERS = {"ExponentialDecrease": ExponentialDecrease, "CosineDecrease": CosineDecrease}
MARGIN_SCHEDULERS = {"MarginScheduler": MarginScheduler}


def build_scheduler(name: str, optimizer, **kwargs) -> _WarmUpSchedule:
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, **kwargs)


def build_margin_scheduler(name: str, head, **kwargs) -> MarginScheduler:
    if name not in MARGIN_SCHEDULERS:
        raise ValueError(f"unknown margin scheduler {name!r}; known: {', '.join(MARGIN_SCHEDULERS)}")
    return MARGIN_SCHEDULERS[name](head, **kwargs)


def list_schedulers() -> List[str]:
    return sorted(SCHEDULERS)
