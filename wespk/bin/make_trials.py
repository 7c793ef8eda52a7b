"""Make a trial list ``enroll test target|nontarget`` from a data dir's utt2spk.

``python -m wespk.bin.make_trials [--nontarget_ratio 10] [--seed 777] data/test/utt2spk data/test/trials``
"""

import argparse
import sys

from wespk.data.trials import make_trials
from wespk.io.files import DataFileError, atomic_output, read_kaldi_map


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("utt2spk")
    parser.add_argument("trials")
    parser.add_argument("--nontarget_ratio", type=float, default=10.0,
                        help="non-target trials per target trial (default 10)")
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args(argv)
    try:
        trials = make_trials(read_kaldi_map(args.utt2spk), args.nontarget_ratio, args.seed)
    except DataFileError as e:
        print(f"wespk.bin.make_trials: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"wespk.bin.make_trials: {args.utt2spk}: {e}", file=sys.stderr)
        return 1
    with atomic_output(args.trials) as f:
        f.writelines(f"{a} {b} {label}\n" for a, b, label in trials)
    n_target = sum(t[2] == "target" for t in trials)
    print(f"{args.trials}: {len(trials)} trials ({n_target} target, {len(trials) - n_target} nontarget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
