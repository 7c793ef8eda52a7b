#!/usr/bin/env python3
"""Make CN-Celeb's evaluation data dirs and trial list.

Usage: local/prepare_cnceleb_eval.py [--enroll_mode concat|average] [--num_threads N]
           CNCELEB1_ROOT TEST_DIR ENROLL_DIR TRIALS

CNCELEB1_ROOT is the unpacked CN-Celeb1 release (CN-Celeb_flac: data/,
eval/test/, eval/enroll/, eval/lists/{trials,enroll}.lst and enroll.map).

TEST_DIR      data dir of eval/test (utterance id = file name, speaker = its idNNNNN)
ENROLL_DIR    data dir of the enrollment audio:
                concat   eval/enroll/<id>-enroll.flac, one utterance per enrollment id
                average  the data/ utterances enroll.map lists, with the enrollment
                         id as their speaker (its embedding is their mean:
                         python -m wespk.bin.speaker_mean --utt2spk ENROLL_DIR/utt2spk)
TRIALS        ``<enroll_id> <test_utt> target|nontarget`` from eval/lists/trials.lst

Both data dirs are checked with tools/validate_data_dir.sh. A listed file
that is missing or unreadable, or a trial naming an unknown id, is an error.
"""

import argparse
import logging
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from wespk.data.corpus_lists import ENROLL_MODES, prepare_cnceleb_eval  # noqa: E402
from wespk.data.importers import CorpusImportError  # noqa: E402
from wespk.io.files import DataFileError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--enroll_mode", default="concat", choices=ENROLL_MODES)
    parser.add_argument("--num_threads", type=int, default=8)
    parser.add_argument("cnceleb1_root")
    parser.add_argument("test_dir")
    parser.add_argument("enroll_dir")
    parser.add_argument("trials")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = os.path.basename(__file__)
    try:
        test_report, enroll_report, count = prepare_cnceleb_eval(
            args.cnceleb1_root, args.test_dir, args.enroll_dir, args.trials,
            enroll_mode=args.enroll_mode, num_threads=args.num_threads)
    except (CorpusImportError, DataFileError, ValueError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    for data_dir in (args.test_dir, args.enroll_dir):
        proc = subprocess.run(["bash", os.path.join(REPO, "tools", "validate_data_dir.sh"), data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            print(f"{name}: {data_dir} does not validate:\n{proc.stdout}", file=sys.stderr)
            return 1
    print(test_report.summary())
    print(f"{enroll_report.summary()} (enroll_mode {args.enroll_mode})")
    print(f"{args.trials}: {count} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
