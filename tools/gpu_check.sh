#!/bin/bash
# gpu_check.sh BIN_DIR [OUT_DIR [ONLY]]: the GPU checks of the CUDA backend in one bounded run.
#
# Meant for a GPU machine that has the CUDA libraries but maybe none of Debian's:
# build with CUDA on a Debian machine, copy the binaries there together with the
# shared libraries they need from Debian (OpenBLAS, protobuf, Open MPI, ...), then
# run this with BIN_DIR = the folder of those binaries (or a build folder's root
# where the binaries were built in place). Writes
# one log per step to OUT_DIR (default ./gpu-check) and a summary at the end:
#   1. every gpu-labelled test binary (test_cuda_*, test_nccl_*): parity of every layer
#   2. coco-bench BM_TrainStepCuda/128,/512 beside BM_TrainStep/128 (images/s)
#   3. coco-bench head --device cuda at (512,512,100000) and (1024,512,1000000),
#      head time against its three cuBLAS GEMMs measured in the same process; the
#      running maximum at 100000, class sampling (0.1) and BF16 at 1000000 beside them
#   4. coco-train --device cuda:0 on MNIST for 500 iterations, when data/mnist exists,
#      in FP32, BF16 and FP16 (--precision)
# Each step has its own time limit, so one hang does not eat the whole budget.
# All steps together may take most of an hour; ONLY, a bash regex over the step
# names below, runs a subset within a shorter lease, e.g.
#   gpu_check.sh build out 'test_cuda_precision|train_mnist_cuda'

set -u
bin=${1:?usage: gpu_check.sh BIN_DIR [OUT_DIR [ONLY]]}
out=${2:-gpu-check}
only=${3:-}
mkdir -p "$out"
find_bin() { for d in "$bin" "$bin/tests"; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done; }
summary="$out/summary.txt"
: > "$summary"
step() {  # step NAME LIMIT_S CMD...
  local name=$1 limit=$2; shift 2
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then return; fi
  local t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  printf '%-28s rc=%-3s %6.1f s\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)" | tee -a "$summary"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1
for t in test_cuda_elementwise test_cuda_losses test_cuda_cudnn test_cuda_coco_loss test_cuda_precision test_cuda_net \
    test_nccl_communicator; do
  b=$(find_bin $t) && step "$t" 240 "$b" --gtest_brief=1
done
b=$(find_bin coco-bench)
if [ -n "$b" ]; then
  step bench_train_step 180 "$b" --benchmark_filter='TrainStep' --benchmark_min_time=2s
  step bench_head_100k 120 "$b" head --device cuda:0 --M 512 --D 512 --K 100000
  step bench_head_1m 180 "$b" head --device cuda:0 --M 1024 --D 512 --K 1000000
  # The running maximum beside the fixed shift, and class sampling at a million classes.
  step bench_head_100k_running 120 "$b" head --device cuda:0 --M 512 --D 512 --K 100000 --softmax-shift RUNNING_MAX
  step bench_head_1m_sampled 120 "$b" head --device cuda:0 --M 1024 --D 512 --K 1000000 --sample-rate 0.1
  # The head on BF16 operands (cublasGemmEx) at a million classes, against its floor in BF16.
  step bench_head_1m_bf16 180 "$b" head --device cuda:0 --M 1024 --D 512 --K 1000000 --precision BF16
fi
b=$(find_bin coco-train)
if [ -n "$b" ] && [ -d data/mnist ]; then
  step train_mnist_cuda 240 "$b" --config configs/mnist_coco.prototxt --device cuda:0 --max-iter 500 \
    --snapshot-prefix "$out/snap/mnist"
  # The same run with BF16 and FP16 operands (solver precision): images/s beside FP32's.
  for p in BF16 FP16; do
    step train_mnist_cuda_$p 240 "$b" --config configs/mnist_coco.prototxt --device cuda:0 --max-iter 500 \
      --precision $p --snapshot-prefix "$out/snap/mnist_$p"
  done
fi
grep -h -E "PASSED|FAILED|SKIPPED" "$out"/test_*.log >> "$summary" 2>/dev/null
grep -h -E "TrainStep" "$out/bench_train_step.log" >> "$summary" 2>/dev/null
grep -h '"ratio"' "$out"/bench_head_*.log >> "$summary" 2>/dev/null
for l in "$out"/train_mnist_cuda*.log; do
  grep -h -E "images/s|final|overflowed" "$l" | tail -3 >> "$summary" 2>/dev/null
done
cat "$summary"
