#!/usr/bin/env bash
# launch/mpirun_multinode.sh's command line, checked with a fake mpirun that prints
# its arguments one per line: variables are forwarded only when set (an unset one
# made Open MPI warn on every launch), COCO_COMM_TIMEOUT reaches the remote ranks,
# options after "--" go to mpirun, and coco-train's options keep their order.
set -euo pipefail
script="$(cd "$(dirname "$0")/../.." && pwd)/launch/mpirun_multinode.sh"
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
printf '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n' > "$fake/mpirun"
chmod +x "$fake/mpirun"
fail() { echo "FAIL: $1"; echo "--- mpirun got:"; cat "$fake/out"; exit 1; }
launch() {
  env -u NCCL_SOCKET_IFNAME -u NCCL_IB_DISABLE -u NCCL_DEBUG -u OMP_NUM_THREADS -u COCO_COMM_TIMEOUT \
    PATH="$fake:$PATH" "$@" > "$fake/out"
}
line() { grep -qxF -- "$1" "$fake/out"; }

launch "$script" hosts 4 solver.prototxt --max-iter 10
line "-x" && fail "an unset variable was forwarded"
line "--max-iter" || fail "coco-train's options are missing"
tr '\n' ' ' < "$fake/out" | grep -qF -- "--config solver.prototxt --max-iter 10 " || fail "coco-train's options out of order"

launch env OMP_NUM_THREADS=2 COCO_COMM_TIMEOUT=20 "$script" hosts 4 solver.prototxt --seed 3 -- --mca btl_tcp_if_include eth0
line "OMP_NUM_THREADS" || fail "OMP_NUM_THREADS (set) was not forwarded"
line "COCO_COMM_TIMEOUT" || fail "COCO_COMM_TIMEOUT (set) was not forwarded"
line "NCCL_DEBUG" && fail "NCCL_DEBUG (unset) was forwarded"
flat=$(tr '\n' ' ' < "$fake/out")
case "$flat" in
  *"--mca btl_tcp_if_include eth0 "*coco-train" --config solver.prototxt --seed 3 ") ;;
  *) fail "mpirun options after -- must come before coco-train, its options after" ;;
esac
echo "mpirun_multinode.sh: forwards set variables only, passes mpirun options through"
