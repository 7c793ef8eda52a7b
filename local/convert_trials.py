#!/usr/bin/env python3
"""Convert an official trial list to a Kaldi trial list ``enroll test target|nontarget``.

Usage: local/convert_trials.py --format voxceleb|cnceleb [--prefix NAME] [--known FILE ...]
           OFFICIAL_LIST KALDI_TRIALS

--format voxceleb  VoxCeleb1 lists, label first:
                   ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``
                   -> ``id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target``
--format cnceleb   CN-Celeb's trials.lst, label last:
                   ``id00800-enroll test/id00800-singing-01-001.wav 0``
                   -> ``id00800-enroll id00800-singing-01-001 nontarget``
--prefix NAME      the --prefix the data dir was imported with (VoxCeleb only)
--known FILE       Kaldi files (utt2spk, spk2utt ...) whose keys every enrollment
                   and test id must be among (repeatable); unknown ids are an error

Utterance ids are those ``python -m wespk.bin.prepare_data --layout folder``
gives the files (see wespk/data/corpus_lists.py). The output is written
atomically; trial order is kept.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wespk.data.corpus_lists import (check_trial_keys, convert_trials, read_keys,  # noqa: E402
                                     trial_counts, write_trials)
from wespk.io.files import DataFileError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--format", required=True, choices=("voxceleb", "cnceleb"))
    parser.add_argument("--prefix", default=None)
    parser.add_argument("--known", action="append", default=[])
    parser.add_argument("official_list")
    parser.add_argument("kaldi_trials")
    args = parser.parse_args(argv)
    name = os.path.basename(__file__)
    try:
        trials = convert_trials(args.format, args.official_list, args.prefix)
        if args.known:
            keys = read_keys(args.known)
            check_trial_keys(trials, keys, keys, args.official_list)
    except (DataFileError, ValueError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    out_dir = os.path.dirname(os.path.abspath(args.kaldi_trials))
    os.makedirs(out_dir, exist_ok=True)
    write_trials(args.kaldi_trials, trials)
    counts = trial_counts(trials)
    print(f"{args.kaldi_trials}: {len(trials)} trials ({counts['target']} target, "
          f"{counts['nontarget']} nontarget) from {args.official_list}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
