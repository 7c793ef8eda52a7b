#!/usr/bin/env python3
"""Write the recipe's synthetic conversations: data/<condition>/{wav.scp, rttm, reco2num_spk, audio/}."""

import argparse
import logging

from wespk.diarization.simulation import ConversationSpec, write_conversation_sets
from wespk.utils.logs import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True, help="folder per speaker (corpus/mini/test)")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--num_conversations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--min_speakers", type=int, default=2)
    parser.add_argument("--max_speakers", type=int, default=5)
    args = parser.parse_args()
    setup_logging(0)
    spec = ConversationSpec(min_speakers=args.min_speakers, max_speakers=args.max_speakers)
    dirs = write_conversation_sets(args.corpus, args.out_dir, args.num_conversations, args.seed, spec)
    logging.getLogger("make_conversations").info("wrote %s", ", ".join(dirs.values()))


if __name__ == "__main__":
    main()
