// Rank-count invariance: two training steps of LeNet++ with the COCO head on N ranks
// (data-parallel backbone, centroids sharded 10 classes over N) equal the same steps
// in one process with the same global batch -- loss, test metrics and every updated
// parameter, to float tolerance. The global batch (10) and the class count (10) do
// not divide by 3 or 4, so slices and shards are unequal. Then a checkpoint saved
// by the N-rank run resumes in one process (re-sharded) and matches the 1-rank run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "comm/comm_timeout.h"
#include "comm/mpi_communicator.h"
#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/logging.h"
#include "engine/math.h"
#include "engine/trainer.h"
#include "layers/coco_loss_layer.h"
#include "tests/error_of.h"
#include "tests/test_files.h"

namespace coco {
namespace {

MpiCommunicator* g_comm = nullptr;
std::string g_dir;  // shared by all ranks

std::string solver_text(float clip_gradients = 0, int batch_size = 10, int iter_size = 1, float sample_rate = 1) {
  // The shipped config's net, with the data, schedule and checkpoints of this test.
  TrainConfig cfg = load_train_config(std::string(COCO_SOURCE_DIR) + "/configs/mnist_coco.prototxt");
  proto::SolverParameter s = cfg.solver;
  s.mutable_train_data()->set_batch_size(batch_size);
  s.set_iter_size(iter_size);
  s.mutable_test_data()->set_batch_size(5);
  s.set_test_interval(1000);
  s.set_test_initialization(false);
  s.set_base_lr(0.05f);
  s.set_lr_policy("fixed");  // the same rate whatever max_iter, so runs of 2 and 3 steps compare
  s.set_warmup_iter(0);
  s.set_display(1);
  s.set_snapshot(0);
  s.set_max_iter(2);
  if (clip_gradients > 0) {
    // Clipping on in every step, with a rate at which the clipped step is large
    // enough to show a wrong clip factor.
    s.set_clip_gradients(clip_gradients);
    s.set_base_lr(20.f);
  }
  s.mutable_net_param()->mutable_layer()->Mutable(s.net_param().layer_size() - 1)
      ->mutable_coco_loss_param()->set_chunk_size(3);  // several chunks per shard
  if (sample_rate < 1)
    s.mutable_net_param()->mutable_layer()->Mutable(s.net_param().layer_size() - 1)
        ->mutable_coco_loss_param()->set_sample_rate(sample_rate);
  return to_text(s);
}

struct RunOutput {
  TrainResult result;
  std::vector<ParamInfo> params;
};

RunOutput train(Communicator* comm, int64_t max_iter, const std::string& prefix, const std::string& resume = "",
                const std::string& solver = "solver.prototxt") {
  TrainOptions o;
  o.config = g_dir + "/" + solver;
  o.data_root = g_dir;
  o.max_iter = max_iter;
  o.snapshot_prefix = prefix;
  o.resume = resume;
  o.quiet = true;
  auto t = std::make_unique<Trainer>(o, comm);
  RunOutput out;
  out.result = t->run();
  // Keep the parameter blobs alive beyond the trainer.
  out.params = t->train_net().params();
  return out;
}

void expect_close(const Blob& got, const Blob& want, int64_t want_offset, const std::string& what) {
  for (int64_t i = 0; i < got.count(); ++i) {
    const float w = want.cdata()[want_offset + i];
    ASSERT_NEAR(got.cdata()[i], w, 2e-4 * std::max(1.f, std::fabs(w))) << what << " element " << i;
  }
}

void expect_same_params(const std::vector<ParamInfo>& got, const std::vector<ParamInfo>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string what = got[i].layer + " param " + std::to_string(got[i].index);
    // A sharded blob holds rows [row_start, row_start + rows) of the 1-rank blob.
    const int64_t offset = got[i].sharded ? got[i].row_start * got[i].blob->count(1) : 0;
    if (!got[i].sharded) {
      ASSERT_EQ(got[i].blob->shape(), want[i].blob->shape()) << what;
    }
    expect_close(*got[i].blob, *want[i].blob, offset, what);
  }
}

TEST(MpiTraining, NRanksEqualOneRank) {
  LocalCommunicator local;
  const RunOutput one = train(&local, 2, g_dir + "/one_r" + std::to_string(g_comm->rank()));
  const RunOutput many = train(g_comm, 2, g_dir + "/many");
  EXPECT_NEAR(many.result.last_loss, one.result.last_loss, 1e-5 * std::max(1.0, std::fabs(one.result.last_loss)));
  EXPECT_NEAR(many.result.test_loss, one.result.test_loss, 1e-4);
  EXPECT_EQ(many.result.test_accuracy, one.result.test_accuracy);
  expect_same_params(many.params, one.params);
  // The centroids really are sharded: 10 classes over N ranks.
  for (const auto& p : many.params)
    if (p.sharded) {
      EXPECT_EQ(p.blob->shape(0), shard_range(10, g_comm->rank(), g_comm->size()).count);
    }

  // Resume the N-rank checkpoint in one process (all shards read and joined) and
  // continue to iteration 3: the same as three 1-rank iterations.
  g_comm->barrier();
  const RunOutput resumed = train(&local, 3, g_dir + "/resumed_r" + std::to_string(g_comm->rank()),
                                  g_dir + "/many_iter_2.ckpt");
  const RunOutput three = train(&local, 3, g_dir + "/three_r" + std::to_string(g_comm->rank()));
  expect_same_params(resumed.params, three.params);
}

// Ranks started with different settings (MPMD command lines) stop together at
// start-up with one error naming the setting and the rank, instead of hanging in a
// mismatched collective or training on with exit 0.
TEST(MpiTraining, RanksStartedWithDifferentSettingsStopNamingTheSetting) {
  const int last = g_comm->size() - 1;
  TrainOptions o;
  o.config = g_dir + "/solver.prototxt";
  o.data_root = g_dir;
  o.quiet = true;
  o.snapshot_prefix = g_dir + "/disagree";
  TrainOptions iters = o;
  iters.max_iter = g_comm->rank() == last ? 3 : 2;
  const std::string e1 = testing::error_of([&] { Trainer t(iters, g_comm); });
  EXPECT_NE(e1.find("max_iter (--max-iter) differs on rank " + std::to_string(last)), std::string::npos) << e1;
  TrainOptions batch = o;
  batch.batch_size = g_comm->rank() == last ? 12 : 10;
  const std::string e2 = testing::error_of([&] { Trainer t(batch, g_comm); });
  EXPECT_NE(e2.find("the global batch size (--batch-size, --batch-size-per-rank) differs on rank " + std::to_string(last)),
            std::string::npos) << e2;
  EXPECT_EQ(e2.find("max_iter"), std::string::npos) << e2;
  // The same settings still train.
  EXPECT_EQ(testing::error_of([&] { Trainer t(o, g_comm); }), testing::kNoError);
}

// Clipping scales the step by clip / |g| with |g| the norm of the whole gradient:
// the replicated part (the same on every rank after the all-reduce) and every
// rank's centroid shard. A per-rank norm would give each replica its own factor.
TEST(MpiTraining, ClippingByTheGlobalNormKeepsNRanksEqualToOneRank) {
  LocalCommunicator local;
  const RunOutput one =
      train(&local, 2, g_dir + "/clip_one_r" + std::to_string(g_comm->rank()), "", "solver_clip.prototxt");
  const RunOutput many = train(g_comm, 2, g_dir + "/clip_many", "", "solver_clip.prototxt");
  EXPECT_NEAR(many.result.last_loss, one.result.last_loss, 1e-5 * std::max(1.0, std::fabs(one.result.last_loss)));
  expect_same_params(many.params, one.params);
}

// FP16 from a loss scale of 2^16: on this dense texture the first steps' weight
// gradients overflow fp16 on some rank, and every rank skips them together, halving
// the scale alike; the steps that pass equal one process's. Rounding to fp16 is
// elementwise, so N ranks see the same operands as one.
TEST(MpiTraining, Fp16LossScaleSkipsTogetherAndNRanksEqualOneRank) {
  LocalCommunicator local;
  const RunOutput one =
      train(&local, 5, g_dir + "/fp16_one_r" + std::to_string(g_comm->rank()), "", "solver_fp16.prototxt");
  const RunOutput many = train(g_comm, 5, g_dir + "/fp16_many", "", "solver_fp16.prototxt");
  EXPECT_GT(one.result.loss_scale_skipped_steps, 0);
  EXPECT_LT(one.result.loss_scale_skipped_steps, 5);
  EXPECT_EQ(many.result.loss_scale_skipped_steps, one.result.loss_scale_skipped_steps);
  EXPECT_NEAR(many.result.last_loss, one.result.last_loss, 1e-4 * std::max(1.0, std::fabs(one.result.last_loss)));
  expect_same_params(many.params, one.params);
}

// Gradient accumulation: two batches of 5 per update (iter_size 2) equal one batch
// of 10, in one process and on N ranks (the sharded head included: each batch's
// loss is its own mean, the update takes the mean of the two), with clipping by the
// mean gradient's norm too. Batch 5 over 3 or 4 ranks leaves unequal slices.
TEST(MpiTraining, GradientAccumulationEqualsOneLargerBatch) {
  LocalCommunicator local;
  const std::string me = std::to_string(g_comm->rank());
  for (const std::string clip : {"", "_clip"}) {
    SCOPED_TRACE(clip.empty() ? "no clipping" : "clipping");
    const RunOutput big = train(&local, 2, g_dir + "/acc_big" + clip + me, "", "solver" + clip + ".prototxt");
    const std::string accumulate = "solver_accumulate" + clip + ".prototxt";
    const RunOutput one = train(&local, 2, g_dir + "/acc_one" + clip + me, "", accumulate);
    const RunOutput many = train(g_comm, 2, g_dir + "/acc_many" + clip, "", accumulate);
    const double tol = 1e-5 * std::max(1.0, std::fabs(big.result.last_loss));
    EXPECT_NEAR(one.result.last_loss, big.result.last_loss, tol);
    EXPECT_NEAR(many.result.last_loss, big.result.last_loss, tol);
    expect_same_params(one.params, big.params);
    expect_same_params(many.params, big.params);
  }
}

// A NaN on one rank only (its replica of conv1's weights poisoned after the start-up
// broadcast): the ranks agree that each step is not finite, every rank runs the whole
// diagnostic re-run (so the head's collectives still pair up), and they skip -- or
// stop -- together, the finding rank naming the layer and the others naming that rank.
// Before, rank 1's scan threw before the head while its peers entered the head's
// collectives, which then paired across iterations and hung.
std::unique_ptr<Trainer> trainer_poisoned_on_rank_1(bool skip) {
  TrainOptions o;
  o.config = g_dir + "/solver_no_final_snapshot.prototxt";
  o.data_root = g_dir;
  o.quiet = true;
  o.max_iter = 3;
  o.snapshot_prefix = g_dir + (skip ? "/poisoned_skip" : "/poisoned_stop");
  o.skip_nonfinite = skip;
  auto t = std::make_unique<Trainer>(o, g_comm);
  if (g_comm->rank() == 1) t->train_net().params()[0].blob->mutable_data()[0] = std::nanf("");
  return t;
}

TEST(MpiTraining, NonFiniteOnOneRankIsSkippedByEveryRankTogether) {
  const auto t = trainer_poisoned_on_rank_1(true);
  const TrainResult r = t->run();
  EXPECT_EQ(r.skipped_steps, 3);
}

TEST(MpiTraining, NonFiniteOnOneRankStopsEveryRankNamingTheRankAndLayer) {
  const auto t = trainer_poisoned_on_rank_1(false);
  const std::string e = testing::error_of([&] { t->run(); });
  EXPECT_NE(e.find("iteration 0: the loss"), std::string::npos) << e;
  if (g_comm->rank() == 1) {
    EXPECT_NE(e.find("rank 1: debug: iteration 0, forward of layer 'conv1'"), std::string::npos) << e;
  } else {
    EXPECT_NE(e.find("rank 1's per-layer scan found it first"), std::string::npos) << e;
  }
  // Every rank is still in step: one more collective pairs up.
  float one = 1;
  g_comm->all_reduce(&one, 1, ReduceOp::kSum);
  EXPECT_EQ(one, g_comm->size());
}

TEST(MpiTraining, CheckpointOfFourRanksResumesOnThree) {
  if (g_comm->size() != 4) GTEST_SKIP() << "needs exactly 4 ranks (runs in mpi.training.np4)";
  // Save with 4 ranks (centroid rows 3/3/2/2) ...
  train(g_comm, 2, g_dir + "/four");
  // ... resume with ranks 0-2 (rows 4/3/3): each reads the shards overlapping its rows.
  MpiCommunicator three_ranks(*g_comm, g_comm->rank() < 3);
  if (!three_ranks.valid()) return;
  ASSERT_EQ(three_ranks.size(), 3);
  const RunOutput resumed = train(&three_ranks, 3, g_dir + "/three_from_four", g_dir + "/four_iter_2.ckpt");
  LocalCommunicator local;
  const RunOutput ref = train(&local, 3, g_dir + "/ref3_r" + std::to_string(g_comm->rank()));
  expect_same_params(resumed.params, ref.params);
  for (const auto& p : resumed.params)
    if (p.sharded) {
      EXPECT_EQ(p.blob->shape(0), shard_range(10, three_ranks.rank(), 3).count);
    }
}

// One forward+backward of the head alone on the N ranks; returns the net's loss and
// checks its traffic: all-gather M*D features, M labels and N batch sizes;
// all-reduce 2M in one call (the fixed shift) or 3M in two (MAX of the row maxima
// first); reduce-scatter M*D (docs/DESIGN.md, "The distributed head").
float head_step_traffic(const std::string& shift, float scale, bool want_fixed) {
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 1 dim: 6 }
    input: "y" input_shape { dim: 1 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss"
            coco_loss_param { num_output: 11 chunk_size: 2 scale: )" + std::to_string(scale) +
                 " softmax_shift: " + shift + " } }",
             "<net>", &np);
  const int n = g_comm->size(), me = g_comm->rank();
  const int64_t mine = 2 + me;  // unequal local batches
  set_input_batch(&np, mine);
  Net net(np, Phase::kTrain, g_comm, 3);
  for (int64_t i = 0; i < mine * 6; ++i) net.input_blobs()[0]->mutable_data()[i] = std::sin(0.3f * i + me);
  for (int64_t i = 0; i < mine; ++i) net.input_blobs()[1]->mutable_data()[i] = static_cast<float>((i + me) % 11);
  int64_t M = 0;
  for (int r = 0; r < n; ++r) M += 2 + r;
  g_comm->reset_stats();
  net.clear_param_diffs();
  const float loss = net.forward_backward();
  const auto& head = dynamic_cast<const CocoLossLayer&>(net.layer(net.num_layers() - 1));
  EXPECT_EQ(head.used_fixed_shift(), want_fixed) << shift << " at scale " << scale;
  EXPECT_EQ(g_comm->stats(Collective::kAllGather).bytes, 4 * (M * 6 + M + n));
  EXPECT_EQ(g_comm->stats(Collective::kAllGather).calls, 3);
  EXPECT_EQ(g_comm->stats(Collective::kReduceScatter).bytes, 4 * M * 6);
  EXPECT_EQ(g_comm->stats(Collective::kReduceScatter).calls, 1);
  const bool fixed_first = shift == "AUTO";  // a fallback did both
  EXPECT_EQ(g_comm->stats(Collective::kAllReduce).bytes, 4 * M * ((fixed_first ? 2 : 0) + (want_fixed ? 0 : 3)));
  EXPECT_EQ(g_comm->stats(Collective::kAllReduce).calls, (fixed_first ? 1 : 0) + (want_fixed ? 0 : 2));
  return loss;
}

TEST(MpiTraining, CommTrafficOfTheHeadFollowsTheDesign) {
  const float fixed = head_step_traffic("AUTO", 4, true);
  const float running = head_step_traffic("RUNNING_MAX", 4, false);
  EXPECT_NEAR(fixed, running, 1e-6 * std::fabs(running));
}

TEST(MpiTraining, FixedShiftFallbackIsTakenByEveryRankTogether) {
  // At scale 1000 some row's cosines are all far enough below 1 that its sum with the
  // fixed shift is below the safe bound; the sums are global, so every rank sees it
  // and redoes the step with the running maximum (a rank that did not would leave
  // the others waiting in the MAX all-reduce, and the timeout would fail the test).
  const float fallback = head_step_traffic("AUTO", 1000, false);
  const float running = head_step_traffic("RUNNING_MAX", 1000, false);
  EXPECT_EQ(fallback, running);
}

// Class sampling on N ranks equals one process computing the full head over the
// same classes: every rank draws its own rows (its classes of the batch plus
// uniformly drawn others); their union U, taken as the whole class set of a 1-rank
// head (sample_rate 1) with the labels renumbered into U, gives the same loss, the
// same feature gradient and, row for row, the same centroid gradient. 11 classes
// over 2-4 ranks and unequal local batches: nothing divides.
TEST(MpiTraining, SampledHeadOnNRanksEqualsOneRankOverTheSameClasses) {
  const int n = g_comm->size(), me = g_comm->rank();
  const int64_t K = 11, D = 6, mine = 2 + me;
  const auto head_net = [&](int64_t classes, float rate) {
    proto::NetParameter np;
    parse_text(R"(
      input: "x" input_shape { dim: 1 dim: 6 }
      input: "y" input_shape { dim: 1 }
      layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss"
              coco_loss_param { num_output: )" + std::to_string(classes) + " chunk_size: 2 scale: 4 sample_rate: " +
                   std::to_string(rate) + " } }",
               "<net>", &np);
    return np;
  };
  proto::NetParameter np = head_net(K, 0.4f);
  set_input_batch(&np, mine);
  Net net(np, Phase::kTrain, g_comm, 3);
  net.set_iter(6);
  std::vector<float> x(mine * D), y(mine);
  for (int64_t i = 0; i < mine * D; ++i) x[i] = std::sin(0.7f * i + me);
  for (int64_t i = 0; i < mine; ++i) y[i] = static_cast<float>((3 * i + 5 * me) % K);
  std::copy(x.begin(), x.end(), net.input_blobs()[0]->mutable_data());
  std::copy(y.begin(), y.end(), net.input_blobs()[1]->mutable_data());
  net.clear_param_diffs();
  const double loss = net.forward_backward();
  const auto& head = dynamic_cast<const CocoLossLayer&>(net.layer(net.num_layers() - 1));

  // Every rank's rows (global classes, ascending in rank order) and their gradient.
  float S = static_cast<float>(head.sampled_rows().size());
  std::vector<float> counts(n);
  g_comm->all_gather(&S, counts.data(), std::vector<int64_t>(n, 1));
  std::vector<int64_t> per_rank(n), per_rank_d(n), rows_per_rank(n), rows_d(n);
  int64_t total = 0, M = 0;
  for (int r = 0; r < n; ++r) {
    per_rank[r] = static_cast<int64_t>(counts[r]);
    per_rank_d[r] = per_rank[r] * D;
    rows_per_rank[r] = 2 + r;
    rows_d[r] = (2 + r) * D;
    total += per_rank[r];
    M += 2 + r;
  }
  std::vector<float> my_classes;
  for (int64_t k : head.sampled_rows()) my_classes.push_back(static_cast<float>(head.shard().start + k));
  std::vector<float> classes(total), grads(total * D), all_x(M * D), all_y(M), all_dx(M * D);
  g_comm->all_gather(my_classes.data(), classes.data(), per_rank);
  g_comm->all_gather(head.row_gradient(0).grad->data(), grads.data(), per_rank_d);
  g_comm->all_gather(x.data(), all_x.data(), rows_d);
  g_comm->all_gather(y.data(), all_y.data(), rows_per_rank);
  g_comm->all_gather(net.input_blobs()[0]->cdiff(), all_dx.data(), rows_d);
  ASSERT_TRUE(std::is_sorted(classes.begin(), classes.end()));

  // One process: the full head over U, its centroids the same rows of a 1-rank init.
  LocalCommunicator local;
  proto::NetParameter full_np = head_net(K, 1);
  set_input_batch(&full_np, M);
  Net full(full_np, Phase::kTrain, &local, 3);  // same seed: the same initial rows
  proto::NetParameter sub_np = head_net(total, 1);
  set_input_batch(&sub_np, M);
  Net sub(sub_np, Phase::kTrain, &local, 3);
  float* c = sub.params()[0].blob->mutable_data();
  for (int64_t j = 0; j < total; ++j)
    std::copy_n(full.params()[0].blob->cdata() + static_cast<int64_t>(classes[j]) * D, D, c + j * D);
  std::copy(all_x.begin(), all_x.end(), sub.input_blobs()[0]->mutable_data());
  for (int64_t i = 0; i < M; ++i)
    sub.input_blobs()[1]->mutable_data()[i] =
        static_cast<float>(std::find(classes.begin(), classes.end(), all_y[i]) - classes.begin());
  sub.clear_param_diffs();
  const double want = sub.forward_backward();
  EXPECT_NEAR(loss, want, 2e-6 * std::max(1.0, std::fabs(want)));
  for (int64_t i = 0; i < M * D; ++i) EXPECT_NEAR(all_dx[i], sub.input_blobs()[0]->cdiff()[i], 2e-6) << "dx " << i;
  for (int64_t i = 0; i < total * D; ++i) EXPECT_NEAR(grads[i], sub.params()[0].blob->cdiff()[i], 2e-6) << "dc " << i;
}

// Class ids past float's 2^24 reach their own centroids. K = 2^24 + 3 over the N
// ranks (each shard within 2^24), labels as int32 ids, among them the top class and
// 2^24 + 1, which float32 would read as 2^24. Every centroid points at (-1, 0) but
// five, each its own direction; each sample's feature points at its label's
// centroid. The loss equals the closed form over all K classes, in double, and
// every sample is classified right: with a label read as a neighbour the target
// logit would be another class's and the accuracy would fall.
TEST(MpiTraining, ClassIdsPastTwoToThe24thReachTheirOwnCentroids) {
  const int me = g_comm->rank(), n = g_comm->size();
  const int64_t K = (int64_t{1} << 24) + 3, mine = 2 + me;
  const double alpha = 8;
  const std::vector<int64_t> special{5, K - 3, K - 2, K - 1, 9000001};  // K - 2 = 2^24 + 1
  const auto angle = [](size_t j) { return 0.9 * static_cast<double>(j + 1); };  // none near pi
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 1 dim: 2 }
    input: "y" input_shape { dim: 1 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss" top: "accuracy"
            coco_loss_param { num_output: 16777219 scale: 8
                              centroid_filler { type: "constant" value: 0 } } })",
             "<net>", &np);
  set_input_batch(&np, mine);
  Net net(np, Phase::kTest, g_comm, 1);
  const auto& head = dynamic_cast<const CocoLossLayer&>(net.layer(net.num_layers() - 1));
  const ShardRange shard = head.shard();
  ASSERT_LE(shard.count, int64_t{1} << 24);
  float* c = net.params()[0].blob->mutable_data();
  for (int64_t k = 0; k < shard.count; ++k) {
    c[2 * k] = -1.f;
    c[2 * k + 1] = 0.f;
  }
  for (size_t j = 0; j < special.size(); ++j) {
    const int64_t k = special[j] - shard.start;
    if (k < 0 || k >= shard.count) continue;
    c[2 * k] = static_cast<float>(std::cos(angle(j)));
    c[2 * k + 1] = static_cast<float>(std::sin(angle(j)));
  }
  Blob* y = net.input_blobs()[1];
  y->set_element_type(ElementType::kInt32);
  float* x = net.input_blobs()[0]->mutable_data();
  for (int64_t i = 0; i < mine; ++i) {
    const size_t j = static_cast<size_t>(i + me) % special.size();
    y->mutable_data_int32()[i] = static_cast<int32_t>(special[j]);
    x[2 * i] = static_cast<float>(std::cos(angle(j)));
    x[2 * i + 1] = static_cast<float>(std::sin(angle(j)));
  }
  net.forward();
  // Every sample's logits: alpha at its own class, alpha cos(theta - theta_s) at
  // the other four, alpha cos(theta - pi) at the K - 5 others.
  double want = 0;
  int64_t M = 0;
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < 2 + r; ++i, ++M) {
      const double t = angle(static_cast<size_t>(i + r) % special.size());
      double sum = static_cast<double>(K - 5) * std::exp(alpha * std::cos(t - std::acos(-1.0)));
      for (size_t j = 0; j < special.size(); ++j) sum += std::exp(alpha * std::cos(t - angle(j)));
      want += std::log(sum) - alpha;
    }
  want /= static_cast<double>(M);
  EXPECT_NEAR(net.blob("loss")->cdata()[0], want, 1e-4 * want);
  EXPECT_EQ(net.blob("accuracy")->cdata()[0], 1.f);
}

// Sampled training on N ranks resumes exactly: the draw is a function of (seed,
// iteration, rank), the momentum travels with each shard, so 2 iterations + resume
// to 3 equal 3 iterations bit for bit. iter_size > 1 with sampling is refused.
TEST(MpiTraining, SampledTrainingResumesExactlyAndRefusesAccumulation) {
  const RunOutput three = train(g_comm, 3, g_dir + "/sampled3", "", "solver_sampled.prototxt");
  const RunOutput two = train(g_comm, 2, g_dir + "/sampled2", "", "solver_sampled.prototxt");
  g_comm->barrier();
  const RunOutput resumed =
      train(g_comm, 3, g_dir + "/sampled2r", g_dir + "/sampled2_iter_2.ckpt", "solver_sampled.prototxt");
  ASSERT_EQ(resumed.params.size(), three.params.size());
  for (size_t i = 0; i < three.params.size(); ++i)
    EXPECT_EQ(resumed.params[i].blob->data().to_vector(), three.params[i].blob->data().to_vector())
        << three.params[i].layer << " param " << three.params[i].index;
  // Sampling changed the run: the centroids differ from the full head's.
  const RunOutput full = train(g_comm, 3, g_dir + "/unsampled3", "", "solver.prototxt");
  EXPECT_NE(full.params.back().blob->data().to_vector(), three.params.back().blob->data().to_vector());
  TrainOptions o;
  o.config = g_dir + "/solver_sampled_accumulate.prototxt";
  o.data_root = g_dir;
  o.quiet = true;
  const std::string e = testing::error_of([&] { Trainer t(o, g_comm); });
  EXPECT_NE(e.find("iter_size = 2 with layer 'coco' sampling classes"), std::string::npos) << e;
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
    coco::init_logging(comm.rank(), comm.size());
    spdlog::set_level(spdlog::level::warn);
    coco::set_num_threads(1);
    coco::set_comm_timeout_s(120);  // a test that leaves ranks out of step fails, not hangs
    // Rank 0 makes the data folder; every rank learns its name from rank 0's pid.
    float pid = static_cast<float>(::getpid());
    comm.broadcast(&pid, 1, 0);
    coco::g_dir = (std::filesystem::temp_directory_path() /
                   ("coco_mpi_training_" + std::to_string(static_cast<int64_t>(pid)))).string();
    if (comm.rank() == 0) {
      std::filesystem::remove_all(coco::g_dir);
      std::filesystem::create_directories(coco::g_dir);
      std::vector<uint8_t> train(40), test(13);
      for (size_t i = 0; i < train.size(); ++i) train[i] = static_cast<uint8_t>((i * 3) % 10);
      for (size_t i = 0; i < test.size(); ++i) test[i] = static_cast<uint8_t>(i % 10);
      using namespace coco::testing;
      write_bytes(coco::g_dir + "/train-images-idx3-ubyte", idx_images(40, 28, 28));
      write_bytes(coco::g_dir + "/train-labels-idx1-ubyte", idx_labels(train));
      write_bytes(coco::g_dir + "/t10k-images-idx3-ubyte", idx_images(13, 28, 28));
      write_bytes(coco::g_dir + "/t10k-labels-idx1-ubyte", idx_labels(test));
      std::ofstream(coco::g_dir + "/solver.prototxt") << coco::solver_text();
      std::ofstream(coco::g_dir + "/solver_clip.prototxt") << coco::solver_text(0.01f);
      // A tenth of the rate: at 0.05 this texture's activations leave fp16's range.
      std::string fp16 = coco::solver_text();
      fp16.replace(fp16.find("base_lr: 0.05"), 13, "base_lr: 0.005");
      std::ofstream(coco::g_dir + "/solver_fp16.prototxt")
          << fp16 << "precision: FP16\nloss_scale: 65536\nloss_scale_window: 2\n";
      std::ofstream(coco::g_dir + "/solver_accumulate.prototxt") << coco::solver_text(0, 5, 2);
      std::ofstream(coco::g_dir + "/solver_accumulate_clip.prototxt") << coco::solver_text(0.01f, 5, 2);
      std::ofstream(coco::g_dir + "/solver_sampled.prototxt") << coco::solver_text(0, 10, 1, 0.5f);
      std::ofstream(coco::g_dir + "/solver_sampled_accumulate.prototxt") << coco::solver_text(0, 5, 2, 0.5f);
      std::ofstream(coco::g_dir + "/solver_no_final_snapshot.prototxt")
          << coco::solver_text() << "snapshot_after_train: false\n";
    }
    comm.barrier();
    rc = RUN_ALL_TESTS();
    comm.barrier();
    if (comm.rank() == 0) std::filesystem::remove_all(coco::g_dir);
  }
  return rc;
}
