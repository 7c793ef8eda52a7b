"""Cosine-score trial lists: ``enroll test score [label]`` per trial, in trial order.

python -m wespk.bin.score --embeddings EVAL.scp [--mean_from SET.scp] [--length_norm] \\
    --trials TRIALS --output OUT [--trials TRIALS2 --output OUT2 ...]

With ``--mean_from`` the mean of the embeddings in SET.scp (float32, as
WeSpeaker) is subtracted from every embedding before the cosine;
``--save_mean`` writes that vector (``.npy`` or text) for later stages, and
``--mean_vec`` reads one instead of computing it. ``--length_norm`` scales
every embedding (and the mean set's) to unit length before the mean is
estimated and subtracted.
"""

import argparse
import logging
import sys
import time

from wespk.io.files import DataFileError
from wespk.scoring.cosine import (EmbeddingSet, load_mean_vector, mean_from_scp, save_mean_vector, score_trial_file,
                                  unit_rows)
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.score")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.score", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--embeddings", required=True, help="xvector.scp of the evaluation set")
    means = parser.add_mutually_exclusive_group()
    means.add_argument("--mean_from", help="subtract the mean of the embeddings in this scp")
    means.add_argument("--mean_vec", help="subtract this mean vector (.npy, or one text line)")
    parser.add_argument("--save_mean", help="write the mean vector used here (.npy or text)")
    parser.add_argument("--length_norm", action="store_true",
                        help="L2-normalise embeddings before mean estimation and subtraction")
    parser.add_argument("--trials", action="append", required=True,
                        help="trial list 'enroll test [target|nontarget]' (repeatable)")
    parser.add_argument("--output", action="append", required=True,
                        help="score file for the matching --trials (repeatable)")
    parser.add_argument("--decimals", type=int, default=5, help="decimals of the written scores (default 5)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.trials) != len(args.output):
        parser.error(f"{len(args.trials)} --trials but {len(args.output)} --output: give one output per trial list")
    if args.save_mean and not (args.mean_from or args.mean_vec):
        parser.error("--save_mean needs --mean_from or --mean_vec")
    setup_logging()
    try:
        start = time.perf_counter()
        embeddings = EmbeddingSet.from_scp(args.embeddings)
        mean_vec = None
        if args.mean_from:
            mean_vec = mean_from_scp(args.mean_from, args.length_norm)
        elif args.mean_vec:
            mean_vec = load_mean_vector(args.mean_vec)
        if mean_vec is not None and mean_vec.shape[0] != embeddings.dim:
            raise ValueError(f"mean vector from {args.mean_from or args.mean_vec} has dimension {mean_vec.shape[0]}, "
                             f"embeddings in {args.embeddings} have {embeddings.dim}")
        if args.save_mean:
            save_mean_vector(args.save_mean, mean_vec)
        # prepared once for every list, in the matrix itself: the raw embeddings are not needed again
        unit = unit_rows(embeddings.matrix, mean_vec, args.length_norm, in_place=True)
        for trials_path, output_path in zip(args.trials, args.output):
            count = score_trial_file(trials_path, output_path, embeddings, decimals=args.decimals, unit=unit)
            logger.info("scored %d trials of %s -> %s", count, trials_path, output_path)
        logger.info("done in %.2f s", time.perf_counter() - start)
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.score: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
