#!/usr/bin/env bash
# launch/coco_train.sbatch's srun command line, checked with a fake srun that prints
# its arguments one per line and the OMP_NUM_THREADS it got (Slurm itself is not
# started: slurmctld and slurmd need a munge key, a config and root-owned spool
# folders, more than a unit test should set up on a user's machine).
set -euo pipefail
script="$(cd "$(dirname "$0")/../.." && pwd)/launch/coco_train.sbatch"
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
printf '#!/bin/sh\necho "OMP_NUM_THREADS=$OMP_NUM_THREADS"\nfor a in "$@"; do echo "$a"; done\n' > "$fake/srun"
chmod +x "$fake/srun"
fail() { echo "FAIL: $1"; echo "--- srun got:"; cat "$fake/out"; exit 1; }
line() { grep -qxF -- "$1" "$fake/out"; }
launch() {
  env -u OMP_NUM_THREADS -u COCO_DEVICE -u COCO_COMM_TIMEOUT -u COCO_SRUN_MPI -u COCO_TRAIN -u COCO_HOME \
    PATH="$fake:$PATH" "$@" > "$fake/out"
}

launch env SLURM_SUBMIT_DIR=/clone SLURM_CPUS_PER_TASK=6 bash "$script" solver.prototxt --max-iter 10
line "OMP_NUM_THREADS=6" || fail "OMP_NUM_THREADS must come from --cpus-per-task"
line "--kill-on-bad-exit=1" || fail "a failed rank must end the whole step"
line "--mpi=pmix" || fail "srun needs the pmix plugin for Open MPI"
flat=$(tr '\n' ' ' < "$fake/out")
case "$flat" in
  *"/clone/build/coco-train --config solver.prototxt --device cuda --comm-timeout 600 --max-iter 10 "*) ;;
  *) fail "coco-train, its settings and the user's options out of order" ;;
esac

launch env SLURM_SUBMIT_DIR=/clone OMP_NUM_THREADS=2 COCO_DEVICE=cpu COCO_COMM_TIMEOUT=20 COCO_TRAIN=/opt/coco-train \
  bash "$script" solver.prototxt
line "OMP_NUM_THREADS=2" || fail "a set OMP_NUM_THREADS must win"
flat=$(tr '\n' ' ' < "$fake/out")
case "$flat" in
  *"/opt/coco-train --config solver.prototxt --device cpu --comm-timeout 20 "*) ;;
  *) fail "COCO_TRAIN, COCO_DEVICE and COCO_COMM_TIMEOUT must reach the command line" ;;
esac
if launch bash "$script" 2>/dev/null; then fail "no config must be an error"; fi
echo "coco_train.sbatch: one srun step, threads from Slurm, settings from the environment"
