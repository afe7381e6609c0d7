#!/usr/bin/python3
"""Draws training curves from `coco-train --metrics FILE` JSON lines into a PNG.

  tools/plot_metrics.py run.jsonl [more.jsonl ...] [--label NAME ...] --out curves.png

Panels: the smoothed training loss, the learning rate and images/s (the display
lines {"iter","loss","lr","images_per_s"}), the test accuracy ({"iter",
"test_accuracy"}) and the validation accuracy of each verification set ({"iter",
"val","accuracy","std","xnorm"}). Several files are overlaid, one colour per run;
a panel with no data in any run says so. A line that is not JSON is an error
naming the file and line. Runs with Debian's python3-matplotlib (hence
/usr/bin/python3).
"""
import argparse
import json
import os
import sys


def read_run(path):
    """The series of one metrics file: name -> ([iter], [value])."""
    series = {}

    def add(name, it, value):
        xs, ys = series.setdefault(name, ([], []))
        xs.append(it)
        ys.append(value)

    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"plot_metrics: {path}: {e.strerror}")
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            it = r["iter"]
        except (ValueError, KeyError, TypeError):
            sys.exit(f"plot_metrics: {path}:{n}: not a metrics line (JSON with an \"iter\"): {line[:80]}")
        for key, name in (("loss", "loss"), ("lr", "lr"), ("images_per_s", "images/s"),
                          ("test_accuracy", "test accuracy")):
            if key in r:
                add(name, it, r[key])
        if "val" in r and "accuracy" in r:
            add("val " + str(r["val"]), it, r["accuracy"])
    return series


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="--metrics files of coco-train")
    ap.add_argument("--label", action="append", default=[], help="one per file (default: the file name)")
    ap.add_argument("--out", required=True, help="the PNG to write")
    ap.add_argument("--title", default="training")
    args = ap.parse_args()
    if args.label and len(args.label) != len(args.metrics):
        sys.exit("plot_metrics: give one --label per metrics file")
    runs = [(args.label[k] if args.label else os.path.basename(p), read_run(p)) for k, p in enumerate(args.metrics)]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val_sets = sorted({name for _, s in runs for name in s if name.startswith("val ")})
    panels = [("loss", "training loss"), ("lr", "learning rate"), ("images/s", "images/s"),
              ("test accuracy", "test accuracy"), ("val", "validation accuracy")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.3 * len(panels)), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for ax, (key, title) in zip(axes, panels):
        drawn = False
        for k, (label, s) in enumerate(runs):
            names = val_sets if key == "val" else [key]
            for j, name in enumerate(names):
                if name not in s:
                    continue
                xs, ys = s[name]
                text = label if key != "val" else f"{label}: {name[4:]}"
                ax.plot(xs, ys, color=colours[k % len(colours)], linestyle=styles[j % len(styles)],
                        marker="o" if len(xs) < 30 else None, markersize=3, label=text)
                drawn = True
        ax.set_ylabel(title)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data in these runs", ha="center", va="center", transform=ax.transAxes)
    axes[0].set_title(args.title)
    axes[-1].set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print("wrote " + args.out)


if __name__ == "__main__":
    main()
