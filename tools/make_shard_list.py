#!/usr/bin/env python3
"""Pack a Kaldi data directory into tar shards and write the shard list.

Usage: make_shard_list.py [--num_utts_per_shard N] [--num_threads T]
                          [--prefix shards] [--shuffle] [--seed S]
                          DATA_DIR SHARD_DIR SHARD_LIST

Reads DATA_DIR/{wav.scp, utt2spk} and DATA_DIR/segments when present (see
make_raw_list.py for the rules). The utterances, in sorted order or shuffled
with a fixed seed (--shuffle, --seed), are cut into groups of N, and each group
becomes SHARD_DIR/<prefix>_000000.tar, <prefix>_000001.tar, ... holding for
each utterance, in order, two members:

  <key>.spk   the speaker id (UTF-8 text, no newline)
  <key>.wav   the audio

A plain .wav or .flac file is copied byte for byte, keeping its extension
(<key>.flac). Anything else (a command ending in "|", another format, or a
segment of a recording) is decoded with soundfile and stored as 16-bit PCM
WAV. Shards are written by T processes in parallel, each to a temporary file
renamed into place when complete; the members have fixed metadata (mtime 0),
so the same input gives the same shards. Shards of an earlier run with the
same prefix and a higher number are removed. SHARD_LIST gets one shard path
a line (SHARD_DIR joined with the shard name, as SHARD_DIR was given), and is
written atomically. Option names accept dashes or underscores.
"""

import argparse
import io
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tarfile

import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_raw_list import DataError, data_dir_files, read_utterances, write_text_atomically  # noqa: E402

COPIED_EXTENSIONS = (".wav", ".flac")


def run_audio_command(command):
    """Run a wav.scp command (without its trailing "|") and return stdout."""
    result = subprocess.run(command, shell=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise DataError(f"command '{command}' failed with status {result.returncode}: {message}")
    return result.stdout


def encode_wav_pcm16(samples, sample_rate):
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class AudioReader:
    """Produce the (extension, bytes) of an utterance's tar member.

    Keeps the last decoded command output, so that consecutive segments of
    one piped recording run its command once.
    """

    def __init__(self):
        self._last_command = None
        self._last_decoded = None

    def _decode_command(self, command):
        if command != self._last_command:
            data = run_audio_command(command)
            self._last_decoded = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=False)
            self._last_command = command
        return self._last_decoded

    def member(self, utterance):
        wav = utterance["wav"]
        start = utterance.get("start")
        end = utterance.get("end")
        is_command = wav.endswith("|")
        if not is_command and start is None and os.path.splitext(wav)[1].lower() in COPIED_EXTENSIONS:
            with open(wav, "rb") as stream:
                return os.path.splitext(wav)[1].lower()[1:], stream.read()

        if is_command:
            samples, sample_rate = self._decode_command(wav[:-1].strip())
            if start is not None:
                first = int(round(start * sample_rate))
                last = min(int(round(end * sample_rate)), len(samples))
                samples = samples[first:last]
        elif start is not None:
            sample_rate = soundfile.info(wav).samplerate
            samples, sample_rate = soundfile.read(
                wav, start=int(round(start * sample_rate)), stop=int(round(end * sample_rate)),
                dtype="int16", always_2d=False)
        else:
            samples, sample_rate = soundfile.read(wav, dtype="int16", always_2d=False)
        if len(samples) == 0:
            raise DataError(f"no audio in {start}-{end} s of '{wav}'")
        return "wav", encode_wav_pcm16(samples, sample_rate)


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(task):
    """Write one shard atomically. task = (shard_path, utterances).
    Returns None, or an error message naming the utterance and its audio."""
    shard_path, utterances = task
    temporary = f"{shard_path}.tmp{os.getpid()}"
    reader = AudioReader()
    try:
        with tarfile.open(temporary, "w", format=tarfile.PAX_FORMAT) as tar:
            for utterance in utterances:
                key = utterance["key"]
                try:
                    extension, audio = reader.member(utterance)
                except (DataError, OSError, RuntimeError, ValueError) as error:
                    span = (f" [{utterance['start']}-{utterance['end']} s]"
                            if "start" in utterance else "")
                    return f"{shard_path}: utterance '{key}' ('{utterance['wav']}'{span}): {error}"
                add_member(tar, f"{key}.spk", utterance["spk"].encode("utf-8"))
                add_member(tar, f"{key}.{extension}", audio)
        os.replace(temporary, shard_path)
        return None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


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

    wav_scp, utt2spk, segments, _ = data_dir_files(args.data_dir)
    try:
        utterances, _ = read_utterances(wav_scp, utt2spk, segments)
    except DataError as error:
        print(f"make_shard_list.py: error: {error}", file=sys.stderr)
        return 1
    if not utterances:
        print(f"make_shard_list.py: error: {utt2spk} has no utterances", file=sys.stderr)
        return 1
    for utterance in utterances:
        if "/" in utterance["key"]:
            print(f"make_shard_list.py: error: {utt2spk}: key '{utterance['key']}' contains '/', "
                  "which cannot name a tar member", file=sys.stderr)
            return 1
    if args.shuffle:
        random.Random(args.seed).shuffle(utterances)

    os.makedirs(args.shard_dir, exist_ok=True)
    size = args.num_utts_per_shard
    tasks = [(os.path.join(args.shard_dir, f"{args.prefix}_{index:06d}.tar"),
              utterances[begin:begin + size])
             for index, begin in enumerate(range(0, len(utterances), size))]
    if args.num_threads == 1 or len(tasks) == 1:
        errors = [write_shard(task) for task in tasks]
    else:
        with multiprocessing.Pool(min(args.num_threads, len(tasks))) as pool:
            errors = pool.map(write_shard, tasks, chunksize=1)
    errors = [error for error in errors if error]
    if errors:
        for error in errors[:10]:
            print(f"make_shard_list.py: error: {error}", file=sys.stderr)
        if len(errors) > 10:
            print(f"make_shard_list.py: ... and {len(errors) - 10} more shards failed", file=sys.stderr)
        return 1

    written = {os.path.basename(path) for path, _ in tasks}
    stale = [name for name in os.listdir(args.shard_dir)
             if re.fullmatch(re.escape(args.prefix) + r"_\d{6}\.tar", name) and name not in written]
    for name in sorted(stale):
        os.unlink(os.path.join(args.shard_dir, name))
    if stale:
        print(f"make_shard_list.py: removed {len(stale)} shards of an earlier run from "
              f"{args.shard_dir}", file=sys.stderr)
    write_text_atomically(args.shard_list, (path for path, _ in tasks))
    print(f"make_shard_list.py: wrote {len(utterances)} utterances in {len(tasks)} shards "
          f"to {args.shard_dir}, list {args.shard_list}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
