#!/usr/bin/env python3
"""One table of DER per model, condition and speaker-count mode from the der.json files of a run."""

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.add_argument("der_json", nargs="+", help="exp/<model>/<condition>_<mode>/der.json")
    args = parser.parse_args()
    lines = ["| model | condition | speakers | DER % | miss % | FA % | confusion % | JER % | count right |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in args.der_json:
        run_dir = os.path.dirname(path)
        model = os.path.basename(os.path.dirname(run_dir))
        condition, _, mode = os.path.basename(run_dir).partition("_")
        with open(path, encoding="utf-8") as f:
            scores = json.load(f)
        total = scores["recordings"]["ALL"]
        lines.append(f"| {model} | {condition} | {mode} | {100 * total['der']:.2f} | {100 * total['missed']:.2f} | "
                     f"{100 * total['false_alarm']:.2f} | {100 * total['confusion']:.2f} | "
                     f"{100 * total['jer']:.2f} | {100 * scores['speaker_count_accuracy']:.0f}% |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
