#!/usr/bin/env python3
"""coco-export --onnx as a user checks it (ctest onnx.runtime_matches_coco).

  onnx_runtime.py BUILD_DIR

For IResNet-50 (configs/iresnet50_coco.prototxt), LeNet++ (configs/mnist_coco.prototxt),
the face test's net (tests/face/tiny_face.prototxt) and a net of every converted
layer (tests/onnx/zoo.prototxt): export the model (the ONNX checker runs inside
coco-export) with a batch of real inputs (--onnx-check), then run it in ONNX
Runtime (onnxruntime-node, tools/onnx_check.mjs) and compare with coco's forward:
relative error < 1e-4. The weights are the fillers' (the conversion is what is
tested; a trained checkpoint goes the same way). Skips (77) without ONNX Runtime.
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:]))
    return p.stdout


def write_mnist(folder, n):
    """n random 28x28 digits in MNIST's IDX format (t10k files: the test split)."""
    os.makedirs(folder)
    rng = random.Random(5)
    with open(os.path.join(folder, "t10k-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(rng.randrange(256) for _ in range(n * 784)))
    with open(os.path.join(folder, "t10k-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(rng.randrange(10) for _ in range(n)))


def main():
    build = os.path.abspath(sys.argv[1])
    if not os.path.exists(os.path.join(REPO, "tools/onnxruntime/node_modules/onnxruntime-node/package.json")):
        print("SKIP: ONNX Runtime is not installed: run tools/fetch_onnxruntime.sh (tools/setup.sh does)")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="coco_onnx_")
    write_mnist(os.path.join(work, "mnist"), 8)
    for side in (16, 32, 112):
        run([os.path.join(build, "tests/make_face_set"), "faces%d" % side, "2", "2", str(side), "0"], work)
        run([os.path.join(build, "coco-pack"), "--images", "faces%d/train" % side, "--out", "rec%d/train" % side], work)
    cases = [
        ("iresnet50", "configs/iresnet50_coco.prototxt", "rec:rec112/train", []),
        ("lenet", "configs/mnist_coco.prototxt", "mnist:mnist", []),
        ("tiny_face", "tests/face/tiny_face.prototxt", "rec:rec32/train", []),
        ("zoo", "tests/onnx/zoo.prototxt", "rec:rec16/train", ["--blob", "emb"]),
    ]
    for name, config, data, extra in cases:
        model = os.path.join(work, name + ".onnx")
        log = run([os.path.join(build, "coco-export"), "--config", os.path.join(REPO, config), "--data", data,
                   "--onnx", model, "--onnx-check", "4"] + extra, work)
        print(" ".join(l.split("info ", 1)[-1] for l in log.splitlines() if "checker passed" in l))
        print(run(["node", os.path.join(REPO, "tools/onnx_check.mjs"), model], work).strip())
    print("ONNX Runtime matches coco on every model")


if __name__ == "__main__":
    main()
