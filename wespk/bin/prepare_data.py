"""Import a corpus into a Kaldi data dir.

Usage:
  python -m wespk.bin.prepare_data --layout folder|csv|jsonl [--prefix NAME] SOURCE DATA_DIR

SOURCE is the root folder (``<root>/<speaker>/.../<utt>.wav|flac``), a CSV
manifest (``ID,duration,wav,spk_id``, SpeechBrain) or a JSON-lines manifest
(``audio_filepath,duration,label``, NeMo). DATA_DIR gets wav.scp, utt2spk,
spk2utt, utt2dur (and segments for cut utterances), sorted and written
atomically; ``tools/validate_data_dir.sh`` checks it when present. Several
corpora: import each with its own ``--prefix`` and join them with
``tools/combine_data.sh``.
"""

import argparse
import logging
import os
import subprocess
import sys

from wespk.data.importers import DEFAULT_EXTENSIONS, LAYOUTS, CorpusImportError, prepare_data_dir
from wespk.io.files import DataFileError

logger = logging.getLogger("wespk.bin.prepare_data")


def find_validator() -> str:
    """Path of ``tools/validate_data_dir.sh`` in this checkout ('' when absent)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(repo, "tools", "validate_data_dir.sh")
    return path if os.path.isfile(path) else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--layout", required=True, choices=LAYOUTS, help="how SOURCE is organised")
    parser.add_argument("--prefix", default=None,
                        help="corpus name put before speaker and utterance ids (NAME-...)")
    parser.add_argument("--extensions", default=",".join(DEFAULT_EXTENSIONS),
                        help="audio file extensions for --layout folder (default: %(default)s)")
    parser.add_argument("--data-root", "--data_root", default=None,
                        help="replaces $data_root in CSV paths (SpeechBrain manifests)")
    parser.add_argument("--segment-unit", "--segment_unit", default="samples",
                        choices=("samples", "seconds"),
                        help="unit of the CSV start/stop columns (default: %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="fail on unreadable audio instead of dropping it")
    parser.add_argument("--num-threads", "--num_threads", type=int, default=8,
                        help="threads reading audio headers (default: %(default)s)")
    parser.add_argument("--no-validate", "--no_validate", action="store_true",
                        help="do not run tools/validate_data_dir.sh afterwards")
    parser.add_argument("source", help="root folder or manifest file")
    parser.add_argument("data_dir", help="output Kaldi data dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        report = prepare_data_dir(args.layout, args.source, args.data_dir, prefix=args.prefix,
                                  extensions=[e for e in args.extensions.split(",") if e],
                                  data_root=args.data_root, segment_unit=args.segment_unit,
                                  strict=args.strict, num_threads=args.num_threads)
    except (CorpusImportError, DataFileError, ValueError) as e:
        logger.error("%s", e)
        return 1
    logger.info("%s", report.summary())
    validator = "" if args.no_validate else find_validator()
    if validator:
        proc = subprocess.run(["bash", validator, args.data_dir], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        output = proc.stdout.strip()
        if proc.returncode != 0:
            logger.error("validate_data_dir.sh failed on %s:\n%s", args.data_dir, output)
            return 1
        if output:
            logger.info("%s", output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
