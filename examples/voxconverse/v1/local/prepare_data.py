#!/usr/bin/env python3
"""VoxConverse dev/test data dirs from the unpacked audio and annotations.

    python local/prepare_data.py --audio_dir RAW/dev --rttm_dir RAW/voxconverse-master/dev --out_dir data/dev

``--audio_dir`` holds the recordings as ``<id>.wav`` anywhere below it (the
dev archive unpacks to ``audio/``, the test archive to
``voxconverse_test_wav/``); ``--rttm_dir`` holds one ``<id>.rttm`` per
recording (the annotation repository's ``dev/`` or ``test/``). Writes
``OUT/wav.scp``, ``OUT/rttm`` (all references, checked by wespk's RTTM
reader) and ``OUT/reco2num_spk``. A recording without a reference, or a
reference without audio, is an error naming them (``--allow_missing``
keeps only the recordings that have both).
"""

import argparse
import os
import sys

from wespk.diarization.rttm import read_rttm, write_rttm
from wespk.io.files import write_kaldi_map


def find_files(root: str, extension: str) -> dict:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(extension):
                key = name[: -len(extension)]
                if key in found:
                    raise SystemExit(f"prepare_data: {key}{extension} is in both {found[key]} and {folder}")
                found[key] = os.path.join(os.path.abspath(folder), name)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio_dir", required=True)
    parser.add_argument("--rttm_dir", required=True)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--allow_missing", action="store_true")
    args = parser.parse_args()
    for d in (args.audio_dir, args.rttm_dir):
        if not os.path.isdir(d):
            print(f"prepare_data: {d}: no such directory", file=sys.stderr)
            return 1
    wavs, rttms = find_files(args.audio_dir, ".wav"), find_files(args.rttm_dir, ".rttm")
    no_ref, no_audio = sorted(set(wavs) - set(rttms)), sorted(set(rttms) - set(wavs))
    for what, keys in (("no reference RTTM in " + args.rttm_dir, no_ref), ("no audio in " + args.audio_dir, no_audio)):
        if keys:
            print(f"prepare_data: {len(keys)} recording(s) with {what}: {' '.join(keys[:5])}"
                  f"{' ...' if len(keys) > 5 else ''}", file=sys.stderr)
    if (no_ref or no_audio) and not args.allow_missing:
        return 1
    keys = sorted(set(wavs) & set(rttms))
    if not keys:
        print("prepare_data: no recording has both audio and a reference", file=sys.stderr)
        return 1
    turns, counts = [], []
    for key in keys:
        by_recording = read_rttm(rttms[key])
        if set(by_recording) - {key}:
            print(f"prepare_data: {rttms[key]}: turns of other recordings ({' '.join(sorted(set(by_recording) - {key}))})",
                  file=sys.stderr)
            return 1
        recording_turns = by_recording.get(key, [])
        turns.extend(recording_turns)
        counts.append((key, len({t.speaker for t in recording_turns})))
    os.makedirs(args.out_dir, exist_ok=True)
    write_kaldi_map(os.path.join(args.out_dir, "wav.scp"), [(k, wavs[k]) for k in keys])
    write_kaldi_map(os.path.join(args.out_dir, "reco2num_spk"), counts)
    write_rttm(os.path.join(args.out_dir, "rttm"), turns)
    print(f"prepare_data: {len(keys)} recordings, {len(turns)} reference turns -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
