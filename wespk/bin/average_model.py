"""Average model checkpoints: the last N epochs, or an epoch range.

``python -m wespk.bin.average_model --src_path EXP/models --dst_model EXP/models/avg_model.pt --num 5``
``python -m wespk.bin.average_model --src_path EXP/models --dst_model OUT.pt --min_epoch 6 --max_epoch 10``

The result is a bare state_dict (as WeSpeaker's avg_model.pt), the
element-wise mean of the models' state_dicts in float32 (integer buffers such
as BatchNorm's num_batches_tracked are taken from the newest model).
"""

import argparse
import logging
import sys
from typing import Dict, List

import torch

from wespk.io.checkpoint import CheckpointError, load_state_dict, save_checkpoint
from wespk.train.checkpoint import checkpoint_position, list_checkpoints
from wespk.utils.logs import setup_logging
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger("wespk.bin.average_model")


def average_state_dicts(paths: List[str], trust: bool = False) -> Dict[str, torch.Tensor]:
    """Element-wise mean of the state_dicts stored in ``paths``."""
    total: Dict[str, torch.Tensor] = {}
    keys = None
    for path in paths:
        state = load_state_dict(path, trust)
        if keys is None:
            keys = list(state)
        elif set(state) != set(keys):
            raise ValueError(f"{path}: keys differ from {paths[0]}: "
                             f"{sorted(set(state) ^ set(keys))[:5]}")
        for key, value in state.items():
            if value.is_floating_point():
                total[key] = total.get(key, 0) + value.double()
            else:
                total[key] = value.clone()
    return {k: (v / len(paths)).float() if v.is_floating_point() else v for k, v in total.items()}


def select_epoch_checkpoints(model_dir: str, num: int = 0, min_epoch: int = 0, max_epoch: int = 0) -> List[str]:
    """End-of-epoch checkpoints: the last ``num``, or those in [min_epoch, max_epoch]."""
    ends = [p for p in list_checkpoints(model_dir) if checkpoint_position(p)[1] < 0]
    if num:
        chosen = ends[-num:]
        if len(chosen) < num:
            raise ValueError(f"{model_dir}: asked to average {num} epochs, found {len(chosen)} "
                             f"end-of-epoch checkpoints")
        return chosen
    chosen = [p for p in ends if min_epoch <= checkpoint_position(p)[0] <= max_epoch]
    if not chosen:
        raise ValueError(f"{model_dir}: no checkpoints for epochs {min_epoch}..{max_epoch}")
    return chosen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src_path", required=True, help="directory with model_<epoch>.pt")
    parser.add_argument("--dst_model", required=True, help="output model file")
    parser.add_argument("--num", type=int, default=0, help="average the last NUM epochs")
    parser.add_argument("--min_epoch", type=int, default=0)
    parser.add_argument("--max_epoch", type=int, default=0)
    add_trust_checkpoint_option(parser, "the checkpoints")
    args = parser.parse_args(argv)
    setup_logging()
    if not args.num and not args.max_epoch:
        parser.error("give --num N, or --min_epoch and --max_epoch")
    try:
        paths = select_epoch_checkpoints(args.src_path, args.num, args.min_epoch, args.max_epoch)
        averaged = average_state_dicts(paths, args.trust_checkpoint)
    except (CheckpointError, ValueError, RuntimeError, OSError) as e:
        print(f"wespk.bin.average_model: {e}", file=sys.stderr)
        return 1
    save_checkpoint(args.dst_model, averaged)
    logger.info("averaged %d checkpoints (%s) into %s", len(paths),
                ", ".join(p.rsplit("/", 1)[-1] for p in paths), args.dst_model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
