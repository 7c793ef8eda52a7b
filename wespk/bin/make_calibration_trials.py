"""Make a calibration trial list (short/long duration conditions) from a training data dir, seeded.

python -m wespk.bin.make_calibration_trials (--data_dir data/vox2_dev | --utt2spk U2S --utt2dur U2D) \\
    --output data/vox1/trials/vox2_cali.kaldi [--rounds 5000] [--seed 777]

Each round writes 6 trials (target and non-target for short-short,
short-long and long-long), so the default gives 30 000 trials like
WeSpeaker's tools/generate_calibration_trial.py with each_trial_num=10000.
Short means short_min < dur < short_max seconds, long means dur > long_min.
Unlike WeSpeaker the list is reproducible (seeded) and a target pair never
pairs an utterance with itself unless --allow_same_utterance is given.
"""

import argparse
import os
import sys

from wespk.io.files import DataFileError, atomic_output, read_kaldi_map
from wespk.scoring.calibration_trials import make_calibration_trials, read_durations
from wespk.utils.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.make_calibration_trials",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--data_dir", help="data dir holding utt2spk and utt2dur")
    parser.add_argument("--utt2spk", help="utt2spk (overrides --data_dir's)")
    parser.add_argument("--utt2dur", help="utt2dur (overrides --data_dir's)")
    parser.add_argument("--output", required=True, help="trial list to write")
    parser.add_argument("--rounds", type=int, default=5000, help="rounds of 6 trials (default 5000)")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--short_min", type=float, default=2.0, help="short: longer than this (s), default 2")
    parser.add_argument("--short_max", type=float, default=6.0, help="short: shorter than this (s), default 6")
    parser.add_argument("--long_min", type=float, default=6.0, help="long: longer than this (s), default 6")
    parser.add_argument("--allow_same_utterance", action="store_true",
                        help="draw target pairs with replacement, as WeSpeaker does")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    utt2spk_path = args.utt2spk or (os.path.join(args.data_dir, "utt2spk") if args.data_dir else None)
    utt2dur_path = args.utt2dur or (os.path.join(args.data_dir, "utt2dur") if args.data_dir else None)
    if not utt2spk_path or not utt2dur_path:
        parser.error("give --data_dir, or both --utt2spk and --utt2dur")
    setup_logging()
    try:
        utt2spk = read_kaldi_map(utt2spk_path)
        durations = read_durations(utt2dur_path)
        try:
            trials = make_calibration_trials(utt2spk, durations, args.rounds, args.seed, args.short_min,
                                             args.short_max, args.long_min, args.allow_same_utterance)
        except KeyError as e:
            raise DataFileError(utt2dur_path, None, f"{e.args[0]} (utterances of {utt2spk_path})") from None
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.make_calibration_trials: error: {e}", file=sys.stderr)
        return 1
    with atomic_output(args.output) as f:
        f.writelines(f"{enroll} {test} {label}\n" for enroll, test, label in trials)
    print(f"{args.output}: {len(trials)} calibration trials ({len(trials) // 2} target) from {utt2spk_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
