// The seed's networks build with their shapes (what coco-train --dry-run prints),
// and its three released MNIST caffemodels load into them and classify MNIST.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/data/mnist.h"
#include "engine/net.h"
#include "engine/trainer.h"
#include "tests/seed_files.h"

namespace coco {
namespace {

std::unique_ptr<Net> build(const std::string& seed, const std::string& rel, Phase phase, LocalCommunicator* comm, int64_t batch = 1) {
  proto::NetParameter p;
  read_text_file(seed + "/" + rel, &p);
  set_input_batch(&p, batch);
  return std::make_unique<Net>(p, phase, comm, 1, rel);
}

TEST(SeedNets, LeNetPlusPlusVariantsBuild) {
  COCO_SEED_DIR_OR_SKIP(seed);
  LocalCommunicator comm;
  for (const char* n : {"model/net_test.prototxt", "model/train_prototxts/net_cocoloss.prototxt",
                        "model/train_prototxts/net_softmax.prototxt", "model/train_prototxts/net_centerloss.prototxt"}) {
    SCOPED_TRACE(n);
    auto net = build(seed, n, Phase::kTrain, &comm);
    EXPECT_EQ(net->blob("conv1")->shape(), (Shape{1, 32, 28, 28}));
    EXPECT_EQ(net->blob("pool2")->shape(), (Shape{1, 64, 7, 7}));
    EXPECT_EQ(net->blob("pool3")->shape(), (Shape{1, 128, 3, 3}));  // 7x7, kernel 3, stride 2: Caffe's ceil
    EXPECT_EQ(net->blob("ip1")->shape(), (Shape{1, 3}));
  }
}

TEST(SeedNets, FaceNetworkIr235BuildsWithItsShapes) {
  COCO_SEED_DIR_OR_SKIP(seed);
  LocalCommunicator comm;
  auto net = build(seed, "materials_for_face/ir235_release.prototxt", Phase::kTrain, &comm);
  EXPECT_EQ(net->blob("stem.step1.3x3.1.conv")->shape(), (Shape{1, 32, 117, 117}));
  EXPECT_EQ(net->blob("stem.step1.concat")->shape(), (Shape{1, 160, 57, 57}));
  EXPECT_EQ(net->blob("c10")->shape(), (Shape{1, 2048, 6, 6}));
  EXPECT_EQ(net->blob("feature")->shape(), (Shape{1, 256}));
  EXPECT_EQ(net->blob("prob2")->shape(), (Shape{1, 87020}));
  int bn = 0;
  for (size_t i = 0; i < net->num_layers(); ++i) bn += std::string(net->layer(i).type()) == "BN";
  EXPECT_EQ(bn, 242);
  EXPECT_NE(net->describe().find("CenterProjection"), std::string::npos);
}

// The released models, evaluated on the MNIST test set when it has been fetched
// (tools/fetch_mnist.sh; CI fetches it). Accuracy: argmax of the model's logits.
TEST(SeedNets, ReleasedCaffemodelsLoadAndClassifyMnist) {
  COCO_SEED_DIR_OR_SKIP(seed);
  LocalCommunicator comm;
  struct Model {
    const char* net;
    const char* weights;
    const char* logits;
    double min_accuracy;
  };
  const Model models[] = {
      {"model/train_prototxts/net_cocoloss.prototxt", "model/coco_loss/10epoches.caffemodel", "ip2", 0.99},
      {"model/train_prototxts/net_softmax.prototxt", "model/softmax_loss/10epoches.caffemodel", "ip2", 0.98},
      {"model/train_prototxts/net_centerloss.prototxt", "model/center+softmax_loss/10epoches.caffemodel", "ip2", 0.98},
  };
  const std::string mnist = std::string(COCO_SOURCE_DIR) + "/data/mnist";
  const bool have_data = std::filesystem::exists(mnist + "/t10k-images-idx3-ubyte");
  for (const auto& m : models) {
    SCOPED_TRACE(m.weights);
    const int64_t batch = 500;
    auto net = build(seed, m.net, Phase::kTest, &comm, batch);
    ASSERT_NO_THROW(load_weights(*net, seed + "/" + m.weights));
    if (!have_data) continue;
    MnistDataset test;
    test.load(mnist, "test");
    int64_t correct = 0;
    for (int64_t start = 0; start < test.size(); start += batch) {
      float* x = net->input_blobs()[0]->mutable_data();
      float* y = net->input_blobs()[1]->mutable_data();
      for (int64_t i = 0; i < batch; ++i) {
        test.copy_image(start + i, x + i * 784);
        y[i] = static_cast<float>(test.label(start + i));
      }
      net->forward();
      const float* z = net->blob(m.logits)->cdata();
      for (int64_t i = 0; i < batch; ++i) {
        int best = 0;
        for (int k = 1; k < 10; ++k)
          if (z[i * 10 + k] > z[i * 10 + best]) best = k;
        correct += best == test.label(start + i);
      }
    }
    const double acc = static_cast<double>(correct) / test.size();
    std::printf("%s: MNIST test accuracy %.4f\n", m.weights, acc);
    EXPECT_GE(acc, m.min_accuracy);
  }
  if (!have_data) GTEST_SKIP() << "models load; MNIST is not fetched (" << mnist << "), accuracy not measured";
}

}  // namespace
}  // namespace coco
