// The head's device-neutral plan and orchestration: chunk boundaries, cache slots
// and the order of steps are decided once for both devices (layers/coco_head.h),
// so what these CPU tests see is what the GPU runs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "layers/coco_head.h"

namespace coco {
namespace {

TEST(CocoHeadPlan, ChunksCoverTheShardOnce) {
  const ShardRange shard{100, 37};
  const CocoHeadPlan p = plan_coco_head({5, 6, 4}, 1, 9, shard, 8, 0, true);
  EXPECT_EQ(p.M, 15);
  EXPECT_EQ(p.Ml, 6);
  EXPECT_EQ(p.offset, 5);
  EXPECT_EQ(p.n_chunks, 5);
  EXPECT_EQ(p.t_max, 8);
  int64_t covered = 0;
  for (int64_t ch = 0; ch < p.n_chunks; ++ch) {
    EXPECT_EQ(p.chunk_begin(ch), covered);
    covered += p.chunk_width(ch);
  }
  EXPECT_EQ(covered, shard.count);
  EXPECT_EQ(p.chunk_width(4), 5);
  EXPECT_EQ(p.feature_counts(), (std::vector<int64_t>{45, 54, 36}));
}

TEST(CocoHeadPlan, CacheSlotsFollowTheBudget) {
  // 11 x 8 floats = 352 bytes per chunk; 1000 bytes hold two of five chunks.
  const ShardRange shard{0, 37};
  const CocoHeadPlan some = plan_coco_head({11}, 0, 9, shard, 8, 1000.0 / (1 << 20), true);
  EXPECT_EQ(some.cached_chunks, 2);
  EXPECT_EQ(some.slots, 3);  // two cached, one shared by the recomputed chunks
  EXPECT_EQ(some.slot_stride % 64, 0);
  EXPECT_GE(some.slot_stride, 11 * 8);
  EXPECT_EQ(some.slot_offset(1), some.slot_stride);
  EXPECT_EQ(some.slot_offset(3), some.slot_offset(4));
  EXPECT_EQ(plan_coco_head({11}, 0, 9, shard, 8, 64, true).slots, 5);
  EXPECT_EQ(plan_coco_head({11}, 0, 9, shard, 8, 64, false).cached_chunks, 0);  // only training caches
  const CocoHeadPlan whole = plan_coco_head({11}, 0, 9, shard, 0, 0, true);
  EXPECT_EQ(whole.n_chunks, 1);
  EXPECT_EQ(whole.t_max, 37);
  const CocoHeadPlan empty = plan_coco_head({3, 3}, 1, 4, ShardRange{2, 0}, 8, 1, true);
  EXPECT_EQ(empty.n_chunks, 0);  // more ranks than classes: a rank may own none
  EXPECT_EQ(empty.slots, 1);
}

// The CPU bodies, recording which step ran: the orchestration's sequence is the
// GPU's, so this pins it down without a GPU.
class RecordingOps final : public CocoHeadOps {
 public:
  mutable std::vector<std::string> calls;
  const CocoHeadOps& cpu = cpu_head_ops();
  void note(const char* s) const { calls.emplace_back(s); }

  void shard_columns(float* c, const int32_t* ids, int64_t M, int64_t s0, int64_t n, int64_t K) const override {
    cpu.shard_columns(c, ids, M, s0, n, K);
  }
  void gemm(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float a, const float* A, const float* B,
            float b, float* C) const override {
    note(b == 0.f ? "gemm" : "gemm+=");
    cpu.gemm(p, ta, tb, M, N, K, a, A, B, b, C);
  }
  void copy(int64_t n, const float* x, float* y) const override { cpu.copy(n, x, y); }
  void set(int64_t n, float v, float* x) const override { cpu.set(n, v, x); }
  void read_to_host(float* h, const float* s, int64_t n) const override { cpu.read_to_host(h, s, n); }
  void features(float* f, float* inv, const float* x, int64_t Ml, int64_t D, float a, bool c) const override {
    note("features");
    cpu.features(f, inv, x, Ml, D, a, c);
  }
  void centroid_norms(float* c, float* inv, int64_t Kr, int64_t D, bool cos, bool r) const override {
    note("norms");
    cpu.centroid_norms(c, inv, Kr, D, cos, r);
  }
  void unit_centroids(float* u, const float* c, const float* inv, int64_t t, int64_t D) const override {
    note("unit");
    cpu.unit_centroids(u, c, inv, t, D);
  }
  void init_stats(float* a, float* b, float* c, float* d, int64_t M) const override { cpu.init_stats(a, b, c, d, M); }
  void chunk_stats(float* a, float* b, float* c, float* d, float* e, const float* z, const float* l, int64_t M,
                   int64_t t, int64_t f, bool acc, const CocoMarginParams& m) const override {
    note("stats");
    cpu.chunk_stats(a, b, c, d, e, z, l, M, t, f, acc, m);
  }
  void rescale_sums(float* s, const float* lm, const float* m, int64_t M) const override {
    note("rescale");
    cpu.rescale_sums(s, lm, m, M);
  }
  void loss(float* o, const float* s, const float* m, const float* t, const float* l, int64_t M) const override {
    note("loss");
    cpu.loss(o, s, m, t, l, M);
  }
  void accuracy_candidates(float* c, const float* b, const float* r, const float* bc, const float* l, int rank,
                           int64_t M) const override {
    cpu.accuracy_candidates(c, b, r, bc, l, rank, M);
  }
  void accuracy(float* a, const float* c, int64_t M) const override { cpu.accuracy(a, c, M); }
  void softmax_grad(float* z, const float* m, const float* s, const float* l, int64_t M, int64_t t, int64_t f,
                    float im, const CocoMarginParams& mp) const override {
    note("softmax_grad");
    cpu.softmax_grad(z, m, s, l, M, t, f, im, mp);
  }
  void centroid_grad(float* dc, const float* h, const float* u, const float* inv, int64_t t, int64_t D, float w,
                     bool e) const override {
    note("centroid_grad");
    cpu.centroid_grad(dc, h, u, inv, t, D, w, e);
  }
  void exp_stats(float* z, float* s, float* t, float* r, float* b, float* bc, const float* cs, const float* l,
                 int64_t M, int64_t w, int64_t f, float shift, bool keep, bool acc,
                 const CocoMarginParams& m) const override {
    note(keep ? "exp_stats kept" : "exp_stats");
    cpu.exp_stats(z, s, t, r, b, bc, cs, l, M, w, f, shift, keep, acc, m);
  }
  void fixed_shift_grad(float* z, const float* s, const float* r, const float* cs, const float* l, int64_t M,
                        int64_t t, int64_t f, float shift, float im, bool is_exp,
                        const CocoMarginParams& m) const override {
    note(is_exp ? "fixed_grad of kept" : "fixed_grad");
    cpu.fixed_shift_grad(z, s, r, cs, l, M, t, f, shift, im, is_exp, m);
  }
  void centroid_grad_scaled(float* dc, const float* h, const float* c, const float* inv, int64_t t, int64_t D,
                            float w, bool accumulate) const override {
    note("centroid_grad_scaled");
    cpu.centroid_grad_scaled(dc, h, c, inv, t, D, w, accumulate);
  }
  int64_t count_below(const float* x, int64_t n, float threshold, float* scratch) const override {
    note("count_below");
    return cpu.count_below(x, n, threshold, scratch);
  }
  void gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D) const override {
    note("gather_rows");
    cpu.gather_rows(dst, src, rows, n, D);
  }
  void rows_to_classes(float* cls, const float* rows, int64_t first, int64_t n, int64_t M) const override {
    note("rows_to_classes");
    cpu.rows_to_classes(cls, rows, first, n, M);
  }
  void project_features(float* g, const float* x, const float* inv, int64_t Ml, int64_t D,
                        float a) const override {
    note("project");
    cpu.project_features(g, x, inv, Ml, D, a);
  }
  void scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n) const override {
    cpu.scale_by_top_diff(dx, g, w, n);
  }
};

std::vector<std::string> run_head(float cache_mb, int64_t global_batch = 0, bool fixed_shift = false) {
  const int64_t M = 3, D = 4, K = 5;
  CocoHeadConfig cfg;
  cfg.K = K;
  cfg.D = D;
  cfg.chunk = 3;
  cfg.cache_mb = cache_mb;
  cfg.alpha = 2;
  cfg.shard = ShardRange{0, K};
  cfg.fixed_shift = fixed_shift;
  CocoHead head(cfg, "test head: ");
  std::vector<float> x(M * D), c(K * D), dc(K * D, 0.f);
  std::vector<int32_t> labels{0, 4, 2};
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
  for (size_t i = 0; i < c.size(); ++i) c[i] = 0.2f * static_cast<float>(i % 5) - 0.4f;
  float loss = 0;
  CocoHeadIo io{x.data(), labels.data(), M, c.data(), dc.data(), &loss, nullptr, global_batch};
  LocalCommunicator comm;
  RecordingOps ops;
  const CocoHeadGradient g = head.forward(io, comm, ops, true, 0.5f);
  EXPECT_TRUE(g.ready);
  EXPECT_EQ(g.loss_weight, 0.5f);
  EXPECT_GT(loss, 0.f);
  return ops.calls;
}

TEST(CocoHead, RunningMaximumStepsRunInOneOrder) {
  // Two chunks (3 + 2 classes), EXACT cosine logits, no cache: each chunk's logits
  // are recomputed in the backward, the second chunk accumulates the feature gradient
  // (G ĉ before Gᵀf and the centroid gradient, which a sampling head writes over
  // its copy of the rows).
  const std::vector<std::string> recompute{
      "features", "norms",
      "unit", "gemm", "stats", "unit", "gemm", "stats",
      "rescale", "loss",
      "unit", "gemm", "softmax_grad", "gemm", "gemm", "centroid_grad",
      "unit", "gemm", "softmax_grad", "gemm+=", "gemm", "centroid_grad",
      "project"};
  EXPECT_EQ(run_head(0), recompute);
  // With the logits cached the backward skips the logits GEMMs.
  std::vector<std::string> cached = recompute;
  cached.erase(cached.begin() + 17);
  cached.erase(cached.begin() + 11);
  EXPECT_EQ(run_head(64), cached);
  // A known global batch gives the same steps (no batch sizes to gather).
  EXPECT_EQ(run_head(64, 3), cached);
}

TEST(CocoHead, FixedShiftStepsRunInOneOrder) {
  // The same head with the fixed shift: no unit centroids (the GEMMs take the raw
  // rows), one pass per chunk, no rescale (no MAX), the sums' safety check, and the
  // centroid gradient through the scaled Jacobian.
  const std::vector<std::string> recompute{
      "features", "norms",
      "gemm", "exp_stats", "gemm", "exp_stats",
      "count_below", "loss",
      "gemm", "fixed_grad", "gemm", "gemm", "centroid_grad_scaled",
      "gemm", "fixed_grad", "gemm+=", "gemm", "centroid_grad_scaled",
      "project"};
  EXPECT_EQ(run_head(0, 0, true), recompute);
  // Cached: the forward keeps the terms, the backward starts from them.
  const std::vector<std::string> cached{
      "features", "norms",
      "gemm", "exp_stats kept", "gemm", "exp_stats kept",
      "count_below", "loss",
      "fixed_grad of kept", "gemm", "gemm", "centroid_grad_scaled",
      "fixed_grad of kept", "gemm+=", "gemm", "centroid_grad_scaled",
      "project"};
  EXPECT_EQ(run_head(64, 0, true), cached);
}

TEST(CocoHead, GlobalBatchThatDisagreesWithTheLocalOneIsAnError) {
  // Rank 0 of 1 holds all of a global batch of 4, not the 3 rows it was given.
  try {
    run_head(0, 4);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("holds 3 samples of a global batch of 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace coco
