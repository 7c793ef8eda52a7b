"""Per-speaker mean embeddings (the cohort for score normalisation), as WeSpeaker's tools/vector_mean.py.

python -m wespk.bin.speaker_mean --xvector_scp embeddings/train/xvector.scp \\
    (--spk2utt data/train/spk2utt | --utt2spk data/train/utt2spk) \\
    (--output_ark embeddings/train/spk_xvector.ark [--output_scp ...] | --output_dir embeddings/train_spk)

Each speaker's vector is the float32 mean of its utterances' embeddings
(accumulated in spk2utt order); speakers are written in spk2utt order
(C-sorted when built from utt2spk). The scp refers to the ark by its absolute
path and defaults to the ark name with ``.scp``; ``--output_dir DIR`` writes
``DIR/xvector.ark`` and ``DIR/xvector.scp``. ``--embeddings`` is another name
for ``--xvector_scp``.
"""

import argparse
import logging
import os
import sys

from wespk.io.embeddings import write_embeddings
from wespk.io.files import DataFileError, read_kaldi_map, read_spk2utt, utt2spk_to_spk2utt
from wespk.scoring.cohort import speaker_means
from wespk.scoring.cosine import EmbeddingSet
from wespk.utils.logs import setup_logging

logger = logging.getLogger("wespk.bin.speaker_mean")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wespk.bin.speaker_mean", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--xvector_scp", "--embeddings", dest="xvector_scp", required=True,
                        help="utterance embeddings")
    speakers = parser.add_mutually_exclusive_group(required=True)
    speakers.add_argument("--spk2utt", help="speaker -> utterances")
    speakers.add_argument("--utt2spk", help="utterance -> speaker (inverted here)")
    outputs = parser.add_mutually_exclusive_group(required=True)
    outputs.add_argument("--output_ark", help="spk_xvector.ark to write")
    outputs.add_argument("--output_dir", help="write xvector.ark and xvector.scp in this directory")
    parser.add_argument("--output_scp", help="index of --output_ark (default: the ark path with .scp)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.output_dir and args.output_scp:
        parser.error("--output_scp goes with --output_ark, not --output_dir")
    setup_logging()
    if args.output_dir:
        output_ark = os.path.abspath(os.path.join(args.output_dir, "xvector.ark"))
        output_scp = os.path.join(args.output_dir, "xvector.scp")
    else:
        output_ark = os.path.abspath(args.output_ark)
        output_scp = args.output_scp or os.path.splitext(output_ark)[0] + ".scp"
    try:
        if args.spk2utt:
            spk2utt, spk2utt_path = read_spk2utt(args.spk2utt), args.spk2utt
        else:
            spk2utt, spk2utt_path = utt2spk_to_spk2utt(read_kaldi_map(args.utt2spk)), args.utt2spk
        embeddings = EmbeddingSet.from_scp(args.xvector_scp)
        means = speaker_means(spk2utt, embeddings.row_of, embeddings.matrix, spk2utt_path, args.xvector_scp)
        count = write_embeddings(output_ark, output_scp, means)
    except (DataFileError, ValueError) as e:
        print(f"wespk.bin.speaker_mean: error: {e}", file=sys.stderr)
        return 1
    print(f"{output_scp}: {count} speaker mean embeddings from {len(embeddings.keys)} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
