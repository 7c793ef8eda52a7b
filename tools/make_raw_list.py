#!/usr/bin/env python3
"""Write a raw data list (JSON lines) from a Kaldi data directory.

Two forms:

  make_raw_list.py DATA_DIR RAW_LIST
      reads DATA_DIR/{wav.scp, utt2spk} and, when present, DATA_DIR/segments
      and DATA_DIR/utt2dur;
  make_raw_list.py [--segments SEGMENTS] [--utt2dur UTT2DUR] WAV_SCP UTT2SPK RAW_LIST
      WeSpeaker's form, with the files named one by one.

One line per utterance, in the order of wav.scp (or segments):

  {"key": "spk1_utt1", "wav": "/path/utt1.wav", "spk": "spk1"}

"wav" is the wav.scp value: a path, or a command ending in "|". With segments
the line names the recording's "wav" and adds "start" and "end" in seconds;
an utterance listed in utt2dur gets "duration" in seconds. The files are read
by wespk's data-dir reader (wespk.data.data_dir), with the rules of
tools/validate_data_dir.sh: segments have 0 <= start < end, every utterance
has a speaker and every utt2spk line has audio. A problem is an error naming
the file and line (run tools/fix_data_dir.sh first). RAW_LIST is written
atomically (a temporary file in the same directory, then renamed).
"""

import argparse
import json
import os
import sys

try:
    import wespk  # noqa: F401
except ImportError:  # run from a checkout: the repository is the parent of tools/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from wespk.data.data_dir import data_dir_files, read_kaldi_utterances  # noqa: E402
from wespk.io.files import DataFileError, atomic_output  # noqa: E402


def raw_list_entry(utterance, with_duration):
    """The JSON object of one utterance (see the module doc)."""
    entry = {"key": utterance.key, "wav": utterance.wav, "spk": utterance.speaker}
    if utterance.start is not None:
        entry["start"] = utterance.start
        entry["end"] = utterance.end
    if with_duration and utterance.duration is not None:
        entry["duration"] = utterance.duration
    return entry


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="make_raw_list.py",
        usage="%(prog)s DATA_DIR RAW_LIST\n"
              "       %(prog)s [--segments SEGMENTS] [--utt2dur UTT2DUR] WAV_SCP UTT2SPK RAW_LIST",
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this script for the format.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="DATA_DIR RAW_LIST, or WAV_SCP UTT2SPK RAW_LIST")
    parser.add_argument("--segments", help="segments file (WAV_SCP form only)")
    parser.add_argument("--utt2dur", help="utt2dur file (WAV_SCP form only)")
    args = parser.parse_args(argv)

    if len(args.paths) == 2:
        data_dir, raw_list = args.paths
        if not os.path.isdir(data_dir):
            parser.error(f"{data_dir} is not a directory (give DATA_DIR RAW_LIST "
                         "or WAV_SCP UTT2SPK RAW_LIST)")
        if args.segments or args.utt2dur:
            parser.error("--segments and --utt2dur go with the WAV_SCP form; "
                         "DATA_DIR/segments and DATA_DIR/utt2dur are used when present")
        wav_scp, utt2spk, segments, utt2dur = data_dir_files(data_dir)
        base_dir = data_dir
    elif len(args.paths) == 3:
        wav_scp, utt2spk, raw_list = args.paths
        segments, utt2dur = args.segments, args.utt2dur
        base_dir = os.path.dirname(wav_scp) or "."
    else:
        parser.error("expected DATA_DIR RAW_LIST or WAV_SCP UTT2SPK RAW_LIST")

    try:
        utterances = read_kaldi_utterances(wav_scp, utt2spk, segments, utt2dur, need_spk=True,
                                           base_dir=base_dir)
    except DataFileError as error:
        print(f"make_raw_list.py: error: {error}", file=sys.stderr)
        return 1
    if not utterances:
        print(f"make_raw_list.py: error: {segments or wav_scp} has no utterances", file=sys.stderr)
        return 1
    with atomic_output(raw_list) as stream:
        for utterance in utterances:
            stream.write(json.dumps(raw_list_entry(utterance, utt2dur is not None), ensure_ascii=False) + "\n")
    print(f"make_raw_list.py: wrote {len(utterances)} utterances to {raw_list}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
