"""Normalise cosine scores with a cohort (S-norm or AS-norm), keeping the columns QMF needs.

python -m wespk.bin.score_norm --method asnorm|snorm --top_n N --cohort COHORT.scp \\
    --embeddings EVAL.scp [--mean_from SET.scp] --input OUT --output NORMED [--input ... --output ...]

COHORT.scp holds per-speaker mean embeddings (``python -m wespk.bin.speaker_mean``).
Each output line is WeSpeaker's layout
``enroll test normed_score label enroll_mag test_mag enroll_cohort_mean test_cohort_mean``
(score with 5 decimals, the rest with 4; no label field if the input has none).
The normalised score is computed from the score as written in the input file.
``--mean_from`` / ``--mean_vec`` / ``--length_norm`` must match what produced
the input scores; the mean is subtracted from the cohort too. Cohort
statistics are computed once per utterance for all input files together,
from exact scores, so the output does not depend on the CPU, the threads,
``--chunk_rows`` or ``--device``.
"""

import argparse
import logging
import sys
import time

from wespk.io.files import DataFileError
from wespk.scoring.cosine import EmbeddingSet, load_mean_vector, mean_from_scp, prepare_embeddings
from wespk.scoring.score_norm import DEFAULT_CHUNK_ROWS, normalize_score_files
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.score_norm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.score_norm", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--method", choices=("asnorm", "snorm"), required=True)
    parser.add_argument("--top_n", type=int, default=300,
                        help="AS-norm: number of highest cohort scores per utterance (default 300; "
                             "ignored by snorm)")
    parser.add_argument("--cohort", required=True, help="scp of the cohort (per-speaker mean) embeddings")
    parser.add_argument("--embeddings", required=True, help="xvector.scp of the evaluation set")
    means = parser.add_mutually_exclusive_group()
    means.add_argument("--mean_from", help="subtract the mean of the embeddings in this scp")
    means.add_argument("--mean_vec", help="subtract this mean vector (.npy, or one text line)")
    parser.add_argument("--length_norm", action="store_true",
                        help="L2-normalise embeddings before mean subtraction (as given to score)")
    parser.add_argument("--input", action="append", required=True,
                        help="cosine score file 'enroll test score [label]' (repeatable)")
    parser.add_argument("--output", action="append", required=True,
                        help="normalised score file for the matching --input (repeatable)")
    parser.add_argument("--chunk_rows", type=int, default=DEFAULT_CHUNK_ROWS,
                        help=f"utterances per block of cohort scores (default {DEFAULT_CHUNK_ROWS})")
    parser.add_argument("--device", default="auto",
                        help="auto (a GPU when present, else numpy on the CPU), cpu, cuda or cuda:N; "
                             "the output files do not depend on it")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.input) != len(args.output):
        parser.error(f"{len(args.input)} --input but {len(args.output)} --output: give one output per input")
    if args.method == "asnorm" and args.top_n < 2:
        parser.error("--top_n must be at least 2 (the standard deviation of one score is 0)")
    setup_logging()
    try:
        start = time.perf_counter()
        embeddings = EmbeddingSet.from_scp(args.embeddings)
        cohort = EmbeddingSet.from_scp(args.cohort)
        if cohort.dim != embeddings.dim:
            raise ValueError(f"cohort {args.cohort} has dimension {cohort.dim}, "
                             f"embeddings {args.embeddings} have {embeddings.dim}")
        mean_vec = None
        if args.mean_from:
            mean_vec = mean_from_scp(args.mean_from, args.length_norm)
        elif args.mean_vec:
            mean_vec = load_mean_vector(args.mean_vec)
        # prepared in the matrices read (no second copy): only the prepared rows are needed from here on
        eval_matrix = prepare_embeddings(embeddings.matrix, mean_vec, args.length_norm, in_place=True)
        cohort_matrix = prepare_embeddings(cohort.matrix, mean_vec, args.length_norm, in_place=True)
        embeddings.matrix = cohort.matrix = None
        normalize_score_files(args.input, args.output, embeddings.lookup_keys, args.embeddings, eval_matrix, cohort_matrix,
                              args.top_n if args.method == "asnorm" else None, args.chunk_rows,
                              not args.no_progress, args.device)
        logger.info("done in %.2f s", time.perf_counter() - start)
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.score_norm: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
