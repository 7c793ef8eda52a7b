"""Train a speaker model: ``torchrun --nproc_per_node N -m wespk.bin.train --config C.yaml``.

Any config key can be overridden with a dotted option, e.g.
``--model_args.embed_dim 192 --num_epochs 5``. Runs as a single process
under plain ``python -m`` too. Resumes automatically from the newest
checkpoint in ``<exp_dir>/models`` unless ``--checkpoint`` names one.
"""

import argparse
import logging
import os
import shlex
import sys

from wespk.io.checkpoint import CheckpointError
from wespk.io.config import TRAIN_CONFIG_KEYS, ConfigError, load_config
from wespk.train.distributed import cleanup, init_distributed
from wespk.train.validation import VALIDATION_CONFIG_KEYS, EpochValidation
from wespk.utils.logs import setup_logging
from wespk.utils.malloc import keep_large_allocations_in_heap
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger("wespk.bin.train")


DATALOADER_KEYS = frozenset({"batch_size", "num_workers", "pin_memory", "prefetch_factor", "drop_last",
                             "num_spks", "num_utts_per_spk"})  # the last two: GE2E batches


def check_sections(config) -> None:
    """Reject unknown keys in the data sections before any process starts work."""
    from wespk.data.dataset_args import resolve_dataset_args
    resolve_dataset_args(config.get("dataset_args"))
    unknown = sorted(set(config.get("dataloader_args") or {}) - DATALOADER_KEYS)
    if unknown:
        raise ValueError(f"unknown dataloader_args key(s) {unknown}; known keys: {sorted(DATALOADER_KEYS)}")


def dev_trials_validation(config, info):
    """The end-of-epoch hook of a config with ``dev_trials``: each epoch's checkpoint extracted
    on ``dev_data`` (the one extraction engine) and cosine-scored on the trials with the dev
    set's mean subtracted; None without ``dev_trials``."""
    if not config.get("dev_trials"):
        return None
    if not config.get("dev_data"):
        raise ValueError("dev_trials needs dev_data (the data dir of the trials' utterances)")
    from wespk.inference.extractor import extract_embeddings
    from wespk.io.trials import read_trials
    from wespk.scoring.cosine import EmbeddingSet, mean_embedding, score_trials
    from wespk.scoring.metrics import eer_min_dcf

    trials = read_trials(config["dev_trials"])
    out_dir = os.path.join(config["exp_dir"], "validation")

    def evaluate(epoch, checkpoint):
        extract_embeddings(config["dev_data"], config["exp_dir"], out_dir, checkpoint=checkpoint)
        # a one-job extraction runs in this process and sets up its own logging: restore train.log
        setup_logging(info.rank, os.path.join(config["exp_dir"], "train.log"))
        embeddings = EmbeddingSet.from_scp(os.path.join(out_dir, "xvector.scp"))
        scores, _, _ = score_trials(trials, embeddings, mean_embedding(embeddings.matrix))
        metrics = eer_min_dcf(scores, trials.is_target, (0.01,))
        return {"eer": metrics.eer, "min_dcf_0.01": metrics.min_dcf[0.01]}

    return EpochValidation(config["exp_dir"], evaluate, int(config.get("early_stop_patience") or 0),
                           info.is_main, info.device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML training config")
    parser.add_argument("--checkpoint", default=None, help="resume from this training checkpoint")
    add_trust_checkpoint_option(parser, "--checkpoint, the latest checkpoint and model_init")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"],
                        help="overrides the config's precision / enable_amp")
    args, overrides = parser.parse_known_args(argv)
    try:
        config = load_config(args.config, overrides, TRAIN_CONFIG_KEYS | VALIDATION_CONFIG_KEYS)
    except ConfigError as e:
        print(f"wespk.bin.train: {e}", file=sys.stderr)
        return 2
    for key in ("exp_dir", "train_data", "train_label", "model"):
        if not config.get(key):
            print(f"wespk.bin.train: {args.config}: missing required key {key!r}", file=sys.stderr)
            return 2
    try:
        check_sections(config)
    except ValueError as e:
        print(f"wespk.bin.train: {args.config}: {e}", file=sys.stderr)
        return 2

    keep_large_allocations_in_heap()  # activations and gradients reuse heap memory (wespk.utils.malloc)
    info = init_distributed(args.device)
    setup_logging(info.rank, os.path.join(config["exp_dir"], "train.log"))
    # under torchrun -m, sys.argv[0] is a reconstructed path; name the module instead
    logger.info("command: python -m wespk.bin.train %s", shlex.join(sys.argv[1:] if argv is None else argv))
    from wespk.train.trainer import Trainer
    try:
        try:
            validation = dev_trials_validation(config, info)
        except ValueError as e:
            print(f"wespk.bin.train: {args.config}: {e}", file=sys.stderr)
            return 2
        trainer = Trainer(config, info, precision=args.precision, checkpoint=args.checkpoint,
                          trust_checkpoint=args.trust_checkpoint, validation=validation)
        if validation is not None and validation.stopped_early():
            logger.info("training stopped early before (%s): nothing to do", validation.path)
        else:
            trainer.fit()
    except CheckpointError as e:
        print(f"wespk.bin.train: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
