"""EER, minDCF (and actDCF / Cllr for calibrated scores) of score files, with optional plots and reports.

python -m wespk.bin.compute_metrics [--p_target P ...] [--calibrated | --auto_calibrated] \\
    [--det_png DET.png] [--hist_png HIST.png] [--report_md REPORT.md] [--json METRICS.json] SCORES...

For each score file (``enroll test score label``, or a score-norm file) it
prints a block such as::

    ---- exp/scores/vox1_O.score ----
    EER = 3.132%
    minDCF(p_target=0.01) = 0.3111
    minDCF(p_target=0.05) = 0.2224
    minDCF(p_target=0.001) = 0.4556

With ``--calibrated`` every file is also treated as natural-log likelihood
ratios and gets ``actDCF(p_target=...)`` and ``Cllr = ...`` lines;
``--auto_calibrated`` does so only for files whose name says they are
calibrated: it contains ``qmf`` (as the calibrate stage names them) or starts
with ``cali_`` but not ``cali_trials`` (WeSpeaker's naming).
EER and minDCF follow WeSpeaker's score_metrics exactly (c_miss = c_fa = 1
unless changed).
"""

import argparse
import logging
import os
import shlex
import sys

from wespk.io.files import DataFileError
from wespk.scoring.metrics import DEFAULT_P_TARGETS, calibration_metrics, eer_min_dcf
from wespk.scoring.report import (ScoreFileMetrics, metric_lines, write_markdown_summary, write_metrics_json)
from wespk.scoring.score_files import read_scores_and_targets
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.compute_metrics")


def looks_calibrated(path: str) -> bool:
    """The ``--auto_calibrated`` rule, by file name.

    True for names containing ``qmf`` (``<trials>.qmf.score``, what the calibrate
    stage writes here) or starting with ``cali_`` (WeSpeaker's
    ``cali_<cohort>_asnorm<N>_<trials>.score``), except ``cali_trials*``, the
    scores of a calibration trial list.
    """
    name = os.path.basename(path).lower()
    return "qmf" in name or (name.startswith("cali_") and not name.startswith("cali_trials"))


def split_p_targets(values, scores):
    """``--p_target 0.01 0.05 a.score b.score``: argparse gives all four to --p_target.

    The leading numbers are the priors; the rest are score files and go before
    the other positional arguments.
    """
    numbers = []
    for index, value in enumerate(values):
        try:
            numbers.append(float(value))
        except ValueError:
            return numbers, list(values[index:]) + list(scores)
    return numbers, list(scores)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.compute_metrics", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("scores", nargs="*", help="score files with a label column")
    parser.add_argument("--p_target", nargs="+", metavar="P", default=[str(p) for p in DEFAULT_P_TARGETS],
                        help="target priors for minDCF/actDCF (default: 0.01 0.05 0.001); the score files "
                             "may follow directly")
    parser.add_argument("--c_miss", type=float, default=1.0)
    parser.add_argument("--c_fa", type=float, default=1.0)
    calibrated = parser.add_mutually_exclusive_group()
    calibrated.add_argument("--calibrated", action="store_true",
                            help="the scores are LLRs: also report actDCF and Cllr for every file")
    calibrated.add_argument("--auto_calibrated", action="store_true",
                            help="report actDCF and Cllr for files named *qmf* or cali_* (not cali_trials*)")
    parser.add_argument("--det_png", help="DET curves of all files in one PNG")
    parser.add_argument("--hist_png", help="target / non-target score histograms, one panel per file")
    parser.add_argument("--report_md", help="markdown summary table (links the PNGs)")
    parser.add_argument("--json", help="all metrics as JSON")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.p_target, args.scores = split_p_targets(args.p_target, args.scores)
    if not args.p_target:
        parser.error("--p_target needs at least one number")
    if not args.scores:
        parser.error("no score files given")
    for p in args.p_target:
        if not 0 < p < 1:
            parser.error(f"--p_target must be between 0 and 1, got {p}")
    setup_logging(level=logging.WARNING)
    results, score_sets = [], []
    try:
        for path in args.scores:
            scores, is_target = read_scores_and_targets(path)
            try:
                detection = eer_min_dcf(scores, is_target, args.p_target, args.c_miss, args.c_fa)
                calibrated = args.calibrated or (args.auto_calibrated and looks_calibrated(path))
                calibration = (calibration_metrics(scores, is_target, args.p_target, args.c_miss, args.c_fa)
                               if calibrated else None)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
            result = ScoreFileMetrics(path=path, detection=detection, calibration=calibration)
            results.append(result)
            print(f"---- {path} ----")
            print("\n".join(metric_lines(result)), flush=True)
            if args.det_png or args.hist_png:
                from wespk.scoring.plots import ScoreSet

                score_sets.append(ScoreSet(os.path.basename(path), scores, is_target, detection.eer))
        images = []
        if args.det_png:
            from wespk.scoring.plots import plot_det_curves

            plot_det_curves(score_sets, args.det_png)
            images.append(args.det_png)
        if args.hist_png:
            from wespk.scoring.plots import plot_score_histograms

            plot_score_histograms(score_sets, args.hist_png)
            images.append(args.hist_png)
        if args.report_md:
            command = "python -m wespk.bin.compute_metrics " + " ".join(
                shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
            write_markdown_summary(args.report_md, results, images, command)
        if args.json:
            write_metrics_json(args.json, results)
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.compute_metrics: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
