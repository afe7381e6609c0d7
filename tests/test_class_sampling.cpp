// Class sampling (sample_rate < 1; docs/DESIGN.md, "Class sampling"): the draw, the
// sampled head against a plain double implementation given the same sampled set,
// and the solver's update of the sampled rows alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "engine/config.h"
#include "engine/net.h"
#include "engine/solver.h"
#include "layers/class_sampler.h"
#include "layers/coco_loss_layer.h"
#include "tests/gradient_checker.h"

namespace coco::testing {
namespace {

TEST(ClassSampler, KeepsEveryPositiveAndTheRateOfTheShard) {
  const ShardRange shard{100, 40};  // classes 100..139
  const std::vector<float> labels{101, 7, 139, 101, 120, 250};
  const std::vector<int64_t> rows = sample_shard_classes(labels.data(), 6, shard, 0.25, 5, 3, 1);
  ASSERT_EQ(rows.size(), 10u);  // ceil(0.25 * 40)
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), rows.size());
  for (int64_t r : {1, 39, 20}) EXPECT_TRUE(std::binary_search(rows.begin(), rows.end(), r)) << r;
  for (int64_t r : rows) EXPECT_TRUE(r >= 0 && r < 40) << r;
  // More positives than the rate asks for: all of them, nothing else.
  const std::vector<float> many{100, 101, 102, 103, 104};
  EXPECT_EQ(sample_shard_classes(many.data(), 5, shard, 0.05, 5, 3, 1), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // Rate 1: the whole shard.
  EXPECT_EQ(sample_shard_classes(labels.data(), 6, shard, 1.0, 5, 3, 1).size(), 40u);
}

TEST(ClassSampler, IsAPureFunctionOfSeedIterationAndRank) {
  const ShardRange shard{0, 1000};
  const std::vector<float> labels{3, 500};
  const auto draw = [&](uint64_t seed, int64_t iter, int rank) {
    return sample_shard_classes(labels.data(), 2, shard, 0.1, seed, iter, rank);
  };
  EXPECT_EQ(draw(1, 7, 0), draw(1, 7, 0));
  EXPECT_NE(draw(1, 7, 0), draw(1, 8, 0));
  EXPECT_NE(draw(1, 7, 0), draw(1, 7, 1));
  EXPECT_NE(draw(1, 7, 0), draw(2, 7, 0));
}

TEST(ClassSampler, DrawsTheOtherClassesUniformly) {
  // 60 classes, 2 positives, 12 kept: each of the 58 others is drawn with
  // probability 10/58 per step. Over 4000 steps every count lies within 5 standard
  // deviations of its mean, and the positives are in every step.
  const ShardRange shard{0, 60};
  const std::vector<float> labels{4, 33};
  std::vector<int> hits(60, 0);
  const int steps = 4000;
  for (int it = 0; it < steps; ++it)
    for (int64_t r : sample_shard_classes(labels.data(), 2, shard, 0.2, 9, it, 0)) ++hits[r];
  EXPECT_EQ(hits[4], steps);
  EXPECT_EQ(hits[33], steps);
  const double p = 10.0 / 58, mean = steps * p, sd = std::sqrt(steps * p * (1 - p));
  for (int k = 0; k < 60; ++k) {
    if (k == 4 || k == 33) continue;
    EXPECT_NEAR(hits[k], mean, 5 * sd) << "class " << k;
  }
}

TEST(ClassSampler, RenumbersTheLabelsThisRankOwns) {
  const ShardRange shard{10, 10};
  const std::vector<float> labels{12, 3, 19, 12};
  const std::vector<int64_t> rows{0, 2, 5, 9};
  EXPECT_EQ(sampled_labels(labels.data(), 4, shard, rows), (std::vector<float>{1, -1, 3, 1}));
  const std::vector<int64_t> missing{0, 5};
  EXPECT_THROW(sampled_labels(labels.data(), 4, shard, missing), Error);
}

// ---- the sampled head against a plain double implementation ----

proto::LayerParameter sampled_head(int64_t K, const std::string& extra) {
  std::ostringstream s;
  s << "name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: " << K << " sample_rate: 0.3 " << extra
    << " }";
  return layer_param(s.str());
}

struct Reference {
  double loss = 0;
  std::vector<double> dx;  // (M, D)
  std::vector<double> dc;  // (S, D): the sampled rows' gradient, in the rows' order
};

// The loss and gradients over the sampled classes alone, in double: full logits,
// textbook softmax, gradients through the normalisations (cosine) or plain
// (inner product). No code shared with the head.
Reference plain_sampled_head(const std::vector<float>& x, const std::vector<float>& labels,
                             const std::vector<float>& c, const std::vector<int64_t>& rows, int64_t M, int64_t D,
                             double alpha, bool cosine) {
  const int64_t S = static_cast<int64_t>(rows.size());
  auto norm = [&](const float* v) {
    double n = 0;
    for (int64_t d = 0; d < D; ++d) n += double(v[d]) * v[d];
    return std::sqrt(n);
  };
  std::vector<double> f(M * D), u(S * D), cn(S);
  for (int64_t i = 0; i < M; ++i) {
    const double s = cosine ? alpha / norm(&x[i * D]) : 1.0;
    for (int64_t d = 0; d < D; ++d) f[i * D + d] = s * x[i * D + d];
  }
  for (int64_t j = 0; j < S; ++j) {
    const float* cj = &c[rows[j] * D];
    cn[j] = cosine ? norm(cj) : 1.0;
    for (int64_t d = 0; d < D; ++d) u[j * D + d] = cj[d] / cn[j];
  }
  Reference r;
  std::vector<double> G(M * S), dfe(M * D, 0.0), dchat(S * D, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    const int64_t y = std::find(rows.begin(), rows.end(), static_cast<int64_t>(labels[i])) - rows.begin();
    std::vector<double> z(S);
    double zmax = -1e300;
    for (int64_t j = 0; j < S; ++j) {
      for (int64_t d = 0; d < D; ++d) z[j] += f[i * D + d] * u[j * D + d];
      zmax = std::max(zmax, z[j]);
    }
    double s = 0;
    for (double v : z) s += std::exp(v - zmax);
    r.loss += (std::log(s) + zmax - z[y]) / M;
    for (int64_t j = 0; j < S; ++j) G[i * S + j] = (std::exp(z[j] - zmax) / s - (j == y)) / M;
  }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < S; ++j)
      for (int64_t d = 0; d < D; ++d) {
        dfe[i * D + d] += G[i * S + j] * u[j * D + d];
        dchat[j * D + d] += G[i * S + j] * f[i * D + d];
      }
  // Through the normalisations: d(v/|v|) = (I - v̂v̂ᵀ)/|v|.
  auto project = [&](const double* g, const double* unit, double scale, double* out) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += g[d] * unit[d];
    for (int64_t d = 0; d < D; ++d) out[d] = scale * (g[d] - unit[d] * dot);
  };
  r.dx.resize(M * D);
  r.dc.resize(S * D);
  for (int64_t i = 0; i < M; ++i) {
    if (!cosine) {
      std::copy(&dfe[i * D], &dfe[i * D] + D, &r.dx[i * D]);
      continue;
    }
    const double n = norm(&x[i * D]);
    std::vector<double> xh(D);
    for (int64_t d = 0; d < D; ++d) xh[d] = x[i * D + d] / n;
    project(&dfe[i * D], xh.data(), alpha / n, &r.dx[i * D]);
  }
  for (int64_t j = 0; j < S; ++j) {
    if (!cosine) {
      std::copy(&dchat[j * D], &dchat[j * D] + D, &r.dc[j * D]);
      continue;
    }
    project(&dchat[j * D], &u[j * D], 1.0 / cn[j], &r.dc[j * D]);
  }
  return r;
}

void expect_matches_plain(const std::string& extra, bool cosine, double alpha) {
  SCOPED_TRACE(extra);
  const int64_t K = 40, M = 6, D = 5;
  CocoLossLayer layer(sampled_head(K, extra));
  Blob x({M, D}), y({M}), loss;
  fill_uniform(x, -1, 1, 11);
  const std::vector<float> labels{3, 17, 3, 39, 0, 22};
  std::copy(labels.begin(), labels.end(), y.mutable_data());
  LayerHarness h;
  h.ctx.iter = 5;
  h.setup(layer, {&x, &y}, {&loss});
  EXPECT_FALSE(layer.blobs()[0]->has_diff());  // the gradient comes as sampled rows
  const std::vector<float> c = layer.blobs()[0]->data().to_vector();
  layer.forward({&x, &y}, {&loss});
  loss.mutable_diff()[0] = 1.f;
  layer.backward({&loss}, {true, false}, {&x, &y});
  const std::vector<int64_t>& rows = layer.sampled_rows();
  ASSERT_EQ(rows.size(), 12u);  // ceil(0.3 * 40), more than the 5 positives
  const Reference want = plain_sampled_head(x.data().to_vector(), labels, c, rows, M, D, alpha, cosine);
  EXPECT_NEAR(loss.cdata()[0], want.loss, 2e-6 * std::max(1.0, std::fabs(want.loss)));
  for (int64_t i = 0; i < M * D; ++i) EXPECT_NEAR(x.cdiff()[i], want.dx[i], 2e-6) << "dx " << i;
  const Layer::RowGradient g = layer.row_gradient(0);
  ASSERT_NE(g.grad, nullptr);
  ASSERT_EQ(g.rows->count(), 12);
  for (int64_t j = 0; j < 12; ++j) EXPECT_EQ(g.rows->data()[j], static_cast<float>(rows[j]));
  for (int64_t k = 0; k < 12 * D; ++k) EXPECT_NEAR(g.grad->data()[k], want.dc[k], 2e-6) << "dc " << k;
  // The centroids themselves are untouched by the forward (EXACT).
  EXPECT_EQ(layer.blobs()[0]->data().to_vector(), c);
}

TEST(ClassSampling, SampledHeadMatchesAPlainDoubleImplementationOnItsSet) {
  for (const std::string cache : {"logits_cache_mb: 0", "logits_cache_mb: 64"})
    for (const std::string chunk : {"chunk_size: 0", "chunk_size: 5"}) {
      const std::string shape = cache + " " + chunk;
      expect_matches_plain(shape + " scale: 6", true, 6);
      expect_matches_plain(shape + " scale: 6 softmax_shift: RUNNING_MAX", true, 6);
      expect_matches_plain(shape + " logit_type: INNER_PRODUCT", false, 1);
    }
}

TEST(ClassSampling, AccuracyIsTopOneAmongTheSampledClassesInTheLabelsNumbering) {
  // Features equal to their own class's centroid: each sample's best sampled class is
  // its own (the positives are always sampled), so the accuracy is 1; a numbering
  // left in the sample's positions would have made it 0.
  const int64_t K = 40, M = 4, D = 8;
  CocoLossLayer layer(sampled_head(K, "scale: 10"));
  Blob x({M, D}), y({M}), loss, acc;
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss, &acc});
  const std::vector<float> labels{9, 30, 31, 2};
  const float* c = layer.blobs()[0]->cdata();
  for (int64_t i = 0; i < M; ++i) {
    y.mutable_data()[i] = labels[i];
    std::copy(c + static_cast<int64_t>(labels[i]) * D, c + static_cast<int64_t>(labels[i] + 1) * D,
              x.mutable_data() + i * D);
  }
  layer.forward({&x, &y}, {&loss, &acc});
  EXPECT_EQ(acc.cdata()[0], 1.f);
}

TEST(ClassSampling, SampleRateIsCheckedAndRefusesRenormalize) {
  Blob x({2, 3}), y({2}), loss;
  for (const std::string bad : {"sample_rate: 0", "sample_rate: 1.5", "sample_rate: nan"}) {
    CocoLossLayer layer(
        layer_param("name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: 10 scale: 2 " + bad + " }"));
    LayerHarness h;
    try {
      h.setup(layer, {&x, &y}, {&loss});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("sample_rate"), std::string::npos) << e.what();
    }
  }
  CocoLossLayer renormalize(sampled_head(10, "scale: 2 centroid_update: RENORMALIZE"));
  LayerHarness h;
  try {
    h.setup(renormalize, {&x, &y}, {&loss});
    ADD_FAILURE() << "RENORMALIZE with sampling was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("centroid_update: EXACT"), std::string::npos) << e.what();
  }
}

// ---- the solver ----

TEST(ClassSampling, SolverUpdatesOnlyTheSampledRowsAndTheirMomentum) {
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 4 dim: 6 }
    input: "y" input_shape { dim: 4 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss"
            coco_loss_param { num_output: 30 scale: 5 sample_rate: 0.2 } })",
             "<net>", &np);
  LocalCommunicator comm;
  Net net(np, Phase::kTrain, &comm, 3);
  fill_uniform(*net.input_blobs()[0], -1, 1, 4);
  const std::vector<float> labels{1, 14, 29, 14};
  std::copy(labels.begin(), labels.end(), net.input_blobs()[1]->mutable_data());
  proto::SolverParameter sp;
  parse_text("base_lr: 0.5 momentum: 0.9 weight_decay: 0.1", "<solver>", &sp);
  SgdSolver solver(sp, &net);
  const auto& layer = dynamic_cast<const CocoLossLayer&>(net.layer(net.num_layers() - 1));
  Blob& c = *net.params()[0].blob;
  for (int it = 0; it < 2; ++it) {
    const std::vector<float> before = c.data().to_vector();
    const std::vector<float> v_before = solver.history_of(0)->to_vector();
    net.set_iter(it);
    net.clear_param_diffs();
    net.forward_backward();
    const std::vector<int64_t> rows = layer.sampled_rows();
    ASSERT_EQ(rows.size(), 6u);  // ceil(0.2 * 30), above the 3 positives
    const std::vector<float> g = layer.row_gradient(0).grad->to_vector();
    solver.apply_update(it);
    const std::vector<float> after = c.data().to_vector();
    const std::vector<float> v_after = solver.history_of(0)->to_vector();
    for (int64_t k = 0; k < 30; ++k) {
      const auto at = std::find(rows.begin(), rows.end(), k);
      for (int64_t d = 0; d < 6; ++d) {
        const int64_t i = k * 6 + d;
        if (at == rows.end()) {
          EXPECT_EQ(after[i], before[i]) << "unsampled row " << k << " moved";
          EXPECT_EQ(v_after[i], v_before[i]) << "unsampled row " << k << "'s momentum changed";
          continue;
        }
        const float gi = g[(at - rows.begin()) * 6 + d];
        const float v = 0.9f * v_before[i] + 0.5f * (gi + 0.1f * before[i]);
        EXPECT_FLOAT_EQ(v_after[i], v) << "row " << k;
        EXPECT_FLOAT_EQ(after[i], before[i] - v) << "row " << k;
      }
    }
  }
}

}  // namespace
}  // namespace coco::testing
