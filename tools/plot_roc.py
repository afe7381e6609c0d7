#!/usr/bin/python3
"""Plots ROC curves written by `coco-eval --roc-csv FILE` into a PNG.

  tools/plot_roc.py roc.csv [more.csv ...] [--label NAME ...] --out roc.png

Each CSV has the header threshold,far,tar. The x axis (FAR) is logarithmic, so
the point FAR = 0 is left out; the lowest FAR shown is 1 / negative pairs.
Runs with Debian's python3-matplotlib (hence /usr/bin/python3).
"""
import argparse
import csv
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--label", action="append", default=[], help="one per CSV (default: the file name)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="ROC")
    args = ap.parse_args()
    if args.label and len(args.label) != len(args.csv):
        sys.exit("plot_roc: give one --label per CSV file")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, path in enumerate(args.csv):
        far, tar = [], []
        with open(path) as f:
            rows = csv.DictReader(f)
            if rows.fieldnames != ["threshold", "far", "tar"]:
                sys.exit(f"plot_roc: {path}: expected the header threshold,far,tar, got {rows.fieldnames}")
            for line, r in enumerate(rows, start=2):
                try:
                    x, y = float(r["far"]), float(r["tar"])
                except (TypeError, ValueError):
                    sys.exit(f"plot_roc: {path}:{line}: not numbers: {r}")
                if x > 0:
                    far.append(x)
                    tar.append(y)
        label = args.label[k] if args.label else os.path.basename(path)
        ax.step(far, tar, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(args.title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print("wrote " + args.out)


if __name__ == "__main__":
    main()
