// coco-bench head (see head_bench.cpp).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "engine/precision.h"
#include "engine/tensor.h"

namespace coco {

struct HeadBenchOptions {
  // Cross-framework check: inputs from .npy files, outputs to dump_dir.
  std::string features, centroids, labels, dump_dir;
  // Timing: shapes (M, D, K); the defaults are the two shapes.
  std::vector<std::array<int64_t, 3>> shapes;
  float scale = 0;  // 0: auto (target probability 0.99) when timing; required with --features
  std::string margin_type = "NONE";
  float margin = 0;
  std::string logit_type = "COSINE";
  std::string softmax_shift = "AUTO";  // AUTO (the fixed shift where it holds) or RUNNING_MAX
  float sample_rate = 1;               // class sampling (< 1: the train-phase head samples)
  int repeats = 3;
  int64_t chunk = 8192;
  float cache_mb = 256;
  // Where the head runs: the CPU, or a GPU (the current CUDA device, set by the caller).
  Device device = Device::kCPU;
  // The head's GEMMs on operands rounded to this format (solver precision); the
  // floor's GEMMs alike (cpu_gemm_at / cuda_gemm_at, the rounding included).
  Precision precision = Precision::kFP32;
};

// Returns the process exit code. `comm` carries the host-side reductions of the
// timings; the head's own collectives go through `head_comm` (an NCCL
// communicator for a multi-rank CUDA run; null: `comm`).
int run_head_bench(Communicator& comm, const HeadBenchOptions& opt, Communicator* head_comm = nullptr);

}  // namespace coco
