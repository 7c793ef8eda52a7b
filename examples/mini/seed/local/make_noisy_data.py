#!/usr/bin/env python3
"""The noisy evaluation condition of the seed recipe: data/test reverberated and mixed with noise.

Usage: python local/make_noisy_data.py --data data/test --noise data/aug_eval/noise
           --rirs data/aug_eval/rirs --snr 5 --seed 2027 --out_dir data/test_snr5
       python local/make_noisy_data.py --trials data/test/trials --enroll_suffix "" --test_suffix -snr5
           --output data/trials/clean_vs_snr5
"""

import argparse
import logging
import sys

from wespk.enhance.noisy_condition import build_noisy_copy, write_condition_trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--noise")
    parser.add_argument("--rirs", default=None)
    parser.add_argument("--snr", type=float)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--out_dir")
    parser.add_argument("--trials")
    parser.add_argument("--enroll_suffix", default="")
    parser.add_argument("--test_suffix", default="")
    parser.add_argument("--output")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.trials:
        write_condition_trials(args.trials, args.output, args.enroll_suffix, args.test_suffix)
    else:
        suffix = f"-snr{args.snr:g}"
        build_noisy_copy(args.data, args.out_dir, args.noise, args.rirs, args.snr, args.seed, suffix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
