#!/usr/bin/python3
"""The seed's Figure 3: 3-d ip1 features of the MNIST test set under COCO, softmax
and center loss, as three 3-D scatter plots side by side, one colour per digit.

  tools/figure3.py --mode seed   the seed's three released caffemodels (--seed-dir, or the
                                 environment's COCO_SEED_DIR: a checkout of sciencefans/coco_loss)
  tools/figure3.py --mode train  trains configs/mnist_{coco,softmax,center}.prototxt
                                 with coco-train, then exports their ip1

Each model's ip1 goes through build/coco-export (default blob: ip1) into
WORK/NAME/embeddings.npy, and the figure is drawn from those files. The accuracies
in the titles come from coco-train's final test pass (train mode) or from
coco-export --blob ip2 + coco-eval --classify (seed mode). A JSON summary of
them goes to WORK/summary.json and beside the PNG (same name, .json).

Runs with Debian's python3 and python3-matplotlib (tools/setup.sh installs it);
the shebang is /usr/bin/python3 on purpose, so a pyenv/venv python3 on PATH
without matplotlib is not picked up. No numpy needed: .npy files are read here.
"""
import argparse
import ast
import json
import os
import re
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {
    "seed": [
        ("coco_loss", "train_prototxts/net_cocoloss.prototxt", "coco_loss/10epoches.caffemodel"),
        ("softmax_loss", "train_prototxts/net_softmax.prototxt", "softmax_loss/10epoches.caffemodel"),
        ("center+softmax_loss", "train_prototxts/net_centerloss.prototxt",
         "center+softmax_loss/10epoches.caffemodel"),
    ],
    "train": [
        ("coco_loss", "configs/mnist_coco.prototxt", None),
        ("softmax_loss", "configs/mnist_softmax.prototxt", None),
        ("center+softmax_loss", "configs/mnist_center.prototxt", None),
    ],
}


def read_npy(path):
    """A .npy file of '<f4' or '<i8' (C order) -> (shape, flat list)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        sys.exit(f"figure3: {path}: not a .npy file")
    hlen = struct.unpack("<H", data[8:10])[0]
    header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
    if header["fortran_order"] or header["descr"] not in ("<f4", "<i8"):
        sys.exit(f"figure3: {path}: unsupported array {header}")
    shape = header["shape"]
    n = 1
    for d in shape:
        n *= d
    fmt = "<%d%s" % (n, "f" if header["descr"] == "<f4" else "q")
    return shape, list(struct.unpack_from(fmt, data, 10 + hlen))


def run(cmd, log):
    print("+ " + " ".join(cmd), flush=True)
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if p.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f"figure3: command failed ({p.returncode}); log {log}:\n{tail}")
    with open(log) as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["seed", "train"], required=True)
    ap.add_argument("--build", default="build", help="folder with coco-train, coco-export, coco-eval")
    ap.add_argument("--data", default="data/mnist", help="MNIST folder (tools/fetch_mnist.sh)")
    ap.add_argument("--work", default=None, help="exports, checkpoints and logs (default figure3_MODE/)")
    ap.add_argument("--out", default=None, help="PNG path (default docs/figure3_MODE.png)")
    ap.add_argument("--max-iter", type=int, default=None, help="train mode: iterations per model "
                    "(default: the configs' max_iter, 2000)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot-only", action="store_true", help="redraw from existing exports in --work")
    ap.add_argument("--seed-dir", default=os.environ.get("COCO_SEED_DIR"),
                    help="seed mode: a checkout of sciencefans/coco_loss (default: $COCO_SEED_DIR)")
    args = ap.parse_args()
    seed_models = None
    if args.mode == "seed" and not args.plot_only:
        if not args.seed_dir:
            sys.exit("figure3: --mode seed needs the seed's files: --seed-dir DIR or COCO_SEED_DIR "
                     "(a checkout of sciencefans/coco_loss)")
        seed_models = os.path.join(os.path.abspath(args.seed_dir), "model")
        if not os.path.isdir(seed_models):
            sys.exit(f"figure3: {seed_models} is not a folder: --seed-dir must be a checkout of sciencefans/coco_loss")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    work = os.path.abspath(args.work or os.path.join(ROOT, "figure3_" + args.mode))
    out = os.path.abspath(args.out or os.path.join(ROOT, "docs", "figure3_%s.png" % args.mode))
    os.makedirs(work, exist_ok=True)
    build = os.path.abspath(args.build)
    data = os.path.abspath(args.data)
    summary = {"mode": args.mode, "models": {}}
    if args.max_iter is not None:
        summary["max_iter"] = args.max_iter

    for name, net, weights in MODELS[args.mode]:
        tag = name.replace("+", "_")
        emb_dir = os.path.join(work, tag)
        info = summary["models"].setdefault(name, {})
        if args.plot_only:
            prev = os.path.join(work, "summary.json")
            if os.path.exists(prev):
                with open(prev) as f:
                    info.update(json.load(f)["models"].get(name, {}))
            continue
        t0 = time.time()
        if args.mode == "train":
            config = os.path.join(ROOT, net)
            prefix = os.path.join(work, tag)
            cmd = [os.path.join(build, "coco-train"), "--config", config, "--data-root", data,
                   "--snapshot-prefix", prefix, "--threads", str(args.threads)]
            if args.max_iter is not None:
                cmd += ["--max-iter", str(args.max_iter)]
            log = run(cmd, os.path.join(work, tag + "_train.log"))
            m = re.findall(r"final: test loss ([0-9.eE+-]+), test accuracy ([0-9.]+)", log)
            ckpts = re.findall(r"(\S+_iter_\d+\.ckpt)", log)
            if not m or not ckpts:
                sys.exit(f"figure3: no final test accuracy or checkpoint in {work}/{tag}_train.log")
            info["test_accuracy"] = float(m[-1][1])
            info["source"] = "coco-train final test pass"
            weights_path = ckpts[-1]
            info["train_seconds"] = round(time.time() - t0, 1)
        else:
            config = os.path.join(seed_models, net)
            weights_path = os.path.join(seed_models, weights)
            logits_dir = os.path.join(work, tag + "_ip2")
            run([os.path.join(build, "coco-export"), "--config", config, "--weights", weights_path, "--data",
                 "mnist:" + data, "--blob", "ip2", "--out", logits_dir, "--batch-size", "500",
                 "--threads", str(args.threads), "--quiet"], os.path.join(work, tag + "_export_ip2.log"))
            ev = run([os.path.join(build, "coco-eval"), "--embeddings", logits_dir, "--classify",
                      "--json", os.path.join(work, tag + "_classify.json")], os.path.join(work, tag + "_classify.log"))
            with open(os.path.join(work, tag + "_classify.json")) as f:
                info["test_accuracy"] = json.load(f)["classification"]["top1"]
            info["source"] = "coco-export --blob ip2 + coco-eval --classify"
        # Paths as a reader can use them: the repository's own files relative to its
        # root, the seed's relative to the seed checkout ($COCO_SEED_DIR/...).
        base, shown = (seed_models, "$COCO_SEED_DIR/model") if seed_models else (ROOT, "")
        info["config"] = os.path.join(shown, os.path.relpath(config, base)) if shown else os.path.relpath(config, base)
        info["weights"] = (os.path.join(shown, os.path.relpath(weights_path, base)) if shown
                           else os.path.relpath(weights_path, ROOT))
        run([os.path.join(build, "coco-export"), "--config", config, "--weights", weights_path, "--data",
             "mnist:" + data, "--out", emb_dir, "--batch-size", "500", "--threads", str(args.threads), "--quiet"],
            os.path.join(work, tag + "_export.log"))
        print(f"{name}: test accuracy {info['test_accuracy']:.4f}", flush=True)

    if not args.plot_only:
        with open(os.path.join(work, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)

    # Three 3-D scatter plots, one colour per digit (hsv hues, as in the seed's sample).
    fig = plt.figure(figsize=(18, 5.6))
    cmap = plt.get_cmap("hsv")
    for k, (name, _, _) in enumerate(MODELS[args.mode]):
        tag = name.replace("+", "_")
        shape, emb = read_npy(os.path.join(work, tag, "embeddings.npy"))
        _, labels = read_npy(os.path.join(work, tag, "labels.npy"))
        if len(shape) != 2 or shape[1] != 3:
            sys.exit(f"figure3: {work}/{tag}: expected 3-d embeddings, got shape {shape}")
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        for digit in range(10):
            rows = [i for i, l in enumerate(labels) if l == digit]
            ax.scatter([emb[3 * i] for i in rows], [emb[3 * i + 1] for i in rows], [emb[3 * i + 2] for i in rows],
                       s=2, color=cmap(digit / 10.0), label=str(digit), depthshade=False)
        acc = summary["models"].get(name, {}).get("test_accuracy")
        ax.set_title(name + ("" if acc is None else "  (test acc %.2f%%)" % (100 * acc)))
        ax.view_init(elev=25, azim=-70)
        if k == 2:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=4, fontsize=9)
    what = ("the seed's released caffemodels" if args.mode == "seed" else
            "our configs trained with coco-train" +
            ("" if args.max_iter is None else " (%d iterations)" % args.max_iter))
    fig.suptitle("MNIST test set, 3-d ip1 features: " + what)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=90)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(summary, f, indent=2)
    print("wrote " + out)


if __name__ == "__main__":
    main()
