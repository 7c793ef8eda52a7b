#!/usr/bin/env python3
"""Pack a Kaldi data directory into tar shards and write the shard list.

Usage: make_shard_list.py [--num_utts_per_shard N] [--num_threads T]
                          [--prefix shards] [--shuffle] [--seed S]
                          DATA_DIR SHARD_DIR SHARD_LIST

Reads DATA_DIR/{wav.scp, utt2spk} and DATA_DIR/segments when present with
wespk's data-dir reader (see make_raw_list.py for the rules). The utterances,
in the data dir's order or shuffled with a fixed seed (--shuffle, --seed), are
cut into groups of N, and each group becomes SHARD_DIR/<prefix>_000000.tar,
<prefix>_000001.tar, ... written by wespk's shard writer
(wespk.data.shards.write_shards), holding for each utterance, in order, two
members:

  <key>.spk   the speaker id (UTF-8 text, no newline)
  <key>.wav   the audio

A plain .wav or .flac file is copied byte for byte, keeping its extension
(<key>.flac). Anything else (a command ending in "|", another format, or a
segment of a recording) is decoded and stored as 16-bit PCM WAV. Shards are
written by T processes in parallel, each to a temporary file renamed into
place when complete; the members have fixed metadata (mtime 0), so the same
input gives the same shards. Shards of an earlier run with the same prefix and
a higher number are removed. SHARD_LIST gets one shard path a line (SHARD_DIR
joined with the shard name, as SHARD_DIR was given), and is written
atomically. Option names accept dashes or underscores.
"""

import argparse
import os
import random
import re
import sys

try:
    import wespk  # noqa: F401
except ImportError:  # run from a checkout: the repository is the parent of tools/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from wespk.data.data_dir import read_data_dir  # noqa: E402
from wespk.data.shards import ShardWriteError, write_shards  # noqa: E402
from wespk.io.files import DataFileError, atomic_output  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="make_shard_list.py",
        usage="%(prog)s [--num_utts_per_shard N] [--num_threads T] [--prefix shards] "
              "[--shuffle] [--seed S] DATA_DIR SHARD_DIR SHARD_LIST",
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this script for the shard format.")
    parser.add_argument("--num_utts_per_shard", "--num-utts-per-shard", type=int, default=1000,
                        metavar="N", help="utterances per shard (default: 1000)")
    parser.add_argument("--num_threads", "--num-threads", type=int, default=1, metavar="T",
                        help="shards written in parallel (processes; default: 1)")
    parser.add_argument("--prefix", default="shards", help="shard file name prefix (default: shards)")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle the utterances before cutting them into shards")
    parser.add_argument("--seed", type=int, default=777, help="seed of --shuffle (default: 777)")
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("shard_dir", metavar="SHARD_DIR")
    parser.add_argument("shard_list", metavar="SHARD_LIST")
    args = parser.parse_args(argv)
    if args.num_utts_per_shard < 1:
        parser.error("--num_utts_per_shard must be >= 1")
    if args.num_threads < 1:
        parser.error("--num_threads must be >= 1")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.prefix):
        parser.error("--prefix may hold only letters, digits, '_', '.' and '-'")
    if not os.path.isdir(args.data_dir):
        parser.error(f"{args.data_dir} is not a directory")

    try:
        utterances = read_data_dir(args.data_dir, need_spk=True)
    except DataFileError as error:
        print(f"make_shard_list.py: error: {error}", file=sys.stderr)
        return 1
    if not utterances:
        print(f"make_shard_list.py: error: {args.data_dir} has no utterances", file=sys.stderr)
        return 1
    if args.shuffle:
        random.Random(args.seed).shuffle(utterances)

    try:
        paths = write_shards(utterances, args.shard_dir, args.num_utts_per_shard, args.prefix,
                             args.num_threads)
    except ShardWriteError as error:
        for line in str(error).splitlines():
            print(f"make_shard_list.py: error: {line}", file=sys.stderr)
        return 1

    written = {os.path.basename(path) for path in paths}
    stale = [name for name in os.listdir(args.shard_dir)
             if re.fullmatch(re.escape(args.prefix) + r"_\d{6}\.tar", name) and name not in written]
    for name in sorted(stale):
        os.unlink(os.path.join(args.shard_dir, name))
    if stale:
        print(f"make_shard_list.py: removed {len(stale)} shards of an earlier run from "
              f"{args.shard_dir}", file=sys.stderr)
    with atomic_output(args.shard_list) as stream:
        stream.writelines(path + "\n" for path in paths)
    print(f"make_shard_list.py: wrote {len(utterances)} utterances in {len(paths)} shards "
          f"to {args.shard_dir}, list {args.shard_list}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
