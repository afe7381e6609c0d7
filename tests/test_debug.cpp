// Debug mode and non-finite steps: the per-layer NaN/Inf scan names the layer, the
// blob and the iteration; the loss layers' gradients are checked against finite
// differences on a real batch; two debug runs are identical; a non-finite step
// stops (keeping the last good checkpoint) or is skipped and counted.
#include "engine/debug.h"

#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/trainer.h"
#include "tests/test_files.h"

namespace coco::testing {
namespace {

proto::NetParameter parse_net(const std::string& text) {
  proto::NetParameter n;
  if (!google::protobuf::TextFormat::ParseFromString(text, &n)) throw Error("bad test net");
  return n;
}

// An 8-sample batch of 6-d inputs through one inner product into `head`.
std::string head_net(const std::string& head, const std::string& ip_filler = "type: \"gaussian\" std: 0.5") {
  return R"(
    name: "t"
    input: "data" input_shape { dim: 8 dim: 6 }
    input: "label" input_shape { dim: 8 }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
            inner_product_param { num_output: 4 weight_filler { )" + ip_filler + R"( } } }
  )" + head;
}

void fill_inputs(Net& net, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  Blob* x = net.input_blobs()[0];
  for (int64_t i = 0; i < x->count(); ++i) x->mutable_data()[i] = u(g);
  Blob* y = net.input_blobs()[1];
  for (int64_t i = 0; i < y->count(); ++i) y->mutable_data()[i] = static_cast<float>(i % 4);
}

std::vector<GradCheckResult> gradcheck(const std::string& head) {
  LocalCommunicator comm;
  Net net(parse_net(head_net(head)), Phase::kTrain, &comm, 3, "t.prototxt");
  fill_inputs(net, 11);
  return check_loss_gradients(net);
}

TEST(DebugGradcheck, LossHeadsAgreeWithFiniteDifferences) {
  for (const std::string head : {
           R"(layer { name: "coco" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss"
                      coco_loss_param { num_output: 5 scale: 6 } })",
           R"(layer { name: "arc" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss"
                      coco_loss_param { num_output: 5 scale: 6 margin_type: ARCFACE margin: 0.2 } })",
           R"(layer { name: "cls" type: "InnerProduct" bottom: "ip" top: "cls" inner_product_param { num_output: 5 } }
              layer { name: "softmax" type: "SoftmaxWithLoss" bottom: "cls" bottom: "label" top: "loss" loss_weight: 0.5 })",
       }) {
    const auto r = gradcheck(head);
    ASSERT_EQ(r.size(), 1u) << head;
    EXPECT_TRUE(r[0].ok()) << r[0].layer << ": " << r[0].failed << " of " << r[0].checked << "; " << r[0].worst;
    EXPECT_GE(r[0].checked, 12) << r[0].layer;
  }
}

// The seed's RENORMALIZE update is not the gradient of the loss with respect to the
// stored centroids (it skips the normalisation's Jacobian): the check must see it.
TEST(DebugGradcheck, CatchesAGradientThatIsNotTheLossGradient) {
  const auto r = gradcheck(R"(layer { name: "coco" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss"
                              coco_loss_param { num_output: 5 scale: 6 centroid_update: RENORMALIZE } })");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok());
  EXPECT_NE(r[0].worst.find("parameter 0"), std::string::npos) << r[0].worst;
}

TEST(DebugGradcheck, LeavesTheNetAsItFoundIt) {
  LocalCommunicator comm;
  const std::string head = R"(layer { name: "coco" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss"
                              coco_loss_param { num_output: 5 scale: 6 centroid_update: RENORMALIZE } })";
  Net a(parse_net(head_net(head)), Phase::kTrain, &comm, 3, "a"), b(parse_net(head_net(head)), Phase::kTrain, &comm, 3, "b");
  fill_inputs(a, 11);
  fill_inputs(b, 11);
  check_loss_gradients(a);
  const double la = a.forward_backward(), lb = b.forward_backward();
  EXPECT_EQ(la, lb);
  for (size_t i = 0; i < a.params().size(); ++i) {
    EXPECT_EQ(a.params()[i].blob->data().to_vector(), b.params()[i].blob->data().to_vector());
    EXPECT_EQ(a.params()[i].blob->diff().to_vector(), b.params()[i].blob->diff().to_vector());
  }
}

const char* kSoftmaxHead =
    R"(layer { name: "softmax" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" })";

TEST(DebugScan, APlantedNaNWeightIsNamedInForward) {
  LocalCommunicator comm;
  Net net(parse_net(head_net(kSoftmaxHead, "type: \"constant\" value: nan")), Phase::kTrain, &comm, 3, "t.prototxt");
  fill_inputs(net, 1);
  net.set_iter(7);
  EXPECT_TRUE(std::isnan(net.forward()));  // without the scan: a NaN loss, no culprit
  net.set_debug(true);
  try {
    net.forward();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("iteration 7, forward of layer 'ip' (InnerProduct)"), std::string::npos) << m;
    EXPECT_NE(m.find("top 'ip' holds 32 NaN/Inf value(s) of 32, the first at index 0"), std::string::npos) << m;
  }
}

TEST(DebugScan, APlantedNaNInputIsNamedAtTheInputLayer) {
  LocalCommunicator comm;
  Net net(parse_net(head_net(kSoftmaxHead)), Phase::kTrain, &comm, 3, "t.prototxt");
  fill_inputs(net, 1);
  net.input_blobs()[0]->mutable_data()[13] = INFINITY;
  net.set_debug(true);
  try {
    net.forward();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("top 'data' holds 1 NaN/Inf value(s) of 48, the first at index 13 (inf)"), std::string::npos) << m;
  }
}

TEST(DebugScan, APlantedNaNGradientIsNamedInBackward) {
  LocalCommunicator comm;
  // Forward is finite; the NaN loss weight seeds a NaN gradient in backward.
  Net net(parse_net(head_net(
              R"(layer { name: "softmax" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: nan })")),
          Phase::kTrain, &comm, 3, "t.prototxt");
  fill_inputs(net, 1);
  net.set_debug(true);
  net.set_iter(2);
  net.forward();
  try {
    net.backward();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("iteration 2, backward of layer 'softmax' (SoftmaxWithLoss)"), std::string::npos) << m;
    EXPECT_NE(m.find("the gradient of bottom 'ip'"), std::string::npos) << m;
  }
}

// ---- through the trainer (coco-train) ----

const char* kSolver = R"(
train_data { source: "mnist:unused" split: "train" batch_size: 8 }
base_lr: 0.2
momentum: 0.9
lr_policy: "fixed"
max_iter: 6
display: 1
snapshot: SNAP
random_seed: 5
net_param {
  name: "tiny"
  input: "data" input_shape { dim: 8 dim: 1 dim: 6 dim: 6 }
  input: "label" input_shape { dim: 8 }
  layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
  layer { name: "drop" type: "Dropout" bottom: "bn" top: "bn" dropout_param { dropout_ratio: 0.25 } }
  layer { name: "ip" type: "InnerProduct" bottom: "bn" top: "ip"
          inner_product_param { num_output: 8 weight_filler { FILLER } } }
  HEAD
}
)";

const char* kCocoHead = R"(layer { name: "head" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss" top: "accuracy"
          coco_loss_param { num_output: 10 scale: 8 } })";

struct Fixture {
  TempDir dir;
  std::string config;
  explicit Fixture(const std::string& filler = "type: \"xavier\"", const std::string& lr = "0.2",
                   const std::string& head = kCocoHead, int snapshot = 2) {
    std::vector<uint8_t> labels(30), pix;
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>((i * 7) % 10);
    for (size_t i = 0; i < labels.size(); ++i)
      for (int j = 0; j < 36; ++j) pix.push_back(j % 10 == labels[i] ? 250 : static_cast<uint8_t>(10 + (i * j) % 30));
    write_bytes(dir / "train-images-idx3-ubyte", idx_images(30, 6, 6, 0x803, pix));
    write_bytes(dir / "train-labels-idx1-ubyte", idx_labels(labels));
    std::string text = kSolver;
    text.replace(text.find("FILLER"), 6, filler);
    text.replace(text.find("0.2"), 3, lr);
    text.replace(text.find("SNAP"), 4, std::to_string(snapshot));
    text.replace(text.find("HEAD"), 4, head);
    config = dir / "solver.prototxt";
    std::ofstream(config) << text;
  }
  TrainOptions options() const {
    TrainOptions o;
    o.config = config;
    o.data_root = dir.path.string();
    o.snapshot_prefix = dir / "snap";
    o.quiet = true;
    return o;
  }
};

TEST(DebugTrainer, TwoDebugRunsGiveIdenticalLossesAndParameters) {
  Fixture f;
  auto o = f.options();
  o.debug = o.debug_gradcheck = true;
  LocalCommunicator c1, c2;
  Trainer a(o, &c1), b(o, &c2);
  const auto ra = a.run(), rb = b.run();
  EXPECT_EQ(ra.last_loss, rb.last_loss);
  for (size_t i = 0; i < a.train_net().params().size(); ++i)
    EXPECT_EQ(a.train_net().params()[i].blob->data().to_vector(), b.train_net().params()[i].blob->data().to_vector());
  // The gradient check runs before the first step and leaves no trace: a run
  // without debug mode trains the same parameters.
  auto plain = f.options();
  LocalCommunicator c3;
  Trainer c(plain, &c3);
  EXPECT_EQ(c.run().last_loss, ra.last_loss);
}

TEST(NonFinite, StopsAtOnceWhenTheFirstStepIsBad) {
  Fixture f("type: \"constant\" value: nan");
  LocalCommunicator comm;
  Trainer t(f.options(), &comm);
  try {
    t.run();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find("iteration 0: the loss ("), 0u) << m;
    EXPECT_NE(m.find(") or a gradient is not finite"), std::string::npos) << m;
    EXPECT_NE(m.find("forward of layer 'ip' (InnerProduct)"), std::string::npos) << m;
    EXPECT_NE(m.find("no checkpoint was written in this run"), std::string::npos) << m;
  }
}

// A softmax head at a learning rate of 1e30 overflows within a few steps; a
// checkpoint is written after every good step, and the error names the last one.
TEST(NonFinite, StopsNamingTheLastGoodCheckpointWhichLoads) {
  Fixture f("type: \"xavier\"", "1e30",
            R"(layer { name: "cls" type: "InnerProduct" bottom: "ip" top: "cls" inner_product_param { num_output: 10 } }
               layer { name: "head" type: "SoftmaxWithLoss" bottom: "cls" bottom: "label" top: "loss" })",
            1);
  LocalCommunicator comm;
  Trainer t(f.options(), &comm);
  std::string m;
  try {
    t.run();
  } catch (const Error& e) {
    m = e.what();
  }
  // The update of one step overflows the weights: the snapshot after it is refused
  // (its weights hold Inf/NaN; it used to be written and then named as good).
  ASSERT_NE(m.find("holds NaN or Inf, so no checkpoint was written"), std::string::npos) << m;
  const auto at = m.find("the last good checkpoint is ");
  ASSERT_NE(at, std::string::npos) << m;
  const std::string rest = m.substr(at + 28);
  const std::string path = rest.substr(0, rest.find(' '));
  const auto ckpt = load_checkpoint(path);  // intact and loadable, every weight finite
  for (const auto& l : ckpt.net().layer())
    for (const auto& b : l.blobs())
      for (float v : b.data()) ASSERT_TRUE(std::isfinite(v)) << path << " layer " << l.name();
  const int64_t bad_iter = std::stoll(m.substr(m.find("iteration ") + 10));
  EXPECT_EQ(ckpt.iter(), bad_iter - 1);  // the snapshot before the refused one
  EXPECT_FALSE(std::filesystem::exists(f.dir / ("snap_iter_" + std::to_string(bad_iter) + ".ckpt")));
}

TEST(NonFinite, SkipModeCountsStepsAndLeavesParametersUntouched) {
  Fixture f("type: \"constant\" value: nan");
  auto o = f.options();
  o.skip_nonfinite = true;
  LocalCommunicator comm;
  Trainer t(o, &comm);
  std::vector<std::vector<float>> before;
  for (const auto& p : t.train_net().params()) before.push_back(p.blob->data().to_vector());
  // Every step is skipped; the weights (NaN from the filler) are never saved: the
  // final snapshot is refused, naming the layer (it used to be written, exit 0).
  std::string m;
  try {
    t.run();
  } catch (const Error& e) {
    m = e.what();
  }
  EXPECT_NE(m.find("iteration 6: layer 'ip' parameter 0 holds NaN or Inf, so no checkpoint was written"),
            std::string::npos) << m;  // skipped steps write no snapshot; the final one is refused
  for (int it : {2, 4, 6}) EXPECT_FALSE(std::filesystem::exists(f.dir / ("snap_iter_" + std::to_string(it) + ".ckpt")));
  for (size_t i = 0; i < before.size(); ++i) {
    // Every parameter, running statistics included: a skipped step leaves nothing behind.
    const auto now = t.train_net().params()[i].blob->data().to_vector();
    ASSERT_EQ(now.size(), before[i].size());
    for (size_t k = 0; k < now.size(); ++k)
      EXPECT_TRUE(now[k] == before[i][k] || (std::isnan(now[k]) && std::isnan(before[i][k])));
  }
}

}  // namespace
}  // namespace coco::testing
