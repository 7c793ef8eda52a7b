#!/usr/bin/env python3
"""Write a raw data list (JSON lines) from a Kaldi data directory.

Two forms:

  make_raw_list.py DATA_DIR RAW_LIST
      reads DATA_DIR/{wav.scp, utt2spk} and, when present, DATA_DIR/segments
      and DATA_DIR/utt2dur;
  make_raw_list.py [--segments SEGMENTS] [--utt2dur UTT2DUR] WAV_SCP UTT2SPK RAW_LIST
      WeSpeaker's form, with the files named one by one.

One line per utterance of utt2spk, in utt2spk's (sorted) order:

  {"key": "spk1_utt1", "wav": "/path/utt1.wav", "spk": "spk1"}

"wav" is the wav.scp value: a path, or a command ending in "|". With segments
the line names the recording's "wav" and adds "start" and "end" in seconds;
with utt2dur it adds "duration" in seconds. An utterance of utt2spk without
audio (not in wav.scp, or not in segments) is an error naming the file and
line: run tools/fix_data_dir.sh first. Entries of wav.scp or segments that
utt2spk lacks are skipped, with their count on stderr. RAW_LIST is written
atomically (a temporary file in the same directory, then renamed).

The helpers here (read_kaldi_table, read_utterances, write_text_atomically)
are also used by make_shard_list.py and wav_to_duration.py.
"""

import argparse
import json
import os
import sys
import tempfile


class DataError(Exception):
    """A problem in an input file; the message names the file and line."""


def read_kaldi_table(path, min_fields=2, max_fields=None):
    """Read a Kaldi "key value..." file.

    Returns a dict key -> (fields, line_number, value), where fields is the
    whitespace split of the line (key included) and value the text after the
    key. Raises DataError naming the file and line for a missing file, an
    empty or malformed line, or a duplicate key.
    """
    table = {}
    try:
        with open(path, encoding="utf-8") as stream:
            for line_number, line in enumerate(stream, start=1):
                line = line.rstrip("\r\n")
                fields = line.split()
                if not fields:
                    raise DataError(f"{path}:{line_number}: empty line")
                if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
                    expected = (f"{min_fields}" if max_fields == min_fields
                                else f"at least {min_fields}" if max_fields is None
                                else f"{min_fields} to {max_fields}")
                    raise DataError(f"{path}:{line_number}: expected {expected} fields, "
                                    f"got {len(fields)}: '{line}'")
                key = fields[0]
                if key in table:
                    raise DataError(f"{path}:{line_number}: duplicate key '{key}' "
                                    f"(first on line {table[key][1]})")
                value = line.strip()[len(key):].strip()
                table[key] = (fields, line_number, value)
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text: {error}") from error
    return table


def parse_seconds(text, path, line_number, what):
    """Parse a non-negative number of seconds or raise DataError."""
    try:
        seconds = float(text)
    except ValueError:
        raise DataError(f"{path}:{line_number}: {what} is not a number: '{text}'") from None
    if not seconds >= 0.0 or seconds == float("inf"):
        raise DataError(f"{path}:{line_number}: {what} must be a finite number >= 0: '{text}'")
    return seconds


def read_utterances(wav_scp, utt2spk, segments=None, utt2dur=None):
    """Read the utterances of a data dir in utt2spk's key order.

    Returns (utterances, num_skipped): a list of dicts with "key", "wav",
    "spk", and "start"/"end" (seconds) when segments is given, "duration"
    when utt2dur is given; and the number of wav.scp (or segments) entries
    that utt2spk lacks.
    """
    wav_table = read_kaldi_table(wav_scp, min_fields=2)
    speaker_table = read_kaldi_table(utt2spk, min_fields=2, max_fields=2)
    segment_table = read_kaldi_table(segments, 4, 4) if segments else None
    duration_table = read_kaldi_table(utt2dur, 2, 2) if utt2dur else None

    for recording, (fields, line_number, value) in wav_table.items():
        if len(fields) > 2 and not value.endswith("|"):
            raise DataError(f"{wav_scp}:{line_number}: expected 'key path' or 'key command |': "
                            f"'{recording} {value}'")

    utterances = []
    for key in sorted(speaker_table, key=lambda k: k.encode("utf-8")):
        fields, line_number, _ = speaker_table[key]
        utterance = {"key": key}
        if segment_table is not None:
            if key not in segment_table:
                raise DataError(f"{utt2spk}:{line_number}: utterance '{key}' is not in {segments} "
                                f"(run tools/fix_data_dir.sh)")
            (_, recording, start, end), segment_line, _ = segment_table[key]
            if recording not in wav_table:
                raise DataError(f"{segments}:{segment_line}: recording '{recording}' is not in {wav_scp}")
            start_seconds = parse_seconds(start, segments, segment_line, "start")
            end_seconds = parse_seconds(end, segments, segment_line, "end")
            if end_seconds <= start_seconds:
                raise DataError(f"{segments}:{segment_line}: end {end} <= start {start}")
            utterance["wav"] = wav_table[recording][2]
            utterance["spk"] = fields[1]
            utterance["start"] = start_seconds
            utterance["end"] = end_seconds
        else:
            if key not in wav_table:
                raise DataError(f"{utt2spk}:{line_number}: utterance '{key}' is not in {wav_scp} "
                                f"(run tools/fix_data_dir.sh)")
            utterance["wav"] = wav_table[key][2]
            utterance["spk"] = fields[1]
        if duration_table is not None:
            if key not in duration_table:
                raise DataError(f"{utt2spk}:{line_number}: utterance '{key}' is not in {utt2dur}")
            (_, duration), duration_line, _ = duration_table[key]
            utterance["duration"] = parse_seconds(duration, utt2dur, duration_line, "duration")
        utterances.append(utterance)

    audio_keys = segment_table if segment_table is not None else wav_table
    num_skipped = sum(1 for key in audio_keys if key not in speaker_table)
    return utterances, num_skipped


def data_dir_files(data_dir):
    """The (wav_scp, utt2spk, segments, utt2dur) paths of a data dir; the
    optional ones are None when absent."""
    def optional(name):
        path = os.path.join(data_dir, name)
        return path if os.path.exists(path) else None
    return (os.path.join(data_dir, "wav.scp"), os.path.join(data_dir, "utt2spk"),
            optional("segments"), optional("utt2dur"))


def write_text_atomically(path, lines):
    """Write lines (each without newline) to path via a temporary file in the
    same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            for line in lines:
                stream.write(line + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


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
    elif len(args.paths) == 3:
        wav_scp, utt2spk, raw_list = args.paths
        segments, utt2dur = args.segments, args.utt2dur
    else:
        parser.error("expected DATA_DIR RAW_LIST or WAV_SCP UTT2SPK RAW_LIST")

    try:
        utterances, num_skipped = read_utterances(wav_scp, utt2spk, segments, utt2dur)
    except DataError as error:
        print(f"make_raw_list.py: error: {error}", file=sys.stderr)
        return 1
    if not utterances:
        print(f"make_raw_list.py: error: {utt2spk} has no utterances", file=sys.stderr)
        return 1
    write_text_atomically(raw_list, (json.dumps(u, ensure_ascii=False) for u in utterances))
    if num_skipped:
        print(f"make_raw_list.py: skipped {num_skipped} entries of "
              f"{segments or wav_scp} that are not in {utt2spk}", file=sys.stderr)
    print(f"make_raw_list.py: wrote {len(utterances)} utterances to {raw_list}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
