#!/usr/bin/env python3
"""The face workflow as an insightface user runs it, end to end (ctest face.loop).

  face_loop.py BUILD_DIR MPIEXEC

1. make_face_set writes a small face-like set; coco-pack packs its training part;
   write_bin.py writes the held-out pairs as lfw.bin in Python 2's pickle layout and
   as agedb_30.bin with Python 3's protocol 4.
2. coco-train trains tests/face/tiny_face.prototxt for 30 iterations with validation
   on both sets every 10: the metrics hold {"iter","val","accuracy","std","xnorm"}
   lines, and <prefix>_best_<set>.ckpt/.json hold each set's best.
3. The same run on 2 ranks under MPIEXEC: the validation numbers equal one process's.
4. coco-export through bin: (with --flip-sum) and rec:; coco-eval with both
   protocols. Both are recomputed here in plain Python from embeddings.npy and the
   .bin's issame list, and insightface's accuracy equals the trainer's last
   validation of the same weights.
5. tools/plot_metrics.py draws both runs' curves into one PNG.
"""
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, cwd, env=None):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout[-4000:]))
    return p.stdout


def read_npy(path):
    """A little-endian float32 or int64 array from a .npy file (no numpy in CI)."""
    with open(path, "rb") as f:
        assert f.read(6) == b"\x93NUMPY", path
        major = f.read(2)[0]
        n = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = eval(f.read(n).decode("latin1"))  # a Python dict literal, by the format's definition
        shape, code = header["shape"], {"<f4": "f", "<i8": "q"}[header["descr"]]
        count = 1
        for s in shape:
            count *= s
        values = struct.unpack("<%d%s" % (count, code), f.read(count * struct.calcsize(code)))
    return shape, values


def rows_of(shape, values):
    d = shape[1]
    return [values[i * d:(i + 1) * d] for i in range(shape[0])]


def insightface_protocol(rows, issame, folds=10):
    """eval/verification.py: normalise, squared distance, thresholds 0:0.01:4, KFold."""
    def inverse_norm(r):
        s = 0.0
        for x in r:
            s += x * x
        return 1 / math.sqrt(s) if s > 0 else 1.0
    dist = []
    for i in range(len(issame)):
        a, b = rows[2 * i], rows[2 * i + 1]
        ia, ib = inverse_norm(a), inverse_norm(b)
        d = 0.0
        for x, y in zip(a, b):
            d += (x * ia - y * ib) ** 2
        dist.append(d)
    thresholds = [i * 0.01 for i in range(400)]
    n = len(dist)
    sizes = [n // folds + (1 if f < n % folds else 0) for f in range(folds)]
    acc, best_t, start = [], [], 0
    for size in sizes:
        test = range(start, start + size)
        train = [i for i in range(n) if i < start or i >= start + size]
        def accuracy(t, idx):
            idx = list(idx)
            return sum((dist[i] < t) == issame[i] for i in idx) / len(idx)
        train_acc = [accuracy(t, train) for t in thresholds]
        best = train_acc.index(max(train_acc))
        best_t.append(thresholds[best])
        acc.append(accuracy(thresholds[best], test))
        start += size
    mean = sum(acc) / folds
    return acc, best_t, mean, math.sqrt(sum((a - mean) ** 2 for a in acc) / folds)


def coco_protocol(rows, issame, folds=10):
    """tools/embed/eval.h: cosine, midpoint thresholds, same when score > t, std over F-1."""
    score = []
    for i in range(len(issame)):
        a, b = rows[2 * i], rows[2 * i + 1]
        xy = xx = yy = 0.0
        for x, y in zip(a, b):  # in order, as the C++ loop (sum() may compensate)
            xy, xx, yy = xy + x * y, xx + x * x, yy + y * y
        score.append(xy / math.sqrt((xx + 1e-12) * (yy + 1e-12)))
    n = len(score)
    acc = []
    for f in range(folds):
        lo, hi = f * n // folds, (f + 1) * n // folds
        train = [i for i in range(n) if i < lo or i >= hi]
        s = sorted(set(score[i] for i in train))
        candidates = [s[0] - 1] + [(s[k] + s[k + 1]) / 2 for k in range(len(s) - 1)] + [s[-1] + 1]
        def correct(t, idx):
            return sum((score[i] > t) == issame[i] for i in idx)
        best = max(candidates, key=lambda t: (correct(t, train), -t))
        acc.append(correct(best, range(lo, hi)) / (hi - lo))
    mean = sum(acc) / folds
    return acc, mean, math.sqrt(sum((a - mean) ** 2 for a in acc) / (folds - 1))


def val_lines(path):
    return [json.loads(l) for l in open(path) if '"val"' in l]


def main():
    build, mpiexec = os.path.abspath(sys.argv[1]), sys.argv[2]
    tool = lambda name: os.path.join(build, name)
    work = tempfile.mkdtemp(prefix="coco_face_loop_")
    config = os.path.join(HERE, "tiny_face.prototxt")
    # 1. the data
    run([tool("tests/make_face_set"), "raw", "24", "10", "32", "100"], work)
    run([tool("coco-pack"), "--images", "raw/train", "--out", "faces/train"], work)
    images = sorted(os.path.join("raw/val", f) for f in os.listdir(os.path.join(work, "raw/val")) if f.endswith(".jpg"))
    issame_text = open(os.path.join(work, "raw/val/issame.txt")).read().strip()
    issame = [s == "1" for s in issame_text.split(",")]
    for name, style in (("lfw", "py2"), ("agedb_30", "4")):
        run([sys.executable, os.path.join(HERE, "write_bin.py"), "faces/%s.bin" % name, style] + images +
            ["--issame", issame_text], work)
    with open(os.path.join(work, "faces/lfw.bin"), "rb") as f:
        assert pickle.load(f, encoding="bytes")[1] == issame  # as insightface reads it

    # 2. training with validation, one process
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run([tool("coco-train"), "--config", config, "--metrics", "one.jsonl", "--snapshot-prefix", "one/tiny",
         "--threads", "1"], work, env)
    one = val_lines(os.path.join(work, "one.jsonl"))
    assert [(v["iter"], v["val"]) for v in one] == [(i, s) for i in (0, 10, 20, 30) for s in ("lfw", "agedb_30")], one
    for v in one:
        assert set(v) == {"iter", "val", "accuracy", "std", "xnorm"}, v
        assert 0 <= v["accuracy"] <= 1 and v["xnorm"] > 0, v
    for s in ("lfw", "agedb_30"):
        best = json.load(open(os.path.join(work, "one/tiny_best_%s.json" % s)))
        want = max((v for v in one if v["val"] == s), key=lambda v: (v["accuracy"], -v["iter"]))
        assert (best["iter"], best["accuracy"]) == (want["iter"], want["accuracy"]), (best, want)
        assert os.path.getsize(os.path.join(work, "one/tiny_best_%s.ckpt" % s)) > 0
    print("validation: %s" % ", ".join("%s@%d %.3f (xnorm %.2f)" % (v["val"], v["iter"], v["accuracy"], v["xnorm"])
                                        for v in one))

    # 3. two ranks share the validation work and report one process's numbers
    mpi_env = dict(env, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1")
    run([mpiexec, "-np", "2", "--oversubscribe", tool("coco-train"), "--config", config, "--metrics", "two.jsonl",
         "--snapshot-prefix", "two/tiny", "--threads", "1"], work, mpi_env)
    two = val_lines(os.path.join(work, "two.jsonl"))
    assert [(v["iter"], v["val"]) for v in two] == [(v["iter"], v["val"]) for v in one], (one, two)
    # The starting weights are the same at any rank count, so their validation is too,
    # to the bit. Later weights are not: BatchNorm normalises each rank's own slice.
    start_one, start_two = [v for v in one if v["iter"] == 0], [v for v in two if v["iter"] == 0]
    assert start_one == start_two, (start_one, start_two)
    print("2 ranks: the validation of the starting weights equals one process's: %s" % start_two)

    # 4. export and evaluate with both protocols
    ckpt = "one/tiny_iter_30.ckpt"
    run([tool("coco-export"), "--config", config, "--weights", ckpt, "--data", "bin:faces/lfw.bin", "--flip-sum",
         "--batch-size", "25", "--out", "exp_bin", "--quiet"], work)
    shape, values = read_npy(os.path.join(work, "exp_bin/embeddings.npy"))
    assert shape == [200, 32] or tuple(shape) == (200, 32), shape
    rows = rows_of(shape, values)
    for protocol in ("insightface", "coco"):
        run([tool("coco-eval"), "--embeddings", "exp_bin", "--pairs", "bin:faces/lfw.bin", "--protocol", protocol,
             "--json", "eval_%s.json" % protocol], work)
    ev_if = json.load(open(os.path.join(work, "eval_insightface.json")))["verification"]
    ev_coco = json.load(open(os.path.join(work, "eval_coco.json")))["verification"]
    acc, thr, mean, std = insightface_protocol(rows, issame)
    assert ev_if["fold_accuracy"] == acc and ev_if["fold_threshold"] == thr, (ev_if, acc, thr)
    assert abs(ev_if["accuracy_mean"] - mean) < 1e-12 and abs(ev_if["accuracy_std"] - std) < 1e-12, (ev_if, mean, std)
    last = [v for v in one if v["val"] == "lfw" and v["iter"] == 30][0]
    assert abs(last["accuracy"] - mean) < 1e-12 and abs(last["std"] - std) < 1e-12, (last, mean, std)
    cacc, cmean, cstd = coco_protocol(rows, issame)
    assert ev_coco["fold_accuracy"] == cacc, (ev_coco["fold_accuracy"], cacc)
    assert abs(ev_coco["accuracy_mean"] - cmean) < 1e-12 and abs(ev_coco["accuracy_std"] - cstd) < 1e-12
    print("insightface protocol: %.4f +- %.4f (Python: %.4f +- %.4f; trainer at iter 30: %.4f)" %
          (ev_if["accuracy_mean"], ev_if["accuracy_std"], mean, std, last["accuracy"]))
    print("coco protocol: %.4f +- %.4f (Python: %.4f +- %.4f)" % (ev_coco["accuracy_mean"], ev_coco["accuracy_std"],
                                                                   cmean, cstd))
    run([tool("coco-export"), "--config", config, "--weights", ckpt, "--data", "rec:faces/train", "--normalize",
         "--out", "exp_rec", "--quiet"], work)
    shape, values = read_npy(os.path.join(work, "exp_rec/embeddings.npy"))
    _, labels = read_npy(os.path.join(work, "exp_rec/labels.npy"))
    assert tuple(shape) == (240, 32) and sorted(set(labels)) == list(range(24)), (shape, sorted(set(labels)))
    assert all(abs(math.sqrt(sum(x * x for x in r)) - 1) < 1e-5 for r in rows_of(shape, values))
    print("rec: export: 240 normalised embeddings of 24 identities")
    # The same images through list: (coco-pack's order: identities, then files, sorted by name).
    with open(os.path.join(work, "faces/list.txt"), "w") as f:
        for k, ident in enumerate(sorted(os.listdir(os.path.join(work, "raw/train")))):
            for img in sorted(os.listdir(os.path.join(work, "raw/train", ident))):
                f.write("../raw/train/%s/%s %d\n" % (ident, img, k))
    run([tool("coco-export"), "--config", config, "--weights", ckpt, "--data", "list:faces/list.txt", "--normalize",
         "--out", "exp_list", "--quiet"], work)
    assert read_npy(os.path.join(work, "exp_list/embeddings.npy")) == (shape, values)
    assert read_npy(os.path.join(work, "exp_list/labels.npy"))[1] == labels
    print("list: export of the same images: the same 240 rows")

    # 5. the curves of both runs in one picture (Debian's matplotlib: the script's own #!)
    run([os.path.join(HERE, "../../tools/plot_metrics.py"), "one.jsonl", "two.jsonl", "--label", "1 rank",
         "--label", "2 ranks", "--out", "curves.png"], work)
    with open(os.path.join(work, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print("curves.png drawn from both runs' metrics")
    print("face loop passed")


if __name__ == "__main__":
    main()
