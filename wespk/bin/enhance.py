"""Enhance speaker embeddings with a trained SEED enhancer: ark/scp in, ark/scp out.

``python -m wespk.bin.enhance --enhancer EXP/enhancer --seed 0 --input EMB/xvector.scp --output_dir OUT``

Writes ``OUT/xvector.{ark,scp}``. The noise of each embedding is drawn from
``(--seed, key)``: the output does not depend on the batch size or on how the
input was split. ``--backbone MODEL_DIR`` checks that the embeddings' model is
the one the enhancer was trained for.
"""

import argparse
import logging
import sys

from wespk.enhance.apply import enhance_embedding_file
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.enhance")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enhancer", required=True, help="enhancer dir (enhancer.yaml, enhancer.pt)")
    parser.add_argument("--seed", type=int, required=True, help="seed of the per-key noise")
    parser.add_argument("--input", required=True, help="embeddings scp")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--t", type=int, default=None, help="diffusion step to noise to (default: the enhancer's, 50)")
    parser.add_argument("--steps", type=int, default=None,
                        help="DDIM steps from t back to 0 (default: the enhancer's, 1)")
    parser.add_argument("--backbone", default=None, help="model dir of the embeddings, checked against the enhancer's")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        count = enhance_embedding_file(args.enhancer, args.input, args.output_dir, args.seed, args.t, args.steps,
                                       args.batch_size, args.backbone, args.device)
    except (ValueError, ImportError, OSError) as e:
        print(f"wespk.bin.enhance: {e}", file=sys.stderr)
        return 1
    logger.info("wrote %d enhanced embeddings to %s/xvector.scp", count, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
