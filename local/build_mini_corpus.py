#!/usr/bin/env python3
"""Build the bundled mini corpus (corpus/mini) from the dev corpus.

Maintainer tool: re-encodes every utterance of the dev corpus as 16-bit FLAC
under ``corpus/mini/{train,test}/<speaker>/<utt>.flac``, with speakers split
into disjoint train and test sets (the test speakers are listed below), and
writes ``corpus/mini/manifest.tsv`` (the dev corpus manifest, with the new
relative paths and the split). Trials are made later by the recipe from the
test speakers with a fixed seed (``python -m wespk.bin.make_trials``).

Usage: local/build_mini_corpus.py DEV_CORPUS_DIR OUT_DIR
"""

import argparse
import csv
import os
import sys

import soundfile

# Held-out speakers: a mix of every source, favouring speakers with several
# utterances (so there are target trials across sessions). AISHELL has a
# single speaker and stays in training.
TEST_SPEAKERS = {
    "vctk-p227", "vctk-p228",
    "arctic-slt",
    "cvfa-00243bfe65", "cvfa-22dbd64c16", "cvfa-2a26c539df", "cvfa-39655885fa",
    "cvtw-0ca034bbac", "cvtw-202a22ab72", "cvtw-214790e960",
}
NUM_TEST_LIBRI = 10  # the first N LibriSpeech readers in sorted order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dev_corpus")
    parser.add_argument("out_dir")
    args = parser.parse_args()

    manifest = os.path.join(args.dev_corpus, "manifest.tsv")
    with open(manifest, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    libri = sorted({r["speaker_id"] for r in rows if r["speaker_id"].startswith("libri-")})
    test = TEST_SPEAKERS | set(libri[:NUM_TEST_LIBRI])

    out_rows = []
    for row in rows:
        split = "test" if row["speaker_id"] in test else "train"
        rel = os.path.join(split, row["speaker_id"], row["utt_id"] + ".flac")
        dst = os.path.join(args.out_dir, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        audio, sr = soundfile.read(os.path.join(args.dev_corpus, row["relative_path"]), dtype="int16")
        if sr != 16000:
            print(f"{row['relative_path']}: expected 16 kHz, got {sr}", file=sys.stderr)
            return 1
        soundfile.write(dst, audio, sr, format="FLAC", subtype="PCM_16")
        out_rows.append({"utt_id": row["utt_id"], "speaker_id": row["speaker_id"], "split": split,
                         "relative_path": rel, "duration_s": row["duration_s"], "source": row["source"]})

    out_rows.sort(key=lambda r: r["utt_id"].encode())
    with open(os.path.join(args.out_dir, "manifest.tsv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(out_rows[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(out_rows)
    n_test = sum(r["split"] == "test" for r in out_rows)
    print(f"{len(out_rows)} utterances ({n_test} test) from {len({r['speaker_id'] for r in out_rows})} "
          f"speakers ({len(test)} test) written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
