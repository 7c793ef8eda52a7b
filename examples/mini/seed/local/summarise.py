#!/usr/bin/env python3
"""The recipe's table: EER / minDCF(0.01) per condition, without and with enhancement, per backbone.

Usage: python local/summarise.py --out results.md exp/resnet exp/ge2e
(reads EXP/scores{,_seed}/metrics.json written by compute_metrics --json)
"""

import argparse
import json
import os
import sys

CONDITIONS = ["clean", "clean_vs_snr10", "snr10_vs_snr10", "clean_vs_snr5", "snr5_vs_snr5",
              "clean_vs_snr0", "snr0_vs_snr0"]


def load(path):
    """``{condition: (EER %, minDCF(0.01))}`` from a compute_metrics --json file."""
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    return {os.path.basename(r["path"]).rsplit(".score", 1)[0]: (float(r["eer_percent"]), float(r["min_dcf"]["0.01"]))
            for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("exp_dirs", nargs="+")
    args = parser.parse_args()
    lines = ["| backbone | trials | EER (%) | EER + SEED (%) | relative | minDCF(0.01) | minDCF + SEED |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for exp in args.exp_dirs:
        base, seed = load(f"{exp}/scores/metrics.json"), load(f"{exp}/scores_seed/metrics.json")
        for cond in CONDITIONS:
            if cond not in base or cond not in seed:
                continue
            (e0, d0), (e1, d1) = base[cond], seed[cond]
            lines.append(f"| {os.path.basename(exp)} | {cond} | {e0:.2f} | {e1:.2f} | "
                         f"{100 * (e1 - e0) / max(e0, 1e-9):+.1f}% | {d0:.4f} | {d1:.4f} |")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
