// The training loop end to end on a small synthetic MNIST: a resumed run equals an
// uninterrupted one bit for bit, metrics lines are written, bad flags are clear.
#include "engine/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/common.h"
#include "tests/test_files.h"
#include "tests/error_of.h"

namespace coco::testing {
namespace {

// BatchNorm (running statistics), Scale, PReLU, Dropout (counter-based masks) and
// the COCO head: every kind of state a resumed run must restore.
const char* kSolver = R"(
train_data { source: "mnist:unused" split: "train" batch_size: 8 }
test_data { source: "mnist:unused" split: "test" batch_size: 7 shuffle: false }
test_interval: 4
base_lr: 0.5
momentum: 0.9
weight_decay: 0.001
lr_policy: "cosine"
max_iter: 10
warmup_iter: 2
display: 2
snapshot: 4
random_seed: 5
net_param {
  name: "tiny"
  input: "data" input_shape { dim: 8 dim: 1 dim: 6 dim: 6 }
  input: "label" input_shape { dim: 8 }
  layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
  layer { name: "sc" type: "Scale" bottom: "bn" top: "bn" scale_param { bias_term: true } }
  layer { name: "pr" type: "PReLU" bottom: "bn" top: "bn" }
  layer { name: "drop" type: "Dropout" bottom: "bn" top: "bn" dropout_param { dropout_ratio: 0.25 } }
  layer { name: "head" type: "CocoLoss" bottom: "bn" bottom: "label" top: "loss" top: "accuracy"
          coco_loss_param { num_output: 10 scale: 8 } }
}
)";

// 6x6 images whose bright pixels (every 10th, offset by the label) tell the class.
std::vector<uint8_t> pixels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> p;
  for (size_t i = 0; i < labels.size(); ++i)
    for (int j = 0; j < 36; ++j) p.push_back(j % 10 == labels[i] ? 250 : static_cast<uint8_t>(10 + (i * j) % 30));
  return p;
}

struct Fixture {
  TempDir dir;
  std::string config;
  Fixture() {
    std::vector<uint8_t> labels(30), test_labels(11);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>((i * 7) % 10);
    for (size_t i = 0; i < test_labels.size(); ++i) test_labels[i] = static_cast<uint8_t>(i % 10);
    write_bytes(dir / "train-images-idx3-ubyte", idx_images(30, 6, 6, 0x803, pixels(labels)));
    write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(labels));
    write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(11, 6, 6, 0x803, pixels(test_labels)));
    write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels(test_labels));
    config = dir / "solver.prototxt";
    std::ofstream(config) << kSolver;
  }
  TrainOptions options(int64_t max_iter) const {
    TrainOptions o;
    o.config = config;
    o.data_root = dir.path.string();
    o.max_iter = max_iter;
    o.snapshot_prefix = dir / "snap";
    o.quiet = true;
    return o;
  }
};

std::vector<std::vector<float>> params_of(Trainer& t) {
  std::vector<std::vector<float>> out;
  for (const auto& p : t.train_net().params()) out.push_back(p.blob->data().to_vector());
  proto::SolverState s;
  t.solver().save_state(&s);
  for (const auto& h : s.history()) out.emplace_back(h.data().begin(), h.data().end());
  return out;
}

// Resumes from the snapshot at iteration `from`, trains to `to`, and expects the
// parameters and momentum `want` (an uninterrupted run's) bit for bit.
struct Resumed {
  std::unique_ptr<Trainer> trainer;
  TrainResult result;
};
Resumed resume_and_compare(const Fixture& f, const std::vector<std::vector<float>>& want, int from, int to,
                           Communicator* comm) {
  auto opt = f.options(to);
  opt.resume = f.dir / ("snap_iter_" + std::to_string(from) + ".ckpt");
  Resumed r{std::make_unique<Trainer>(opt, comm), {}};
  r.result = r.trainer->run();
  const auto got = params_of(*r.trainer);
  EXPECT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "parameter/state blob " << i;
  return r;
}

TEST(Trainer, ResumeContinuesBitForBit) {
  Fixture f;
  LocalCommunicator comm;
  Trainer full(f.options(10), &comm);
  const auto r_full = full.run();
  EXPECT_EQ(r_full.iterations, 10);
  const auto want = params_of(full);

  // The full run left snapshots at 4 and 8 (and 10, at the end); continue from 4.
  EXPECT_EQ(r_full.last_snapshot, f.dir / "snap_iter_10.ckpt");
  const Resumed second = resume_and_compare(f, want, 4, 10, &comm);
  const TrainResult& r2 = second.result;
  EXPECT_EQ(r2.iterations, 10);
  EXPECT_EQ(r2.test_loss, r_full.test_loss);
  EXPECT_EQ(r2.test_accuracy, r_full.test_accuracy);
}

// FP16 from a loss scale of 2^24: the head's scaled softmax gradient overflows fp16
// (its target terms reach 2^24 / 8), so the first steps are skipped, each halving
// the scale, until it fits; a window of 2 then doubles it again now and then. A run
// resumed from iteration 4 (inside that) continues bit for bit: the scale and its
// counters travel in the checkpoint.
TEST(Trainer, Fp16LossScaleSkipsOverflowsAndResumesBitForBit) {
  Fixture f;
  std::ofstream(f.config, std::ios::app) << "precision: FP16\nloss_scale: 16777216\nloss_scale_window: 2\n";
  LocalCommunicator comm;
  Trainer full(f.options(10), &comm);
  const auto r_full = full.run();
  EXPECT_GT(r_full.loss_scale_skipped_steps, 2);
  EXPECT_LT(r_full.loss_scale_skipped_steps, 9);
  EXPECT_LT(full.solver().loss_scale(), 16777216.f);
  EXPECT_TRUE(std::isfinite(r_full.last_loss));
  const Resumed second = resume_and_compare(f, params_of(full), 4, 10, &comm);
  EXPECT_EQ(second.trainer->solver().loss_scale(), full.solver().loss_scale());
  EXPECT_EQ(second.result.loss_scale_skipped_steps, r_full.loss_scale_skipped_steps);
}

// A snapshot falls due on a skipped step too: from 2^60 every one of the first
// four steps overflows, and the checkpoint of iteration 4 is still written.
TEST(Trainer, Fp16SkippedStepsStillWriteTheirSnapshot) {
  Fixture f;
  std::ofstream(f.config, std::ios::app) << "precision: FP16\nloss_scale: 1152921504606846976\n";
  LocalCommunicator comm;
  Trainer t(f.options(6), &comm);
  const auto r = t.run();
  EXPECT_GE(r.loss_scale_skipped_steps, 4);
  EXPECT_TRUE(std::filesystem::exists(f.dir / "snap_iter_4.ckpt"));
}

// BF16 trains (the loss falls as in FP32) and is not FP32 (the weights differ).
TEST(Trainer, Bf16TrainsAndDiffersFromFp32) {
  Fixture f;
  LocalCommunicator comm;
  Trainer fp32(f.options(10), &comm);
  const auto r32 = fp32.run();
  std::ofstream(f.config, std::ios::app) << "precision: BF16\n";
  Trainer bf16(f.options(10), &comm);
  const auto r16 = bf16.run();
  EXPECT_EQ(bf16.train_net().precision(), Precision::kBF16);
  EXPECT_NEAR(r16.last_loss, r32.last_loss, 0.05 * r32.last_loss);
  EXPECT_NE(params_of(bf16), params_of(fp32));
}

// --precision overrides the config's, and is checked with the solver's rules.
TEST(Trainer, PrecisionFlagOverridesTheConfig) {
  Fixture f;
  LocalCommunicator comm;
  auto opt = f.options(1);
  opt.precision = "FP16";
  Trainer t(opt, &comm);
  EXPECT_EQ(t.train_net().precision(), Precision::kFP16);
  EXPECT_EQ(t.solver().loss_scale(), 65536.f);
  opt.precision = "FP8";
  EXPECT_NE(error_of([&] { Trainer bad(opt, &comm); }).find("--precision FP8 is not FP32, BF16 or FP16"),
            std::string::npos);
  std::ofstream(f.config, std::ios::app) << "precision: FP16\nloss_scale: 1024\n";
  opt.precision = "BF16";
  EXPECT_NE(error_of([&] { Trainer bad(opt, &comm); }).find("loss_scale = 1024 is not allowed: set only with precision: "
                                                            "FP16"),
            std::string::npos);
}

TEST(Trainer, MetricsLinesAndTheLossFalls) {
  Fixture f;
  LocalCommunicator comm;
  auto opt = f.options(40);
  opt.metrics = f.dir / "metrics.jsonl";
  Trainer t(opt, &comm);
  t.run();
  std::ifstream in(opt.metrics);
  std::string line;
  int train_lines = 0, test_lines = 0;
  double first_loss = -1, last_loss = -1;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("test_loss")) {
      ++test_lines;
      EXPECT_TRUE(j.contains("test_accuracy"));
      EXPECT_GE(j["test_accuracy"].get<double>(), 0.0);
    } else {
      ++train_lines;
      for (const char* k : {"iter", "loss", "lr", "images_per_s"}) EXPECT_TRUE(j.contains(k)) << line;
      if (first_loss < 0) first_loss = j["loss"];
      last_loss = j["loss"];
    }
  }
  EXPECT_EQ(train_lines, 20);  // display every 2 of 40
  EXPECT_EQ(test_lines, 11);   // at 0 (test_initialization), 4, ..., 36, and after the last
  EXPECT_LT(last_loss, first_loss);
}

TEST(Trainer, DryRunAndBadInput) {
  Fixture f;
  LocalCommunicator comm;
  auto opt = f.options(1);
  opt.dry_run = true;
  Trainer dry(opt, &comm);
  const std::string d = dry.describe();
  EXPECT_NE(d.find("CocoLoss"), std::string::npos) << d;
  EXPECT_NE(d.find("(8, 1, 6, 6)"), std::string::npos) << d;

  auto bad = f.options(1);
  bad.data_root = f.dir / "missing";
  try {
    Trainer t(bad, &comm);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  auto corrupt = f.options(1);
  write_bytes(f.dir / "train-labels-idx1-ubyte", idx_labels({1, 2, 3}));
  try {
    Trainer t(corrupt, &comm);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train-labels-idx1-ubyte"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumingPastMaxIterIsAnError) {
  Fixture f;
  LocalCommunicator comm;
  Trainer(f.options(8), &comm).run();
  auto opt = f.options(5);
  opt.resume = f.dir / "snap_iter_8.ckpt";
  const std::string e = error_of([&] { Trainer t(opt, &comm); });
  EXPECT_NE(e.find("past max_iter 5"), std::string::npos) << e;
}

TEST(Trainer, SnapshotPrefixMustNameFiles) {
  Fixture f;
  LocalCommunicator comm;
  auto opt = f.options(2);
  opt.snapshot_prefix = f.dir / "sub/";
  const std::string e = error_of([&] { Trainer t(opt, &comm); });
  EXPECT_NE(e.find("names no file"), std::string::npos) << e;
}

// NaN weights are never written as a checkpoint, whatever --on-nonfinite says: with
// skip, every step is skipped and the final snapshot is refused, naming the layer.
TEST(Trainer, NonFiniteWeightsAreNeverCheckpointed) {
  Fixture f;
  LocalCommunicator comm;
  auto opt = f.options(6);
  opt.skip_nonfinite = true;
  Trainer t(opt, &comm);
  for (const auto& p : t.train_net().params())
    if (p.learnable) {
      p.blob->mutable_data()[0] = NAN;
      break;
    }
  const std::string e = error_of([&] { t.run(); });
  EXPECT_NE(e.find("NaN or Inf, so no checkpoint was written"), std::string::npos) << e;
  EXPECT_NE(e.find("layer '"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(f.dir / "snap_iter_4.ckpt"));
  EXPECT_FALSE(std::filesystem::exists(f.dir / "snap_iter_6.ckpt"));
}

// Two runs on one snapshot prefix: a main file of one with a shard of the other is refused.
TEST(Trainer, CheckpointFilesOfTwoRunsDoNotLoadAsOne) {
  Fixture f;
  LocalCommunicator comm;
  const std::string main = f.dir / "snap_iter_4.ckpt", shard = main + ".shard-0-of-1";
  Trainer(f.options(4), &comm).run();
  ASSERT_TRUE(std::filesystem::exists(shard));
  std::filesystem::copy_file(shard, f.dir / "first_run_shard");
  auto second = f.options(4);
  second.seed = 9;
  Trainer(second, &comm).run();
  // Loads as it is; then with the first run's shard beside the second run's main file.
  auto resume = f.options(6);
  resume.resume = main;
  EXPECT_EQ(error_of([&] { Trainer t(resume, &comm); }), kNoError);
  std::filesystem::copy_file(f.dir / "first_run_shard", shard, std::filesystem::copy_options::overwrite_existing);
  const std::string e = error_of([&] { Trainer t(resume, &comm); });
  EXPECT_NE(e.find("was written by another run"), std::string::npos) << e;
}

}  // namespace
}  // namespace coco::testing
