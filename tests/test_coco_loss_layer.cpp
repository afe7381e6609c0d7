// The fused COCO head against golden values from an independent double-precision
// implementation (tools/golden/coco_head_golden.py -> tests/data/coco_head_golden.txt),
// finite differences, and its own invariants (chunking, logit cache).
#include "layers/coco_loss_layer.h"

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/coco_head_golden.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

// `extra` goes inside coco_loss_param.
proto::LayerParameter head_param(int64_t K, int chunk, float cache_mb, const std::string& extra) {
  std::ostringstream s;
  s.precision(17);
  s << "name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: " << K << " chunk_size: " << chunk
    << " logits_cache_mb: " << cache_mb << " " << extra << " }";
  return layer_param(s.str());
}

proto::LayerParameter head_param(int64_t K, double alpha, const std::string& mode, int chunk, float cache_mb,
                                  const std::string& logit = "COSINE", const std::string& margin_type = "NONE",
                                  double margin = 0) {
  GoldenCase c;
  c.alpha = alpha;
  c.mode = mode;
  c.logit = logit;
  c.margin_type = margin_type;
  c.margin = margin;
  return head_param(K, chunk, cache_mb, golden_extra(c));
}

void set_blob(Blob& b, const std::vector<double>& v) {
  ASSERT_EQ(static_cast<size_t>(b.count()), v.size());
  for (size_t i = 0; i < v.size(); ++i) b.mutable_data()[i] = static_cast<float>(v[i]);
}

}  // namespace

// One golden case through the layer with one chunking, cache and shift.
void expect_golden(const GoldenCase& gc, int chunk, float cache, const std::string& shift) {
  SCOPED_TRACE(gc.name + " chunk " + std::to_string(chunk) + " cache " + std::to_string(cache) + " " + shift);
  CocoLossLayer layer(head_param(gc.K, chunk, cache, golden_extra(gc) + " softmax_shift: " + shift));
  Blob x({gc.M, gc.D}), y({gc.M}), loss;
  set_blob(x, gc.v.at("x"));
  set_blob(y, gc.v.at("labels"));
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  set_blob(*layer.blobs()[0], gc.v.at("centroids"));
  layer.blobs()[0]->diff().zero();
  layer.forward({&x, &y}, {&loss});
  // AUTO takes the fixed shift for the bounded (COSINE) logits of every case.
  EXPECT_EQ(layer.used_fixed_shift(), shift == "AUTO" && gc.logit == "COSINE");
  const double want = gc.v.at("loss")[0];
  EXPECT_NEAR(loss.cdata()[0], want, 2e-6 * std::max(1.0, std::fabs(want)));
  loss.mutable_diff()[0] = 1.f;
  layer.backward({&loss}, {true, false}, {&x, &y});
  const auto& gx = gc.v.at("grad_x");
  for (size_t i = 0; i < gx.size(); ++i) EXPECT_NEAR(x.cdiff()[i], gx[i], 2e-6) << "grad_x " << i;
  const auto& gcv = gc.v.at("grad_c");
  for (size_t i = 0; i < gcv.size(); ++i) EXPECT_NEAR(layer.blobs()[0]->cdiff()[i], gcv[i], 2e-6) << "grad_c " << i;
  if (gc.mode != "RENORMALIZE") return;
  const float* c = layer.blobs()[0]->cdata();
  for (int64_t k = 0; k < gc.K; ++k) {
    double n = 0;
    for (int64_t d = 0; d < gc.D; ++d) n += double(c[k * gc.D + d]) * c[k * gc.D + d];
    EXPECT_NEAR(n, 1.0, 1e-5) << "centroid row " << k << " not renormalised";
  }
}

TEST(CocoLossLayer, MatchesGoldenValues) {
  auto cases = read_golden();
  ASSERT_EQ(cases.size(), 7u);
  for (const auto& gc : cases)
    for (int chunk : {0, 1, 3, 1000})
      for (float cache : {0.f, 64.f})
        for (const std::string shift : {"AUTO", "RUNNING_MAX"}) expect_golden(gc, chunk, cache, shift);
}

namespace {

// One step of a head whose every logit is -alpha: the centroids all point one way,
// the features the other (cos = -1). The loss is then log K exactly, whatever
// the shift, and the row sums with the fixed shift are K e^(-2 alpha).
struct AntiAlignedStep {
  float loss = 0;
  bool fixed = false;
  int64_t fallbacks = 0;
  std::vector<float> grads;
};

AntiAlignedStep anti_aligned_step(double alpha, const std::string& shift, int64_t K = 7) {
  CocoLossLayer layer(head_param(K, K > 100 ? 0 : 3, 64.f, "scale: " + std::to_string(alpha) + " softmax_shift: " + shift));
  const int64_t M = 5, D = 4;
  Blob x({M, D}), y({M}), loss;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t d = 0; d < D; ++d) x.mutable_data()[i * D + d] = d == 0 ? -1.5f - 0.1f * i : 0.f;
    y.mutable_data()[i] = static_cast<float>(i % K);
  }
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  float* c = layer.blobs()[0]->mutable_data();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t d = 0; d < D; ++d) c[k * D + d] = d == 0 ? 0.5f + 0.25f * k : 0.f;
  layer.blobs()[0]->diff().zero();
  layer.forward({&x, &y}, {&loss});
  loss.mutable_diff()[0] = 1.f;
  layer.backward({&loss}, {true, false}, {&x, &y});
  AntiAlignedStep r{loss.cdata()[0], layer.used_fixed_shift(), layer.fixed_shift_fallbacks(), x.diff().to_vector()};
  const std::vector<float> dc = layer.blobs()[0]->diff().to_vector();
  r.grads.insert(r.grads.end(), dc.begin(), dc.end());
  return r;
}

}  // namespace

TEST(CocoLossLayer, FixedShiftHoldsUpToItsBound) {
  // alpha = 35: every term is e^-70, inside float's normal range; the sums K e^-70
  // pass the safety bound K e^-87 2^24 = K e^-70.36, so the fixed shift is kept and
  // is exact. (e^-2 alpha >= e^-70.36 for every alpha <= 35.18: below that scale the
  // fixed shift never falls back, whatever the cosines.)
  const AntiAlignedStep a = anti_aligned_step(35, "AUTO");
  EXPECT_TRUE(a.fixed);
  EXPECT_EQ(a.fallbacks, 0);
  EXPECT_NEAR(a.loss, std::log(7.0), 2e-6);
  const AntiAlignedStep r = anti_aligned_step(35, "RUNNING_MAX");
  EXPECT_FALSE(r.fixed);
  EXPECT_NEAR(a.loss, r.loss, 2e-6);
  ASSERT_EQ(a.grads.size(), r.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) EXPECT_NEAR(a.grads[i], r.grads[i], 1e-6) << i;
}

TEST(CocoLossLayer, FixedShiftFallsBackToTheRunningMaximumPastItsBound) {
  // alpha = 36 (terms e^-72, sums below the bound) and alpha = 64 (terms e^-128:
  // every one underflows, the sums are 0): the step is redone with the running
  // maximum and equals a RUNNING_MAX head bit for bit.
  for (double alpha : {36.0, 64.0}) {
    SCOPED_TRACE(alpha);
    const AntiAlignedStep a = anti_aligned_step(alpha, "AUTO");
    EXPECT_FALSE(a.fixed);
    EXPECT_EQ(a.fallbacks, 1);
    EXPECT_NEAR(a.loss, std::log(7.0), 2e-6);
    const AntiAlignedStep r = anti_aligned_step(alpha, "RUNNING_MAX");
    EXPECT_EQ(r.fallbacks, 0);
    EXPECT_EQ(a.loss, r.loss);
    EXPECT_EQ(a.grads, r.grads);
  }
  // The bound grows with K (K terms may each lose e^-87): at alpha = 35 and 2^17
  // classes the sums K e^-70 still pass, since both sides scale with K.
  EXPECT_TRUE(anti_aligned_step(35, "AUTO", 1 << 17).fixed);
}

TEST(CocoLossLayer, GradientCheckExact) {
  for (int chunk : {0, 2}) {
    CocoLossLayer layer(head_param(5, 4.0, "EXACT", chunk, 0));
    Blob x({6, 3, 1, 1}), y({6}), loss;
    fill_uniform(x, -2, 2, 21);
    const float labels[] = {0, 4, 2, 2, 1, 3};
    for (int i = 0; i < 6; ++i) y.mutable_data()[i] = labels[i];
    LayerHarness h;
    h.setup(layer, {&x, &y}, {&loss});
    // x / ||x|| curves strongly at these small norms: a step of 1e-2 leaves an
    // O(h^2) truncation error near 1e-2, so the step is 2e-3 (float32 round-off of
    // a loss near 1 then stays near 1e-7 / 2e-3 = 5e-5, well inside 2e-3).
    GradCheckOptions o;
    o.step = 2e-3;
    o.threshold = 2e-3;
    GradientChecker(o).check(layer, {&x, &y}, {&loss});
  }
}

TEST(CocoLossLayer, GradientCheckMarginsAndInnerProduct) {
  struct Variant {
    const char* logit;
    const char* margin;
    double m;
  };
  for (const Variant& v : {Variant{"COSINE", "COSFACE", 0.3}, Variant{"COSINE", "ARCFACE", 0.4},
                           Variant{"INNER_PRODUCT", "NONE", 0}}) {
    SCOPED_TRACE(std::string(v.logit) + " " + v.margin);
    CocoLossLayer layer(head_param(5, 4.0, "EXACT", 2, 0, v.logit, v.margin, v.m));
    Blob x({6, 3}), y({6}), loss;
    fill_uniform(x, -2, 2, 23);
    const float labels[] = {1, 4, 0, 2, 3, 3};
    for (int i = 0; i < 6; ++i) y.mutable_data()[i] = labels[i];
    LayerHarness h;
    h.setup(layer, {&x, &y}, {&loss});
    GradCheckOptions o;
    o.step = 2e-3;
    o.threshold = 2e-3;
    GradientChecker(o).check(layer, {&x, &y}, {&loss});
  }
}

TEST(CocoLossLayer, MarginConfigErrors) {
  LayerHarness h;
  Blob x({2, 3}), y({2}), loss;
  for (const char* bad : {R"(num_output: 4 logit_type: INNER_PRODUCT margin_type: COSFACE margin: 0.2)",
                          R"(num_output: 4 scale: 3 margin_type: ARCFACE margin: 2)",
                          R"(num_output: 4 logit_type: INNER_PRODUCT scale: 3)"}) {
    CocoLossLayer layer(layer_param(std::string(R"(name: "h" type: "CocoLoss" coco_loss_param { )") + bad + " }"));
    EXPECT_THROW(h.setup(layer, {&x, &y}, {&loss}), Error) << bad;
  }
}

TEST(CocoLossLayer, FeatureGradientCheckRenormalize) {
  CocoLossLayer layer(head_param(4, 3.0, "RENORMALIZE", 3, 0));
  Blob x({5, 4}), y({5}), loss;
  fill_uniform(x, -2, 2, 22);
  const float labels[] = {3, 0, 1, 3, 2};
  for (int i = 0; i < 5; ++i) y.mutable_data()[i] = labels[i];
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  GradCheckOptions o;
  o.step = 2e-3;
  o.check_params = false;  // forward rewrites the centroids: no finite differences there
  GradientChecker(o).check(layer, {&x, &y}, {&loss});
}

TEST(CocoLossLayer, CachedLogitsEqualRecomputedBitForBit) {
  auto run = [](float cache_mb, int64_t* cached) {
    CocoLossLayer layer(head_param(37, 6.0, "EXACT", 8, cache_mb));
    Blob x({11, 9}), y({11}), loss;
    fill_uniform(x, -2, 2, 5);
    for (int i = 0; i < 11; ++i) y.mutable_data()[i] = (i * 7) % 37;
    LayerHarness h;
    h.setup(layer, {&x, &y}, {&loss});
    layer.blobs()[0]->diff().zero();
    layer.forward({&x, &y}, {&loss});
    loss.mutable_diff()[0] = 1.f;
    layer.backward({&loss}, {true, false}, {&x, &y});
    *cached = layer.cached_chunks();
    std::vector<float> out = x.diff().to_vector();
    auto dc = layer.blobs()[0]->diff().to_vector();
    out.insert(out.end(), dc.begin(), dc.end());
    out.push_back(loss.cdata()[0]);
    return out;
  };
  int64_t none = -1, all = -1, some = -1;
  auto a = run(0.f, &none);
  auto b = run(64.f, &all);
  // 11 x 8 floats = 352 bytes per chunk; 1000 bytes hold two of the five chunks.
  auto c = run(1000.f / (1 << 20), &some);
  EXPECT_EQ(none, 0);
  EXPECT_EQ(all, 5);
  EXPECT_EQ(some, 2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST(CocoLossLayer, AccuracyTopIsArgmaxOfCosines) {
  CocoLossLayer layer(head_param(6, 5.0, "EXACT", 4, 0));
  Blob x({8, 3}), y({8}), loss, acc;
  fill_uniform(x, -1, 1, 8);
  for (int i = 0; i < 8; ++i) y.mutable_data()[i] = i % 6;
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss, &acc});
  layer.forward({&x, &y}, {&loss, &acc});
  const float* c = layer.blobs()[0]->cdata();
  int correct = 0;
  for (int i = 0; i < 8; ++i) {
    int best = -1;
    double bv = -1e30;
    for (int k = 0; k < 6; ++k) {
      double dot = 0, nc = 0;
      for (int d = 0; d < 3; ++d) dot += double(x.cdata()[i * 3 + d]) * c[k * 3 + d], nc += double(c[k * 3 + d]) * c[k * 3 + d];
      if (dot / std::sqrt(nc) > bv) bv = dot / std::sqrt(nc), best = k;
    }
    correct += best == i % 6;
  }
  EXPECT_FLOAT_EQ(acc.cdata()[0], correct / 8.f);
}

TEST(CocoLossLayer, AutoScaleFormula) {
  // docs/DESIGN.md, "Choosing alpha": K = 87,020 and p = 0.99996 give about 21.5 (the seed's face network).
  EXPECT_NEAR(coco_auto_scale(87020, 0.99996), 21.5, 0.05);
  EXPECT_NEAR(coco_auto_scale(10, 0.99), 0.9 * std::log(9 * 99.0), 1e-9);
  auto p = layer_param(R"(name: "h" type: "CocoLoss" coco_loss_param { num_output: 10 auto_scale: true target_probability: 0.99 })");
  CocoLossLayer layer(p);
  Blob x({2, 3}), y({2}), loss;
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  EXPECT_NEAR(layer.scale(), 0.9 * std::log(9 * 99.0), 1e-5);
}

TEST(CocoLossLayer, BadInputIsAClearError) {
  {
    CocoLossLayer layer(layer_param(R"(name: "h" type: "CocoLoss" coco_loss_param { num_output: 10 })"));
    Blob x({2, 3}), y({2}), loss;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&x, &y}, {&loss}), Error);  // no scale
  }
  CocoLossLayer layer(head_param(4, 2.0, "EXACT", 0, 0));
  Blob x({2, 3}), y({2}), loss;
  fill_uniform(x, -1, 1, 1);
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  y.mutable_data()[1] = 4;  // out of range
  try {
    layer.forward({&x, &y}, {&loss});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 4 of sample 1"), std::string::npos) << e.what();
  }
  Blob y3({3});
  EXPECT_THROW(layer.reshape({&x, &y3}, {&loss}), Error);
}

}  // namespace coco::testing
