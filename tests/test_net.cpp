// Net construction: splits, in-place layers, phases, losses, outputs, and clear
// errors for configs that cannot work.
#include <gtest/gtest.h>

#include "engine/common.h"
#include "engine/config.h"
#include "engine/net.h"

namespace coco {
namespace {

proto::NetParameter parse_net(const std::string& text) {
  proto::NetParameter n;
  parse_text(text, "<net>", &n);
  return n;
}

std::string build_error(const std::string& text, Phase phase = Phase::kTrain) {
  LocalCommunicator comm;
  try {
    Net net(parse_net(text), phase, &comm, 1, "t.prototxt");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

const char* kNet = R"(
  name: "n"
  input: "x" input_dim: 3 input_dim: 2 input_dim: 1 input_dim: 1
  input: "y" input_dim: 3 input_dim: 1 input_dim: 1 input_dim: 1
  layer { name: "r1" type: "ReLU" bottom: "x" top: "x" }
  layer { name: "r2" type: "ReLU" bottom: "x" top: "a" }
  layer { name: "r3" type: "ReLU" bottom: "x" top: "b" relu_param { negative_slope: 0.5 } }
  layer { name: "ha" type: "CocoLoss" bottom: "a" bottom: "y" top: "la" coco_loss_param { num_output: 4 scale: 2 } }
  layer { name: "hb" type: "CocoLoss" bottom: "b" bottom: "y" top: "lb" top: "acc" loss_weight: 0.5
          coco_loss_param { num_output: 4 scale: 3 } include { phase: TRAIN } }
)";

TEST(Net, InsertsSplitsWhereABlobFeedsSeveralLayers) {
  const auto p = prepare_net(parse_net(kNet), Phase::kTrain, "t");
  std::vector<std::string> types;
  for (const auto& l : p.layer()) types.push_back(l.type());
  // input, r1, split(x after r1), r2, r3, split(y), ha, hb -- y feeds both heads.
  EXPECT_EQ(types, (std::vector<std::string>{"Input", "Split", "ReLU", "Split", "ReLU", "ReLU", "CocoLoss", "CocoLoss"}));
  EXPECT_EQ(p.layer(1).bottom(0), "y");
  EXPECT_EQ(p.layer(3).bottom(0), "x");
  EXPECT_EQ(p.layer(3).top(0), "x_r1_0_split_0");
  EXPECT_EQ(p.layer(4).bottom(0), "x_r1_0_split_0");
}

TEST(Net, LossesOutputsAndBackwardPropagation) {
  LocalCommunicator comm;
  Net net(parse_net(kNet), Phase::kTrain, &comm, 1, "t");
  EXPECT_EQ(net.output_names(), (std::vector<std::string>{"la", "lb", "acc"}));
  EXPECT_EQ(net.output_weights(), (std::vector<float>{1.f, 0.5f, 0.f}));
  EXPECT_EQ(net.output_is_accuracy(), (std::vector<bool>{false, false, true}));
  for (int i = 0; i < 6; ++i) net.input_blobs()[0]->mutable_data()[i] = 0.3f * i - 0.7f;
  for (int i = 0; i < 3; ++i) net.input_blobs()[1]->mutable_data()[i] = i;
  net.clear_param_diffs();
  const double loss = net.forward();
  EXPECT_NEAR(loss, net.blob("la")->cdata()[0] + 0.5 * net.blob("lb")->cdata()[0], 1e-6);
  net.backward();
  // The inputs need no gradient: no layer propagates to them, but the heads' params get one.
  double g = 0;
  for (auto& p : net.params()) g += std::fabs(p.blob->cdiff()[0]) + std::fabs(p.blob->cdiff()[1]);
  EXPECT_GT(g, 0);
  EXPECT_EQ(net.params().size(), 2u);
  EXPECT_TRUE(net.layer_needs_backward(net.num_layers() - 1));
  EXPECT_FALSE(net.layer_needs_backward(0));  // Input
}

TEST(Net, PhaseRulesFilterLayers) {
  LocalCommunicator comm;
  Net test(parse_net(kNet), Phase::kTest, &comm, 1, "t");
  EXPECT_FALSE(test.has_blob("lb"));
  EXPECT_TRUE(test.has_blob("la"));
}

TEST(Net, ClearErrorsBeforeTraining) {
  std::string e = build_error(R"(input: "x" input_shape { dim: 2 }
    layer { name: "r" type: "ReLU" bottom: "nope" top: "z" })");
  EXPECT_NE(e.find("bottom 'nope' is not produced"), std::string::npos) << e;
  EXPECT_NE(e.find("t.prototxt"), std::string::npos) << e;
  e = build_error(R"(input: "x" input_shape { dim: 2 }
    layer { name: "r" type: "Magic" bottom: "x" top: "z" })");
  EXPECT_NE(e.find("unknown layer type 'Magic'"), std::string::npos) << e;
  e = build_error(R"(input: "x" input_shape { dim: 2 }
    layer { name: "r" type: "ReLU" bottom: "x" top: "z" }
    layer { name: "s" type: "ReLU" bottom: "x" top: "z" })");
  EXPECT_NE(e.find("produced by more than one layer"), std::string::npos) << e;
  e = build_error(R"(input: "x" input_shape { dim: 2 }
    layer { name: "r" type: "ReLU" bottom: "x" top: "z" }
    layer { name: "r" type: "ReLU" bottom: "z" top: "w" })");
  EXPECT_NE(e.find("two layers are named 'r'"), std::string::npos) << e;
  e = build_error(R"(input: "x" input_shape { dim: 4 dim: 3 } input: "y" input_shape { dim: 5 }
    layer { name: "h" type: "CocoLoss" bottom: "x" bottom: "y" top: "l" coco_loss_param { num_output: 3 scale: 1 } })");
  EXPECT_NE(e.find("layer 'h' (CocoLoss)"), std::string::npos) << e;  // 5 labels for 4 samples
  e = build_error(R"(input: "x" input_dim: 1 input_dim: 2)");
  EXPECT_NE(e.find("input_dim"), std::string::npos) << e;
  e = build_error(R"(input: "x" input_shape { dim: 2 }
    layer { name: "s" type: "Split" bottom: "x" top: "x" })");
  EXPECT_NE(e.find("cannot work in place"), std::string::npos) << e;
}

TEST(Net, SharedParametersAndProtoRoundTrip) {
  LocalCommunicator comm;
  Net a(parse_net(kNet), Phase::kTrain, &comm, 1, "a");
  Net b(parse_net(kNet), Phase::kTest, &comm, 2, "b");
  b.share_params_from(a);
  a.params()[0].blob->mutable_data()[0] = 42.f;
  EXPECT_EQ(b.params()[0].blob->cdata()[0], 42.f);
  proto::NetParameter saved;
  a.to_proto(&saved);
  EXPECT_EQ(saved.layer_size(), 2);
  Net c(parse_net(kNet), Phase::kTrain, &comm, 3, "c");
  c.copy_from(saved, "saved", true);
  for (size_t p = 0; p < c.params().size(); ++p)
    for (int64_t i = 0; i < c.params()[p].blob->count(); ++i)
      EXPECT_EQ(c.params()[p].blob->cdata()[i], a.params()[p].blob->cdata()[i]);
  EXPECT_NE(a.describe().find("CocoLoss"), std::string::npos);
}

}  // namespace
}  // namespace coco
