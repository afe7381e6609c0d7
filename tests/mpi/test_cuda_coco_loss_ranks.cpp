// The CUDA CocoLoss head on N ranks, one GPU each, joined by NCCL, equals the CPU
// head on the whole batch in one process: the loss and accuracy on every rank, each
// rank's rows of the feature gradient and its shard's rows of the centroid gradient
// (and of the centroids, which RENORMALIZE rewrites). The global batch and the class
// count divide by neither 2 nor 3, so batch slices and class shards are unequal (the
// batch sizes travel through the device and NCCL's broadcast-based all-gather-v).
//
// Skipped on every rank (never failed) where the build has no NCCL or a node has
// fewer GPUs than ranks on it. Tolerances as in tests/test_cuda_coco_loss.cpp: float32
// summation order (cuBLAS vs OpenBLAS, and now the order of the ranks' partial sums),
// CUDA's expf vs the CPU's polynomial, FMA contraction: |diff| <= 1e-5 + 1e-4 |cpu|.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <sstream>

#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "layers/coco_loss_layer.h"
#include "tests/gradient_checker.h"

namespace coco {
namespace {

MpiCommunicator* g_comm = nullptr;

std::string head_text(int64_t K, int chunk, float cache_mb, const std::string& extra) {
  std::ostringstream s;
  s << "name: \"head\" type: \"CocoLoss\" bottom: \"x\" bottom: \"y\" top: \"loss\" top: \"acc\" coco_loss_param { "
    << "num_output: " << K << " chunk_size: " << chunk << " logits_cache_mb: " << cache_mb << " " << extra << " }";
  return s.str();
}

void expect_close(const std::string& what, const std::vector<float>& cpu, const std::vector<float>& cuda) {
  ASSERT_EQ(cpu.size(), cuda.size()) << what;
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < cpu.size(); ++i)
    if (!(std::fabs(static_cast<double>(cuda[i]) - cpu[i]) <= 1e-5 + 1e-4 * std::fabs(cpu[i]))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  EXPECT_EQ(bad, 0) << what << " on rank " << g_comm->rank() << ": first at " << first << " (cpu "
                    << (first >= 0 ? cpu[first] : 0.f) << ", cuda " << (first >= 0 ? cuda[first] : 0.f) << ")";
}

std::vector<float> rows(const std::vector<float>& v, int64_t start, int64_t count, int64_t D) {
  return std::vector<float>(v.begin() + start * D, v.begin() + (start + count) * D);
}

void to_device(Tensor& t, const Shape& shape, const std::vector<float>& v) {
  Tensor h(shape);
  std::copy(v.begin(), v.end(), h.data());
  t.copy_from(h);
}

TEST(CudaCocoLossRanks, NcclShardsEqualOneCpuProcess) {
  // Every rank decides together: skip unless each node has a GPU per rank on it.
  float ok = nccl_available() && cuda::available() && cuda::device_count() >= g_comm->local_size() ? 1.f : 0.f;
  g_comm->all_reduce(&ok, 1, ReduceOp::kMin);
  if (ok == 0.f) GTEST_SKIP() << "needs NCCL and one GPU per rank";
  NcclCommunicator nccl(*g_comm);  // GPU = local rank
  const int rank = g_comm->rank(), size = g_comm->size();

  const int64_t D = 7, K = 11;
  const char* variants[] = {"scale: 8",
                            "auto_scale: true target_probability: 0.995",
                            "scale: 6 centroid_update: RENORMALIZE",
                            "scale: 7 margin_type: COSFACE margin: 0.35",
                            "scale: 7 margin_type: ARCFACE margin: 0.5",
                            "logit_type: INNER_PRODUCT"};
  for (int64_t M : {13, 5}) {
    // The same inputs on every rank (fixed seeds).
    std::mt19937_64 g(42 + M);
    std::uniform_real_distribution<float> u(-1, 1);
    std::normal_distribution<float> n(0, 1);
    std::vector<float> x(M * D), y(M), c(K * D);
    for (auto& v : x) v = u(g);
    for (auto& v : c) v = n(g);
    for (int64_t i = 0; i < M; ++i) y[i] = static_cast<float>((i * 5 + 3) % K);
    const ShardRange slice = shard_range(M, rank, size), shard = shard_range(K, rank, size);

    for (const char* extra : variants) {
      for (auto [chunk, cache] : {std::pair<int, float>{2, 0.f}, {2, 64.f}, {0, 64.f}}) {
        SCOPED_TRACE(std::string(extra) + " M " + std::to_string(M) + " chunk " + std::to_string(chunk) + " cache " +
                     std::to_string(cache));
        const proto::LayerParameter p = testing::layer_param(head_text(K, chunk, cache, extra));
        // The oracle: the CPU head, the whole batch, one process.
        CocoLossLayer ref(p);
        Blob rx({M, D}), ry({M}), rloss, racc;
        std::copy(x.begin(), x.end(), rx.mutable_data());
        std::copy(y.begin(), y.end(), ry.mutable_data());
        auto rc = std::make_shared<Blob>(Shape{K, D});
        std::copy(c.begin(), c.end(), rc->mutable_data());
        ref.blobs().push_back(rc);
        testing::LayerHarness h;
        h.setup(ref, {&rx, &ry}, {&rloss, &racc});
        ref.forward({&rx, &ry}, {&rloss, &racc});
        rloss.mutable_diff()[0] = 1.f;
        ref.backward({&rloss, &racc}, {true, false}, {&rx, &ry});

        // This rank's part on its GPU.
        CocoLossLayer layer(p);
        LayerContext ctx;
        ctx.comm = &nccl;
        Rng rng(1);
        Blob bx({slice.count, D}, Device::kCUDA), by({slice.count}, Device::kCUDA), loss(Shape{}, Device::kCUDA),
            acc(Shape{}, Device::kCUDA);
        to_device(bx.data(), {slice.count, D}, rows(x, slice.start, slice.count, D));
        to_device(by.data(), {slice.count}, rows(y, slice.start, slice.count, 1));
        auto bc = std::make_shared<Blob>(Shape{shard.count, D}, Device::kCUDA);
        to_device(bc->data(), {shard.count, D}, rows(c, shard.start, shard.count, D));
        bc->diff().zero();
        layer.blobs().push_back(bc);
        layer.setup({&bx, &by}, {&loss, &acc}, &ctx, rng);
        layer.forward({&bx, &by}, {&loss, &acc});
        loss.diff().fill(1.f);
        layer.backward({&loss, &acc}, {true, false}, {&bx, &by});
        nccl.synchronize();
        cuda::synchronize("ranks test");

        expect_close("loss", {rloss.cdata()[0]}, loss.data().to_vector());
        expect_close("accuracy", {racc.cdata()[0]}, acc.data().to_vector());
        expect_close("grad_x", rows(rx.diff().to_vector(), slice.start, slice.count, D), bx.diff().to_vector());
        expect_close("grad_c", rows(rc->diff().to_vector(), shard.start, shard.count, D), bc->diff().to_vector());
        expect_close("centroids", rows(rc->data().to_vector(), shard.start, shard.count, D), bc->data().to_vector());
      }
    }
  }
}

}  // namespace
}  // namespace coco

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  coco::MpiRuntime mpi(&argc, &argv);
  int rc = 0;
  {
    coco::MpiCommunicator comm;
    coco::g_comm = &comm;
    rc = RUN_ALL_TESTS();
    comm.barrier();
  }
  return rc;
}
