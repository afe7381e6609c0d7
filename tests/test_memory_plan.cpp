// The memory plan (engine/memory_plan.h) against what a net really holds: the CPU
// tensors of the full net at the planned batch, built and run once.
#include "engine/memory_plan.h"
#include "tests/error_of.h"

#include <gtest/gtest.h>

#include "comm/communicator.h"
#include "engine/config.h"
#include "engine/net.h"
#include "layers/class_sampler.h"

namespace coco {
namespace {

// LeNet++'s backbone (the shipped config's net) with its CocoLoss head at K classes.
proto::NetParameter lenet(int64_t K, const std::string& head_extra = "") {
  TrainConfig cfg = load_train_config(std::string(COCO_SOURCE_DIR) + "/configs/mnist_coco.prototxt");
  proto::NetParameter net = cfg.net;
  auto* head = net.mutable_layer(net.layer_size() - 1)->mutable_coco_loss_param();
  head->set_num_output(static_cast<uint32_t>(K));
  if (!head_extra.empty()) {
    proto::CocoLossParameter extra;
    parse_text(head_extra, "<extra>", &extra);
    head->MergeFrom(extra);
  }
  return net;
}

// The CPU tensor bytes of the net built at `batch`, after one forward and backward.
int64_t measured_bytes(const proto::NetParameter& net, int64_t batch) {
  proto::NetParameter p = net;
  set_input_batch(&p, batch);
  LocalCommunicator comm;
  const int64_t before = live_host_tensor_bytes();
  Net n(p, Phase::kTrain, &comm, 1, "<net>");
  n.set_global_batch(batch);
  n.forward_backward();
  return live_host_tensor_bytes() - before;
}

// What the plan says those tensors are: everything but the momentum (the solver's)
// and the program itself.
int64_t planned_net_bytes(const MemoryPlan& p) {
  int64_t b = p.params + p.grads + p.activations;
  for (const auto& h : p.heads) b += h.bytes() - h.momentum;
  return b;
}

TEST(MemoryPlan, MatchesTheTensorsOfTheNetItPlans) {
  // Batches the plan never built (it builds 1 and 3), a head of 20,000 classes whose
  // shard, cache and scratch it works out from formulas, with and without sampling.
  for (const std::string extra : {"", "sample_rate: 0.1", "logits_cache_mb: 0", "softmax_shift: RUNNING_MAX"})
    for (int64_t batch : {16, 40}) {
      SCOPED_TRACE(extra + " batch " + std::to_string(batch));
      const proto::NetParameter net = lenet(20000, extra);
      const MemoryPlan plan = plan_memory(net, "<net>", 1, batch, 1);
      const double want = static_cast<double>(measured_bytes(net, batch));
      const double got = static_cast<double>(planned_net_bytes(plan));
      EXPECT_NEAR(got, want, 0.02 * want) << describe_memory_plan(plan);
    }
}

// A rank holds at most 2^24 classes (layers/coco_head.h): the plan refuses what the
// run would, and 40 million classes fit 3 ranks.
TEST(MemoryPlan, RefusesAShardPastTwoToThe24thClasses) {
  const std::string e = testing::error_of([] { plan_memory(lenet(40'000'000, ""), "<net>", 2, 1024, 1); });
  EXPECT_NE(e.find("40000000 classes on 2 rank(s) give rank 0 20000000 classes; one rank holds at most 16777216: "
                   "run on at least 3 ranks"),
            std::string::npos)
      << e;
  EXPECT_EQ(plan_memory(lenet(40'000'000, ""), "<net>", 3, 1024, 1).heads[0].Kr, 13'333'334);
}

TEST(MemoryPlan, PlansTheLargestRankOfAnyCountWithoutBuildingIt) {
  // 10 million classes over 8 ranks: rank 0's shard of 1,250,000 x 3 (LeNet++'s
  // feature) is planned, not built (the plan's own builds hold two classes).
  const int64_t before = live_host_tensor_bytes();
  const MemoryPlan p = plan_memory(lenet(10'000'000, "sample_rate: 0.1"), "<net>", 8, 1024, 1);
  EXPECT_EQ(live_host_tensor_bytes(), before);
  ASSERT_EQ(p.heads.size(), 1u);
  const HeadMemoryPlan& h = p.heads[0];
  EXPECT_EQ(p.batch, 128);
  EXPECT_EQ(h.Kr, 1'250'000);
  EXPECT_EQ(h.D, 3);
  EXPECT_EQ(h.centroids, 1'250'000 * 3 * 4);
  EXPECT_EQ(h.momentum, h.centroids);
  EXPECT_EQ(h.computed, 125'000);
  EXPECT_EQ(h.gradient, 125'000 * 3 * 4);
  // Traffic per step: the design's (docs/DESIGN.md, "The distributed head"): M = 1024
  // rows of D, the fixed shift's 2M plus the accuracy top's 2M, the feature gradient.
  EXPECT_EQ(h.all_gather, (1024 * 3 + 1024) * 4);
  EXPECT_EQ(h.all_reduce, 4 * 1024 * 4);
  EXPECT_EQ(h.reduce_scatter, 1024 * 3 * 4);
  const std::string text = describe_memory_plan(p);
  EXPECT_NE(text.find("memory plan, rank 0 of 8 (128 of a global batch of 1024)"), std::string::npos) << text;
  EXPECT_NE(text.find("10000000 classes, this rank's 1250000 x 3, at most 125000 computed"), std::string::npos)
      << text;
  EXPECT_NE(p.layers.find("(128, 3)"), std::string::npos) << p.layers;
}

}  // namespace
}  // namespace coco
