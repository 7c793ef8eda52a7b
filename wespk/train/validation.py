"""Validation during training: the dev EER after every epoch, early stopping, the best epochs.

A config with ``dev_trials`` (and ``dev_data``, the data dir the trials are
drawn from) makes the trainer score each epoch's checkpoint on those trials
and log the result::

    epoch 3: dev EER 4.210% minDCF(0.01) 0.4120 (best: epoch 3, 4.210%)

The records go to ``<exp_dir>/validation.jsonl`` (one JSON line per epoch,
kept across resumes), the curve into ``train_curves.png`` next to the loss.
``early_stop_patience: P`` (> 0) ends training when P epochs in a row have
not lowered the best dev EER. :func:`best_epoch_window` picks the ``num_avg``
consecutive epochs with the lowest mean dev EER, the epochs that the average
stage (``tools/stages/backend.sh`` stage 4) then averages.

This module does not extract or score anything itself: ``train/`` sits below
``inference/`` and ``scoring/`` and imports neither. :class:`EpochValidation`
is given an ``evaluate(epoch, checkpoint_path) -> {"eer": ..., ...}``
function, which ``wespk.bin.train`` builds from the extraction engine and the
scoring functions.
"""

import json
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from wespk.io.files import atomic_output
from wespk.train.checkpoint import rng_state, set_rng_state
from wespk.train.distributed import all_reduce_sum

logger = logging.getLogger(__name__)

#: The top-level config keys of validation (besides wespk.io.config.TRAIN_CONFIG_KEYS).
VALIDATION_CONFIG_KEYS = frozenset({"dev_data", "dev_trials", "early_stop_patience"})

#: The file of the per-epoch records, in the exp dir.
RECORDS_NAME = "validation.jsonl"

Evaluate = Callable[[int, str], Dict[str, float]]


def read_validation_records(path: str) -> List[Dict]:
    """The records of ``validation.jsonl`` (``[]`` when there is none), one per epoch, in epoch order."""
    if not os.path.exists(path):
        return []
    records: Dict[int, Dict] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[int(record["epoch"])] = record
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: not a validation record ({e})") from None
    return [records[e] for e in sorted(records)]


def best_record(records: Sequence[Dict]) -> Optional[Dict]:
    """The record with the lowest dev EER (the earliest of equals)."""
    return min(records, key=lambda r: (r["eer"], r["epoch"])) if records else None


def epochs_without_improvement(records: Sequence[Dict]) -> int:
    """How many epochs since the best one (0 when the last epoch is the best)."""
    best = best_record(records)
    return 0 if best is None else int(records[-1]["epoch"]) - int(best["epoch"])


def best_epoch_window(records: Sequence[Dict], num_avg: int) -> Tuple[int, int]:
    """``(first, last)``: the ``num_avg`` consecutive validated epochs with the lowest mean
    dev EER (the latest window of equals: later epochs have seen more data). With fewer
    records than ``num_avg``, all of them. One epoch (``num_avg`` 1) is the best record, the
    earliest of equals: the epoch the log calls best and early stopping counts from."""
    if not records:
        raise ValueError("no validation records")
    num_avg = max(1, min(int(num_avg), len(records)))
    if num_avg == 1:
        best = int(best_record(records)["epoch"])
        return best, best
    best_start, best_mean = 0, float("inf")
    for start in range(len(records) - num_avg + 1):
        mean = sum(r["eer"] for r in records[start:start + num_avg]) / num_avg
        if mean <= best_mean:
            best_start, best_mean = start, mean
    return int(records[best_start]["epoch"]), int(records[best_start + num_avg - 1]["epoch"])


class EpochValidation:
    """The trainer's end-of-epoch hook: scores the epoch's checkpoint on the dev trials.

    ``evaluate(epoch, checkpoint)`` runs on the main process only and returns at
    least ``{"eer": fraction}`` (more numbers are recorded too). Every process
    calls :meth:`after_epoch`; they agree on whether to stop.
    """

    def __init__(self, exp_dir: str, evaluate: Evaluate, patience: int = 0, is_main: bool = True,
                 device: Optional[torch.device] = None):
        if int(patience) < 0:
            raise ValueError(f"early_stop_patience must be >= 0, got {patience}")
        self.path = os.path.join(exp_dir, RECORDS_NAME)
        self.evaluate = evaluate
        self.patience = int(patience)
        self.is_main = is_main
        self.device = device or torch.device("cpu")

    def records(self) -> List[Dict]:
        return read_validation_records(self.path)

    def _record(self, epoch: int, metrics: Dict[str, float]) -> List[Dict]:
        # a resumed run validates an epoch again: its new record replaces the old one,
        # and records of later epochs (from before the resume) are dropped
        records = [r for r in self.records() if int(r["epoch"]) < epoch]
        records.append({"epoch": int(epoch), **{k: float(v) for k, v in metrics.items()}})
        with atomic_output(self.path) as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        return records

    def stopped_early(self) -> bool:
        """True when the records already say training should stop (a re-run after early stopping)."""
        records = self.records()
        return self.patience > 0 and len(records) > 0 and epochs_without_improvement(records) >= self.patience

    def after_epoch(self, epoch: int, checkpoint: str) -> bool:
        """Validate ``checkpoint`` (epoch ``epoch``); True when training should stop now."""
        stop = 0.0
        if self.is_main:
            # building the model to extract with draws from the random generators: the
            # training goes on from the same RNG state with or without validation
            state = rng_state()
            try:
                metrics = self.evaluate(epoch, checkpoint)
            finally:
                set_rng_state(state)
            records = self._record(epoch, metrics)
            best = best_record(records)
            extra = "".join(f" {k} {v:.4f}" for k, v in metrics.items() if k != "eer")
            logger.info("epoch %d: dev EER %.3f%%%s (best: epoch %d, %.3f%%)", epoch, 100 * metrics["eer"],
                        extra, best["epoch"], 100 * best["eer"])
            waited = epochs_without_improvement(records)
            if self.patience and waited >= self.patience:
                logger.info("early stopping after epoch %d: no lower dev EER in %d epoch(s) since epoch %d",
                            epoch, waited, best["epoch"])
                stop = 1.0
        flag = all_reduce_sum(torch.tensor([stop], dtype=torch.float64, device=self.device))
        return float(flag.item()) > 0

    def curve(self) -> List[Tuple[int, float]]:
        """``(epoch, dev EER in %)`` pairs, for the training-curves plot."""
        return [(int(r["epoch"]), 100 * float(r["eer"])) for r in self.records()]
