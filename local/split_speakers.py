#!/usr/bin/env python3
"""Split a data dir's speakers into a training and a held-out (dev) list, seeded.

Usage: local/split_speakers.py (--dev_speakers N | --dev_ratio R) [--seed 777]
           [--min_dev_utts 2] SPK2UTT TRAIN_SPK_LIST DEV_SPK_LIST

Dev speakers are drawn with random.Random(seed) from the speakers with at
least --min_dev_utts utterances (so each gives target trials); every other
speaker trains. The lists are sorted (LC_ALL=C) and hold one speaker a line,
ready for ``tools/subset_data_dir.sh --spk-list``. The same inputs and seed
always give the same split.
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wespk.io.files import DataFileError, atomic_output, read_spk2utt  # noqa: E402


def split_speakers(spk2utt, num_dev: int, seed: int, min_dev_utts: int):
    """``(train, dev)`` speaker lists, both sorted."""
    eligible = sorted((s for s, utts in spk2utt.items() if len(utts) >= min_dev_utts),
                      key=lambda s: s.encode("utf-8"))
    if num_dev < 1:
        raise ValueError("the dev set needs at least 1 speaker")
    if num_dev > len(eligible):
        raise ValueError(f"{num_dev} dev speakers asked for, but only {len(eligible)} speakers "
                         f"have {min_dev_utts} or more utterances")
    if num_dev >= len(spk2utt):
        raise ValueError(f"{num_dev} dev speakers would leave no training speaker "
                         f"(of {len(spk2utt)})")
    dev = set(random.Random(seed).sample(eligible, num_dev))
    order = sorted(spk2utt, key=lambda s: s.encode("utf-8"))
    return [s for s in order if s not in dev], [s for s in order if s in dev]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dev_speakers", type=int, help="number of dev speakers")
    group.add_argument("--dev_ratio", type=float, help="fraction of the speakers for dev (0..1)")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--min_dev_utts", type=int, default=2)
    parser.add_argument("spk2utt")
    parser.add_argument("train_list")
    parser.add_argument("dev_list")
    args = parser.parse_args(argv)
    name = os.path.basename(__file__)
    try:
        spk2utt = read_spk2utt(args.spk2utt)
        if args.dev_ratio is not None:
            if not 0.0 < args.dev_ratio < 1.0:
                raise ValueError(f"--dev_ratio must be between 0 and 1, got {args.dev_ratio}")
            num_dev = max(1, int(round(args.dev_ratio * len(spk2utt))))
        else:
            num_dev = args.dev_speakers
        train, dev = split_speakers(spk2utt, num_dev, args.seed, args.min_dev_utts)
    except (DataFileError, ValueError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    for path, speakers in ((args.train_list, train), (args.dev_list, dev)):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_output(path) as f:
            f.writelines(f"{s}\n" for s in speakers)
    print(f"{len(train)} training speakers -> {args.train_list}; {len(dev)} dev speakers -> {args.dev_list} "
          f"(seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
