// Every setting a careless user can get wrong is refused at start-up with an error
// that names the field (engine/settings.h): solver fields, data sources, and the
// CocoLoss head's fields, the latter also when the net is only built (--dry-run).
#include <gtest/gtest.h>

#include <string>

#include "comm/communicator.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/global_batch.h"
#include "engine/net.h"
#include "engine/settings.h"

namespace coco {
namespace {

const char* kGoodSolver = R"(
  train_data { source: "synthetic:10" batch_size: 8 }
  base_lr: 0.1 momentum: 0.9 weight_decay: 0.0005 lr_policy: "step" gamma: 0.5 stepsize: 10 max_iter: 20
)";

// The error validate_solver raises for the good solver with `extra` merged over it ("" if none).
std::string solver_error(const std::string& extra) {
  proto::SolverParameter p, over;
  parse_text(kGoodSolver, "<solver>", &p);
  parse_text(extra, "<extra>", &over);
  p.MergeFrom(over);
  try {
    validate_solver(p, "s.prototxt");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Settings, AGoodSolverPasses) { EXPECT_EQ(solver_error(""), ""); }

TEST(Settings, EverySolverRuleNamesItsField) {
  const struct {
    const char* extra;
    const char* field;
  } cases[] = {
      {"weight_decay: -0.1", "weight_decay"},
      {"gamma: -0.5", "gamma"},
      {"gamma: nan", "gamma"},
      {"base_lr: inf", "base_lr"},
      {"base_lr: -1", "base_lr"},
      {"momentum: 1", "momentum"},
      {"momentum: -0.1", "momentum"},
      {"clip_gradients: nan", "clip_gradients"},
      {"max_iter: -5", "max_iter"},
      {"warmup_iter: -1", "warmup_iter"},
      {"warmup_start_factor: 2", "warmup_start_factor"},
      {"min_lr_factor: -1", "min_lr_factor"},
      {"average_loss: 0", "average_loss"},
      {"display: -1", "display"},
      {"snapshot: -1", "snapshot"},
      {"snapshot_prefix: \"\"", "snapshot_prefix"},
      {"snapshot_prefix: \"snapshots/\"", "snapshot_prefix"},
      {"test_iter: 10", "test_iter"},
      {"test_interval: 5", "test_interval"},
      {"test_data { source: \"synthetic:10\" } test_iter: -3", "test_iter"},
      {"iter_size: 0", "iter_size"},
      {"iter_size: 5000", "iter_size"},
      {"stepvalue: 5 stepvalue: 3", "stepvalue"},
      {"regularization_type: \"L3\"", "regularization_type"},
      {"train_data { batch_size: 0 }", "batch_size"},
      {"train_data { scale: nan }", "scale"},
      {"train_data { batch_size_per_rank: 8 }", "batch_size_per_rank"},  // beside kGoodSolver's batch_size
      {"test_data { source: \"synthetic:10\" batch_size_per_rank: 0 }", "batch_size_per_rank"},
      {"train_data { mean_value: inf }", "mean_value"},
      {"train_data { synthetic_noise: -1 }", "synthetic_noise"},
      {"test_data { source: \"\" }", "test_data: source"},
  };
  for (const auto& c : cases) {
    const std::string e = solver_error(c.extra);
    EXPECT_NE(e.find(std::string(c.field) + " ="), std::string::npos) << c.extra << " -> '" << e << "'";
    EXPECT_NE(e.find("s.prototxt"), std::string::npos) << e;
    EXPECT_NE(e.find("not allowed"), std::string::npos) << e;
  }
  // The value and the range are both in the message.
  const std::string e = solver_error("weight_decay: -0.1");
  EXPECT_NE(e.find("-0.1"), std::string::npos) << e;
  EXPECT_NE(e.find("[0, 1]"), std::string::npos) << e;
}

// batch_size is the global batch; batch_size_per_rank is multiplied by the ranks.
TEST(Settings, TheGlobalBatchAndTheShareOfARank) {
  proto::DataSourceParameter global, per_rank;
  parse_text("source: \"synthetic:10\" batch_size: 512", "<global>", &global);
  parse_text("source: \"synthetic:10\" batch_size_per_rank: 64", "<per rank>", &per_rank);
  EXPECT_EQ(global_batch_size(global, 1), 512);
  EXPECT_EQ(global_batch_size(global, 8), 512);
  EXPECT_EQ(global_batch_size(per_rank, 1), 64);
  EXPECT_EQ(global_batch_size(per_rank, 8), 512);
  EXPECT_EQ(describe_batch(64, 1), "global batch 64 on one rank");
  EXPECT_EQ(describe_batch(512, 8), "global batch 512 = 8 ranks x 64");
  EXPECT_EQ(describe_batch(10, 3), "global batch 10 over 3 ranks (3 or 4 per rank)");
  EXPECT_EQ(describe_batch(64, 2, 4), "global batch 64 = 2 ranks x 32, 4 batches (iter_size) of 256 samples per update");
  EXPECT_EQ(solver_error("train_data { batch_size_per_rank: 8 }").find("give one of them") != std::string::npos, true);
}

TEST(Settings, PoliciesWithoutTheirParametersAreRefused) {
  proto::SolverParameter p;
  parse_text("base_lr: 0.1 lr_policy: \"multistep\" stepvalue: 10", "<s>", &p);  // gamma unset: lr would drop to 0
  EXPECT_THROW(validate_solver(p, "s"), Error);
  parse_text("base_lr: 0.1 lr_policy: \"poly\" power: -1 max_iter: 10", "<s>", &p);
  EXPECT_THROW(validate_solver(p, "s"), Error);
}

// The error of building a one-layer CocoLoss net with `fields` in coco_loss_param.
std::string head_error(const std::string& fields) {
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 4 dim: 3 }
    input: "y" input_shape { dim: 4 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss" coco_loss_param { )" + fields + " } }",
             "<net>", &np);
  LocalCommunicator comm;
  try {
    Net net(np, Phase::kTrain, &comm, 1);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Settings, CocoLossFieldsAreCheckedWhenTheNetIsBuilt) {
  EXPECT_EQ(head_error("num_output: 5 scale: 4"), "");
  EXPECT_EQ(head_error("num_output: 5 scale: 4 logits_cache_mb: 0"), "");
  const struct {
    const char* fields;
    const char* field;
  } cases[] = {
      {"num_output: 5 scale: 4 logits_cache_mb: -64", "logits_cache_mb"},
      {"num_output: 5 scale: 4 logits_cache_mb: -1", "logits_cache_mb"},
      {"num_output: 5 scale: 4 logits_cache_mb: inf", "logits_cache_mb"},
      {"num_output: 5 scale: 4 logits_cache_mb: nan", "logits_cache_mb"},
      {"num_output: 5 scale: 4 logits_cache_mb: 1e30", "logits_cache_mb"},
      {"num_output: 5 scale: nan", "scale"},
      {"num_output: 5 scale: -2", "scale"},
      {"num_output: 5 auto_scale: true target_probability: 1", "target_probability"},
      {"num_output: 5 auto_scale: true target_probability: nan", "target_probability"},
      {"num_output: 5 scale: 4 margin_type: COSFACE margin: 2", "margin"},
      {"num_output: 5 scale: 4 margin_type: ARCFACE margin: nan", "margin"},
      {"num_output: 5 scale: 4 margin: 0.3", "margin"},  // a margin with margin_type NONE does nothing
      {"num_output: 1 scale: 4", "num_output"},
      {"num_output: 2147483648 scale: 4", "num_output"},  // past int32 class ids
      {"num_output: 5 scale: 4 chunk_size: 4000000000", "chunk_size"},
  };
  for (const auto& c : cases) {
    const std::string e = head_error(c.fields);
    EXPECT_NE(e.find(std::string(c.field) + " ="), std::string::npos) << c.fields << " -> '" << e << "'";
    EXPECT_NE(e.find("'head'"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace coco
