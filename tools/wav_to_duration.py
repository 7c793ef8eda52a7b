#!/usr/bin/env python3
"""Write utt2dur ("utterance seconds" a line) for the audio of a wav.scp.

Usage: wav_to_duration.py [--nj N] [--segments SEGMENTS] WAV_SCP UTT2DUR

For a plain audio file the duration comes from its header (soundfile.info,
no decoding); a command ending in "|" is run and its output decoded. With
--segments, UTT2DUR lists the segments: each lasts end - start, with the end
clipped to the recording's duration (a segment starting at or after the end of
its recording is an error). --nj N reads N files at a time (processes). Lines
are sorted by key (LC_ALL=C order); durations are in seconds with up to six
decimals. Any error names the file and line; all of them are listed and
UTT2DUR is not written. UTT2DUR is written atomically.
"""

import argparse
import multiprocessing
import os
import sys

try:
    import wespk  # noqa: F401
except ImportError:  # run from a checkout: the repository is the parent of tools/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from wespk.data.data_dir import segment_problem  # noqa: E402
from wespk.io.audio import AudioError, audio_duration, ref_from_wav_scp_value  # noqa: E402
from wespk.io.files import DataFileError, atomic_output, read_kaldi_table  # noqa: E402

# A segment end may pass the end of its recording by this much before it is
# reported as clipped (rounding of times written with few decimals).
CLIP_TOLERANCE_SECONDS = 0.01


def measure(task):
    """task = (key, value, where); returns (key, seconds, error_message)."""
    key, value, where = task
    try:
        seconds = audio_duration(ref_from_wav_scp_value(value))
        if seconds <= 0:
            raise AudioError("no audio frames")
        return key, seconds, None
    except (AudioError, OSError, ValueError) as error:
        return key, None, f"{where}: cannot read the audio of '{key}' ('{value}'): {error}"


def format_seconds(seconds):
    text = f"{seconds:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="wav_to_duration.py",
        usage="%(prog)s [--nj N] [--segments SEGMENTS] WAV_SCP UTT2DUR",
        description=__doc__.split("\n\n")[0],
        epilog="See the top of this script for details.")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes (default: 1)")
    parser.add_argument("--segments", help="segments file; UTT2DUR then lists the segments")
    parser.add_argument("wav_scp", metavar="WAV_SCP")
    parser.add_argument("utt2dur", metavar="UTT2DUR")
    args = parser.parse_args(argv)
    if args.nj < 1:
        parser.error("--nj must be >= 1")

    try:
        recordings = read_kaldi_table(args.wav_scp, 2, None, "recording path | recording command |")
        segments = read_kaldi_table(args.segments, 4, 4, "utterance recording start end") if args.segments else None
        if segments is not None:
            used = set()
            for key, ((_, recording, start, end), line, _) in segments.items():
                if recording not in recordings:
                    raise DataFileError(args.segments, line, f"recording '{recording}' is not in {args.wav_scp}")
                problem = segment_problem(start, end)
                if problem:
                    raise DataFileError(args.segments, line, problem)
                used.add(recording)
            recordings = {key: entry for key, entry in recordings.items() if key in used}
    except DataFileError as error:
        print(f"wav_to_duration.py: error: {error}", file=sys.stderr)
        return 1

    tasks = [(key, value, f"{args.wav_scp}:{line}") for key, (_, line, value) in recordings.items()]
    if args.nj == 1 or len(tasks) < 2:
        results = [measure(task) for task in tasks]
    else:
        with multiprocessing.Pool(min(args.nj, len(tasks))) as pool:
            results = pool.map(measure, tasks, chunksize=max(1, len(tasks) // (4 * args.nj)))
    errors = [error for _, _, error in results if error]
    durations = {key: seconds for key, seconds, error in results if not error}

    if segments is not None and not errors:
        recording_durations = durations
        durations = {}
        num_clipped = 0
        for key, ((_, recording, start, end), line, _) in segments.items():
            start, end = float(start), float(end)
            total = recording_durations[recording]
            if start >= total:
                errors.append(f"{args.segments}:{line}: segment '{key}' starts at {start} s, "
                              f"after the end of recording '{recording}' ({total} s)")
                continue
            if end > total + CLIP_TOLERANCE_SECONDS:
                num_clipped += 1
            durations[key] = min(end, total) - start
        if num_clipped:
            print(f"wav_to_duration.py: warning: {num_clipped} segments end after their recording; "
                  "clipped to the recording's duration", file=sys.stderr)

    if errors:
        for error in errors[:20]:
            print(f"wav_to_duration.py: error: {error}", file=sys.stderr)
        if len(errors) > 20:
            print(f"wav_to_duration.py: ... and {len(errors) - 20} more errors", file=sys.stderr)
        print(f"wav_to_duration.py: {args.utt2dur} not written", file=sys.stderr)
        return 1

    keys = sorted(durations, key=lambda k: k.encode("utf-8"))
    with atomic_output(args.utt2dur) as stream:
        stream.writelines(f"{key} {format_seconds(durations[key])}\n" for key in keys)
    print(f"wav_to_duration.py: wrote {len(keys)} durations to {args.utt2dur}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
