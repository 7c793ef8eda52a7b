"""QMF score calibration: gather quality factors, train on a calibration list, apply to evaluation lists.

python -m wespk.bin.calibrate gather --utt2dur UTT2DUR [UTT2DUR ...] [--max_dur 20] [--drop_duration] \\
    --input NORMED.score --output FACTORS.calibration [--input ... --output ...]
python -m wespk.bin.calibrate train (--factors CALI.calibration | --scores CALI_NORMED.score --utt2dur ...) \\
    --model calibration_model.pt
python -m wespk.bin.calibrate apply --model calibration_model.pt \\
    (--factors EVAL.calibration | --scores EVAL_NORMED.score --utt2dur ...) --output QMF.score [... --output ...]
python -m wespk.bin.calibrate run --utt2dur ... --cali_input CALI_NORMED.score --model calibration_model.pt \\
    --input EVAL_NORMED.score --output QMF.score [--input ... --output ...] [--factors_dir DIR]
python -m wespk.bin.calibrate cross_fit --scores EVAL_NORMED.score --utt2spk UTT2SPK --folds 5 [--seed 777] \
    (--utt2dur ... | --drop_duration) --output QMF.score [--spk2fold FILE]

``gather`` reads score-norm files (``python -m wespk.bin.score_norm``) and writes
WeSpeaker's factor layout ``enroll test label score dmin dmax ddiff dratio mmin
mmax mdiff mratio cmin cmax cdiff cratio`` (``--features wespeaker``, the
default), or with ``--features lap --embeddings SCP ...`` the quality
measures of the LAP paper, ``enroll test label score log_dur_e log_dur_t l1_e
l2_e l1_t l2_t std_e std_t`` (L1/L2 norms and std of the raw embeddings in the
scp files, durations not capped). ``train`` fits the linear fusion by
minimising Cllr (WeSpeaker's LBFGS procedure) and saves a state_dict with
``linear.weight``/``linear.bias`` (float64). ``apply`` writes ``enroll test llr
label``, the llr at full precision. ``train`` and ``apply`` take either factor
files or score-norm files (then the factors are gathered on the fly with the
``--utt2dur``/``--max_dur``/``--drop_duration`` options). ``run`` does all
three.

``cross_fit`` calibrates one labelled trial list without any separate
calibration set and without a trial's own speakers: the speakers of the trials
(from ``--utt2spk``) are dealt into ``--folds`` folds (seeded), and a trial whose
speakers lie in folds i and j gets the llr of a model fitted only on the trials
whose speakers are all outside folds i and j (speaker-disjoint cross-validated
calibration, :mod:`wespk.scoring.calibration_cross_fit`). The output has the
layout of ``apply``'s.

The fit is ill-conditioned (a flat optimum), so the LBFGS path depends on the
last bits of every float64 product: with MKL's AVX-512 kernels it stops after
41 steps with weights 3% away from those of MKL's AVX2 kernels (same Cllr to
1e-4). This entry point therefore runs MKL in its conditional-reproducibility
mode ``MKL_CBWR=COMPATIBLE`` (unless the variable is already set), which gives
the same model on every x86 CPU, bit for bit WeSpeaker's reference run; the
fit is small, so the slower kernels cost nothing noticeable.
"""

import argparse
import logging
import os
import sys
import time

# before torch (and so MKL) is loaded: see the module docstring
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

import numpy as np

from wespk.io.files import DataFileError, read_kaldi_map, write_kaldi_map
# the torch parts (the model's fit, loading and application, the cross-fit) are reached through the module and
# imported on first use, so that gather and the argument checks do not wait for torch
from wespk.scoring import calibration
from wespk.scoring.calibration import (DEFAULT_MAX_DUR, DEFAULT_MIN_TARGETS, FEATURE_SETS,
                                       calibrate_score_file, gather_factors, read_factors, write_calibrated_scores,
                                       write_factors)
from wespk.scoring.calibration_trials import read_durations
from wespk.scoring.cosine import EmbeddingSet
from wespk.scoring.metrics import cllr
from wespk.scoring.score_files import read_score_norm_file
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.calibrate")


def _add_gather_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--utt2dur", nargs="+", default=[],
                        help="utt2dur file(s) covering every utterance of the trials")
    parser.add_argument("--max_dur", type=float, default=DEFAULT_MAX_DUR,
                        help=f"cap durations at this many seconds (default {DEFAULT_MAX_DUR:g})")
    parser.add_argument("--drop_duration", action="store_true",
                        help="leave the duration features out (no utt2dur needed)")
    parser.add_argument("--features", choices=FEATURE_SETS, default="wespeaker",
                        help="quality measures: wespeaker (durations, magnitudes and cohort means, symmetrised; "
                             "default) or lap (log durations, L1/L2 norms and std of the raw embeddings, per side)")
    parser.add_argument("--embeddings", nargs="+", default=[],
                        help="--features lap: xvector.scp file(s) holding the raw embeddings of every trial "
                             "utterance")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.calibrate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    commands = parser.add_subparsers(dest="command", required=True)

    gather = commands.add_parser("gather", help="score-norm file(s) + utt2dur -> factor file(s)")
    _add_gather_options(gather)
    gather.add_argument("--input", action="append", required=True, help="score-norm file (repeatable)")
    gather.add_argument("--output", action="append", required=True, help="factor file for the matching --input")

    train = commands.add_parser("train", help="calibration list (factors or score-norm file) -> model")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--factors", help="factor file of the calibration trials (labelled)")
    source.add_argument("--scores", help="score-norm file of the calibration trials (factors gathered here)")
    _add_gather_options(train)
    train.add_argument("--model", required=True, help="where to save the model state_dict")
    _add_train_options(train)

    apply = commands.add_parser("apply", help="model + factor or score-norm file(s) -> calibrated score file(s)")
    apply.add_argument("--model", required=True)
    sources = apply.add_mutually_exclusive_group(required=True)
    sources.add_argument("--factors", action="append", help="factor file (repeatable)")
    sources.add_argument("--scores", action="append", help="score-norm file (repeatable; factors gathered here)")
    _add_gather_options(apply)
    apply.add_argument("--output", action="append", required=True,
                       help="calibrated scores for the matching --factors / --scores")
    _add_apply_options(apply)

    run = commands.add_parser("run", help="gather + train + apply in one go")
    _add_gather_options(run)
    run.add_argument("--cali_input", required=True, help="score-norm file of the calibration trials")
    run.add_argument("--model", required=True, help="where to save the model state_dict")
    run.add_argument("--input", action="append", required=True, help="score-norm file to calibrate (repeatable)")
    run.add_argument("--output", action="append", required=True, help="calibrated scores for the matching --input")
    run.add_argument("--factors_dir", help="also keep the factor files here (<input name>.calibration)")
    _add_train_options(run)
    _add_apply_options(run)

    cross = commands.add_parser("cross_fit", help="one labelled score-norm file -> calibrated scores, each trial by a "
                                                  "model fitted without its speakers (speaker folds)")
    cross.add_argument("--scores", required=True, help="score-norm file of the labelled trials to calibrate")
    _add_gather_options(cross)
    cross.add_argument("--utt2spk", required=True, help="utterance -> speaker of every trial utterance")
    cross.add_argument("--folds", type=int, default=5, help="speaker folds K (default 5; K (K + 1) / 2 fits)")
    cross.add_argument("--seed", type=int, default=777, help="seed of the fold assignment (default 777)")
    cross.add_argument("--min_targets", type=int, default=DEFAULT_MIN_TARGETS,
                       help=f"fewest target (and non-target) trials a fit may use (default {DEFAULT_MIN_TARGETS})")
    cross.add_argument("--spk2fold", help="also write 'speaker fold' lines here")
    cross.add_argument("--output", required=True, help="calibrated scores (the layout of apply's)")
    _add_train_options(cross)
    _add_apply_options(cross)
    return parser


def _add_apply_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--float32_weights", action="store_true",
                        help="round the model weights to float32 before applying them, as WeSpeaker's "
                             "infer_calibration does (to reproduce its scores exactly)")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max_epochs", type=int, default=50, help="outer LBFGS steps at most (default 50)")
    parser.add_argument("--lr", type=float, default=0.01, help="LBFGS learning rate (default 0.01)")


def _durations(args):
    if args.drop_duration:
        return None
    if not args.utt2dur:
        raise ValueError("--utt2dur is required unless --drop_duration is given")
    return read_durations(args.utt2dur)


def _embeddings(args):
    """The raw embeddings the lap features need (read once), else None."""
    if args.features != "lap":
        return None
    if not args.embeddings:
        raise ValueError("--features lap needs --embeddings (the xvector.scp of every trial utterance)")
    return EmbeddingSet.from_scps(args.embeddings)


def _gather(input_path, durations, args, embeddings):
    factors = gather_factors(read_score_norm_file(input_path), durations, args.max_dur, args.features, embeddings)
    logger.info("%s: %d trials, %d features", input_path, len(factors), factors.num_features)
    return factors


def _train(factors, model_path, args):
    result = calibration.train_qmf_on_factors(factors, max_epochs=args.max_epochs, lr=args.lr,
                                              standardize=args.features == "lap")
    calibration.save_qmf_model(model_path, result.state_dict)
    labelled = np.array([label == "target" for label in factors.labels])
    raw = cllr(factors.features[:, 0], labelled)
    print(f"{factors.path}: {len(factors)} calibration trials; Cllr of the raw score {raw:.4f}, "
          f"after QMF {result.final_cllr:.4f} ({result.num_steps} LBFGS steps) -> {model_path}")
    return result


def _apply(state, factors, output_path, float32_weights):
    llrs = calibration.apply_qmf(state, factors.features, float32_weights)
    write_calibrated_scores(output_path, factors, llrs)
    known = np.array([label != "unknown" for label in factors.labels])
    if known.all():
        is_target = np.array([label == "target" for label in factors.labels])
        if 0 < is_target.sum() < len(is_target):
            print(f"{output_path}: Cllr {cllr(factors.features[:, 0], is_target):.4f} (raw score) -> "
                  f"{cllr(llrs, is_target):.4f} (calibrated)")
    logger.info("%s -> %s", factors.path, output_path)


def _calibrate_streamed(state, input_path, output_path, durations, embeddings, args, factors_path=None):
    """Gather, apply and write one score-norm file a block at a time (memory bounded at any length)."""
    result = calibrate_score_file(state, input_path, output_path, durations, args.max_dur, args.features, embeddings,
                                  args.float32_weights, factors_path)
    if result.is_target is not None and 0 < result.is_target.sum() < len(result.is_target):
        print(f"{output_path}: Cllr {cllr(result.scores, result.is_target):.4f} (raw score) -> "
              f"{cllr(result.llrs, result.is_target):.4f} (calibrated)")
    logger.info("%s: %d trials -> %s", input_path, len(result.llrs), output_path)


def _cross_fit(args):
    from wespk.scoring.calibration_cross_fit import cross_fit_qmf, cross_fit_summary

    durations, embeddings = _durations(args), _embeddings(args)
    factors = _gather(args.scores, durations, args, embeddings)
    result = cross_fit_qmf(factors, read_kaldi_map(args.utt2spk), args.folds, args.seed, utt2spk_path=args.utt2spk,
                           min_targets=args.min_targets, min_nontargets=args.min_targets,
                           float32_weights=args.float32_weights, max_epochs=args.max_epochs, lr=args.lr,
                           standardize=args.features == "lap")
    write_calibrated_scores(args.output, factors, result.llrs)
    if args.spk2fold:
        write_kaldi_map(args.spk2fold, result.spk2fold)
    is_target = np.array([label == "target" for label in factors.labels])
    print(f"{args.output}: {cross_fit_summary(result)}; Cllr {cllr(factors.features[:, 0], is_target):.4f} "
          f"(raw score) -> {cllr(result.llrs, is_target):.4f} (cross-fitted)")


def _factor_tables(args, factor_paths, score_paths):
    """Factor tables from factor files, or gathered from score-norm files."""
    if factor_paths:
        return [read_factors(path, args.features) for path in factor_paths]
    durations, embeddings = _durations(args), _embeddings(args)
    return [_gather(path, durations, args, embeddings) for path in score_paths]


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("gather", "run") and len(args.input) != len(args.output):
        parser.error("give one --output per --input")
    if args.command == "apply" and len(args.factors or args.scores) != len(args.output):
        parser.error("give one --output per --factors / --scores")
    setup_logging()
    start = time.perf_counter()
    try:
        if args.command == "gather":
            durations, embeddings = _durations(args), _embeddings(args)
            for input_path, output_path in zip(args.input, args.output):
                write_factors(output_path, _gather(input_path, durations, args, embeddings))
        elif args.command == "train":
            factors, = _factor_tables(args, [args.factors] if args.factors else [], [args.scores])
            _train(factors, args.model, args)
        elif args.command == "apply" and args.scores:
            state = calibration.load_qmf_model(args.model)
            durations, embeddings = _durations(args), _embeddings(args)
            for input_path, output_path in zip(args.scores, args.output):
                _calibrate_streamed(state, input_path, output_path, durations, embeddings, args)
        elif args.command == "cross_fit":
            _cross_fit(args)
        elif args.command == "apply":
            state = calibration.load_qmf_model(args.model)
            for factors, output_path in zip(_factor_tables(args, args.factors, []), args.output):
                _apply(state, factors, output_path, args.float32_weights)
        else:
            durations, embeddings = _durations(args), _embeddings(args)
            cali_factors = _gather(args.cali_input, durations, args, embeddings)
            if args.factors_dir:
                write_factors(os.path.join(args.factors_dir, os.path.basename(args.cali_input) + ".calibration"),
                              cali_factors)
            state = _train(cali_factors, args.model, args).state_dict
            for input_path, output_path in zip(args.input, args.output):
                factors_path = (os.path.join(args.factors_dir, os.path.basename(input_path) + ".calibration")
                                if args.factors_dir else None)
                _calibrate_streamed(state, input_path, output_path, durations, embeddings, args, factors_path)
        logger.info("done in %.2f s", time.perf_counter() - start)
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.calibrate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
