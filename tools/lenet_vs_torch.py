#!/usr/bin/python3
"""coco's LeNet++ training step against PyTorch's, on this machine, in one run.

Both sides train the seed's LeNet++ (configs/mnist_coco.prototxt: six 5x5
convolutions with per-channel PReLU, three max pools, a 3-d ip1 and the COCO
head over 10 classes) on random 28x28 inputs at the same batch, with SGD
(momentum 0.9, weight decay 5e-4) and the same number of CPU threads. The
rounds alternate, coco then PyTorch, so that both see the same machine state;
each side's figure is its best round, and the line at the end is the ratio.

  tools/lenet_vs_torch.py [--build build] [--batch 128] [--threads 2]
                          [--rounds 3] [--seconds 5]

coco's side is `coco-bench --benchmark_filter=BM_TrainStep/BATCH` (forward,
backward and update per step, the inputs fixed). PyTorch's side is the loop
below, timed over whole steps after two warm-up steps, once with NCHW tensors and
once with channels_last ones (oneDNN's convolutions run faster on the latter
here); PyTorch's figure is the faster of the two. Needs Debian's
python3-torch (apt-get install python3-torch); exits 2 without it.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def coco_images_per_s(build, batch, threads, seconds):
    exe = os.path.join(build, "coco-bench")
    if not os.path.exists(exe):
        sys.exit(f"lenet_vs_torch: {exe} not found (build coco first, or pass --build)")
    cmd = [exe, "--threads", str(threads), f"--benchmark_filter=BM_TrainStep/{batch}/",
           f"--benchmark_min_time={seconds}", "--benchmark_format=json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if not runs:
        sys.exit(f"lenet_vs_torch: coco-bench ran no BM_TrainStep/{batch} (is the batch registered?)")
    return runs[0]["images_per_s"]


def torch_net(torch, alpha):
    nn = torch.nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 5, padding=2), nn.PReLU(cout, init=0.25),
                nn.Conv2d(cout, cout, 5, padding=2), nn.PReLU(cout, init=0.25)]

    class LeNetPP(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*block(1, 32), nn.MaxPool2d(2, 2), *block(32, 64), nn.MaxPool2d(2, 2),
                                      *block(64, 128), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
                                      nn.Linear(128 * 3 * 3, 3))
            self.centroids = nn.Parameter(torch.randn(10, 3))

        def forward(self, x, y):
            f = nn.functional.normalize(self.body(x), dim=1) * alpha
            c = nn.functional.normalize(self.centroids, dim=1)
            return nn.functional.cross_entropy(f @ c.t(), y)

    return LeNetPP()


def torch_images_per_s(torch, batch, seconds, state, channels_last):
    if "net" not in state:
        torch.manual_seed(7)
        net = torch_net(torch, 7.6)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(memory_format=layout)
        decay = [p for n, p in net.named_parameters() if n.endswith("weight")]
        rest = [p for n, p in net.named_parameters() if not n.endswith("weight")]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
                              lr=0.01, momentum=0.9)
        x = torch.rand(batch, 1, 28, 28) - 0.5
        x = x.contiguous(memory_format=layout)
        y = torch.arange(batch) % 10
        state.update(net=net, opt=opt, x=x, y=y)

    def step():
        state["opt"].zero_grad(set_to_none=False)
        state["net"](state["x"], state["y"]).backward()
        state["opt"].step()

    for _ in range(2):
        step()
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="coco's build folder (default: build)")
    ap.add_argument("--batch", type=int, default=128, help="batch per step (coco-bench registers 128)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads on both sides (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    ap.add_argument("--seconds", type=float, default=5.0, help="timed seconds per round (default 5)")
    a = ap.parse_args()
    for name, v in (("--batch", a.batch), ("--threads", a.threads), ("--rounds", a.rounds)):
        if v < 1:
            sys.exit(f"lenet_vs_torch: {name} must be at least 1, got {v}")
    if not a.seconds > 0 or math.isinf(a.seconds):
        sys.exit(f"lenet_vs_torch: --seconds must be a positive number, got {a.seconds}")
    try:
        import torch
    except ImportError:
        print("lenet_vs_torch: PyTorch is missing; install it with: apt-get install python3-torch", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(a.threads)
    nchw, nhwc, coco, peer = {}, {}, [], []
    for r in range(a.rounds):
        coco.append(coco_images_per_s(a.build, a.batch, a.threads, a.seconds))
        plain = torch_images_per_s(torch, a.batch, a.seconds, nchw, False)
        last = torch_images_per_s(torch, a.batch, a.seconds, nhwc, True)
        peer.append(max(plain, last))
        print(f"round {r + 1}: coco {coco[-1]:.1f} images/s, PyTorch {torch.__version__} {plain:.1f} (NCHW) "
              f"and {last:.1f} (channels_last) images/s", flush=True)
    print(f"LeNet++ batch {a.batch}, {a.threads} threads: coco {max(coco):.1f} images/s, "
          f"PyTorch {max(peer):.1f} images/s, ratio {max(coco) / max(peer):.2f}")


if __name__ == "__main__":
    main()
