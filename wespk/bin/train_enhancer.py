"""Train a SEED embedding enhancer for a frozen speaker model (no speaker labels).

``torchrun --standalone --nproc_per_node=2 -m wespk.bin.train_enhancer --config conf/seed.yaml``

The config names the backbone model dir, a list of audio paths (one a line,
or a wav.scp), the noise and RIR sets and the training options
(docs/enhance.md); any key can be overridden with a dotted name, e.g.
``--num_epochs 5 --optimizer_args.lr 1e-4``. The exp dir gets config.yaml,
train.log, full-state checkpoints in models/ (a killed run resumes exactly
where it stopped), train_metrics.jsonl, loss_curve.png and at the end the
enhancer itself (enhancer.yaml, enhancer.pt).
"""

import argparse
import logging
import os
import sys

from wespk.enhance.training import ENHANCER_CONFIG_KEYS, resolve_config, train_enhancer
from wespk.io.config import ConfigError, load_config
from wespk.train.distributed import cleanup, init_distributed
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.train_enhancer")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="enhancer training config (YAML)")
    parser.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    args, overrides = parser.parse_known_args(argv)
    try:
        config = resolve_config(load_config(args.config, overrides, ENHANCER_CONFIG_KEYS), args.config)
    except (ConfigError, ValueError, OSError) as e:
        print(f"wespk.bin.train_enhancer: {e}", file=sys.stderr)
        return 1
    if args.device:
        config["device"] = args.device
    info = init_distributed(config["device"])
    setup_logging(info.rank, os.path.join(config["exp_dir"], "train.log"))
    logger.info("command: python -m wespk.bin.train_enhancer %s", " ".join(sys.argv[1:] if argv is None else argv))
    try:
        train_enhancer(config, info.rank, info.world_size, str(info.device))
    except (ValueError, ImportError, OSError) as e:
        logger.error("%s", e)
        return 1
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
