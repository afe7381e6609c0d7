// CPU-CUDA parity for one layer: the CPU path is the oracle.
//
// The layer is built twice from the same LayerParameter. The CPU copy is set up on
// CPU blobs filled from a fixed seed, runs forward, then backward with top diffs
// drawn from the same seed. The CUDA copy gets the CPU copy's initial parameters
// (so fillers cannot differ), the same bottoms and top diffs on the device, and runs
// the same passes. Tops, bottom diffs and parameter diffs (and parameter data, for
// layers that update state in forward: BatchNorm's running statistics, CenterLoss's
// centres) must agree within |cuda - cpu| <= atol + rtol * |cpu|.
//
// Where no CUDA device is present the test is skipped (COCO_REQUIRE_CUDA), never failed.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda_runtime.h"
#include "engine/layer.h"
#include "tests/gradient_checker.h"

#define COCO_REQUIRE_CUDA()                                                         \
  do {                                                                              \
    if (!::coco::cuda::available()) GTEST_SKIP() << "no CUDA device in this build/machine"; \
  } while (0)

namespace coco::testing {

struct ParityBottom {
  Shape shape;
  int labels = 0;  // > 0: integer labels in [0, labels) (no gradient); else uniform values
  float lo = -1, hi = 1;
};

struct ParityOptions {
  double rtol = 1e-4;
  double atol = 1e-5;
  Phase phase = Phase::kTrain;
  int64_t iter = 0;
  uint64_t seed = 7;
  bool backward = true;
  // Bottoms to backpropagate to (empty: every bottom the layer can backpropagate to,
  // except label bottoms).
  std::vector<bool> propagate_down;
  // Runs forward(+backward) this many times (state that evolves: running statistics).
  int repeats = 1;
  // Solver precision and loss scale (LayerContext) on both devices.
  Precision precision = Precision::kFP32;
  float loss_scale = 1.f;
};

namespace detail_parity {

inline void fill(Tensor& t, float lo, float hi, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> host(t.count());
  for (auto& v : host) v = d(g);
  Tensor h(t.shape());
  std::copy(host.begin(), host.end(), h.data());
  t.copy_from(h);
}

inline void expect_close(const std::string& what, const Tensor& cpu, const Tensor& cuda, const ParityOptions& o) {
  ASSERT_EQ(cpu.shape(), cuda.shape()) << what;
  const auto a = cpu.to_vector(), b = cuda.to_vector();
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::fabs(static_cast<double>(b[i]) - a[i]);
    const double tol = o.atol + o.rtol * std::fabs(a[i]);
    if (!(err <= tol)) {  // catches NaN too
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
    if (err > worst || std::isnan(err)) worst = err;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size() << " values differ; first at " << first
                    << " (cpu " << (first >= 0 ? a[first] : 0.f) << ", cuda " << (first >= 0 ? b[first] : 0.f)
                    << "), worst |diff| " << worst;
}

}  // namespace detail_parity

// Runs the comparison described at the top of this file.
inline void expect_cuda_parity(const std::string& layer_text, const std::vector<ParityBottom>& bottoms,
                               const ParityOptions& o = {}) {
  const proto::LayerParameter p = layer_param(layer_text);
  auto cpu = layer_registry().create(p);
  auto gpu = layer_registry().create(p);
  LocalCommunicator comm;
  LayerContext ctx_cpu, ctx_gpu;
  ctx_cpu.comm = ctx_gpu.comm = &comm;
  ctx_cpu.phase = ctx_gpu.phase = o.phase;
  ctx_cpu.iter = ctx_gpu.iter = o.iter;
  ctx_cpu.precision = ctx_gpu.precision = o.precision;
  ctx_cpu.loss_scale = ctx_gpu.loss_scale = o.loss_scale;
  Rng rng_cpu(99), rng_gpu(99);

  const size_t nb = bottoms.size();
  std::vector<std::unique_ptr<Blob>> bc, bg;
  for (size_t i = 0; i < nb; ++i) {
    bc.push_back(std::make_unique<Blob>(bottoms[i].shape));
    bg.push_back(std::make_unique<Blob>(bottoms[i].shape, Device::kCUDA));
    if (bottoms[i].labels > 0) {
      std::mt19937_64 g(o.seed + 100 + i);
      for (int64_t k = 0; k < bc[i]->count(); ++k) bc[i]->mutable_data()[k] = static_cast<float>(g() % bottoms[i].labels);
    } else {
      detail_parity::fill(bc[i]->data(), bottoms[i].lo, bottoms[i].hi, o.seed + i);
    }
    bg[i]->data().copy_from(bc[i]->data());
  }
  const int nt = std::max(cpu->min_tops(), 1);
  std::vector<std::unique_ptr<Blob>> tc, tg;
  const int tops = p.top_size() > 0 ? p.top_size() : nt;
  for (int t = 0; t < tops; ++t) {
    tc.push_back(std::make_unique<Blob>());
    tg.push_back(std::make_unique<Blob>(Shape{}, Device::kCUDA));
  }
  Blobs bcp, bgp, tcp, tgp;
  for (auto& b : bc) bcp.push_back(b.get());
  for (auto& b : bg) bgp.push_back(b.get());
  for (auto& t : tc) tcp.push_back(t.get());
  for (auto& t : tg) tgp.push_back(t.get());

  cpu->setup(bcp, tcp, &ctx_cpu, rng_cpu);
  // The CUDA copy starts from the CPU copy's parameters.
  for (auto& b : cpu->blobs()) {
    auto copy = std::make_shared<Blob>(b->shape(), Device::kCUDA);
    copy->data().copy_from(b->data());
    gpu->blobs().push_back(copy);
  }
  gpu->setup(bgp, tgp, &ctx_gpu, rng_gpu);

  std::vector<bool> down = o.propagate_down;
  if (down.empty())
    for (size_t i = 0; i < nb; ++i) down.push_back(bottoms[i].labels == 0 && cpu->can_backward_to(static_cast<int>(i)));

  for (int rep = 0; rep < o.repeats; ++rep) {
    const std::string pass = " (pass " + std::to_string(rep) + ")";
    // Parameter diffs start from the same non-zero values on both devices, so a
    // backward that writes (=) instead of accumulating (+=) shows as a mismatch.
    for (size_t k = 0; k < cpu->blobs().size(); ++k) {
      detail_parity::fill(cpu->blobs()[k]->diff(), -1, 1, o.seed + 2000 + k + 10 * rep);
      gpu->blobs()[k]->diff().copy_from(cpu->blobs()[k]->diff());
    }
    cpu->reshape(bcp, tcp);
    gpu->reshape(bgp, tgp);
    cpu->forward(bcp, tcp);
    gpu->forward(bgp, tgp);
    cuda::synchronize("parity forward");
    for (size_t t = 0; t < tc.size(); ++t)
      detail_parity::expect_close(p.name() + " top " + std::to_string(t) + pass, tc[t]->data(), tg[t]->data(), o);
    if (o.backward) {
      for (size_t t = 0; t < tc.size(); ++t) {
        if (cpu->is_loss() && t == 0) {
          // A loss top's diff is its loss weight (1 here) times the loss scale, as the
          // Net seeds it.
          tc[t]->diff().fill(o.loss_scale);
        } else {
          detail_parity::fill(tc[t]->diff(), -1, 1, o.seed + 1000 + t + 10 * rep);
        }
        tg[t]->diff().copy_from(tc[t]->diff());
      }
      cpu->backward(tcp, down, bcp);
      gpu->backward(tgp, down, bgp);
      cuda::synchronize("parity backward");
      for (size_t i = 0; i < nb; ++i)
        if (down[i])
          detail_parity::expect_close(p.name() + " bottom diff " + std::to_string(i) + pass, bc[i]->diff(),
                                      bg[i]->diff(), o);
      for (size_t k = 0; k < cpu->blobs().size(); ++k)
        detail_parity::expect_close(p.name() + " param diff " + std::to_string(k) + pass, cpu->blobs()[k]->diff(),
                                    gpu->blobs()[k]->diff(), o);
    }
    for (size_t k = 0; k < cpu->blobs().size(); ++k)
      detail_parity::expect_close(p.name() + " param data " + std::to_string(k) + pass, cpu->blobs()[k]->data(),
                                  gpu->blobs()[k]->data(), o);
  }
}

}  // namespace coco::testing
