// coco-export's library: a known net with weights written as a Caffe .caffemodel,
// over known images, must give the embeddings computed here by a plain loop --
// with a short last batch, L2 normalisation, flip-sum, rank slices joined, and
// the default-blob rule on the seed's net shapes. The seed's released COCO model,
// exported, must classify MNIST as tests/test_seed_nets.cpp measures it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "comm/communicator.h"
#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/cuda_runtime.h"
#include "engine/config.h"
#include "engine/net.h"
#include "engine/proto_fwd.h"
#include "test_files.h"
#include "tests/seed_files.h"
#include "tools/embed/eval.h"
#include "tools/embed/export.h"
#include "tools/embed/npy.h"

namespace coco {
namespace {

using testing::TempDir;

constexpr int kRows = 3, kCols = 4, kPix = kRows * kCols, kN = 7;

// data (B,1,3,4) -> ip1 (2) -> PReLU in place -> ip2 (3) -> softmax loss.
const char* kNet = R"(
  name: "tiny"
  input: "data" input_dim: 1 input_dim: 1 input_dim: 3 input_dim: 4
  input: "label" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1
  layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 2 } }
  layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
  layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
)";

float w1(int o, int p) { return 0.01f * static_cast<float>((o + 1) * (p % 5) - 3 * o); }
float b1(int o) { return o == 0 ? 0.5f : -0.25f; }
float w2(int o, int i) { return 0.5f * static_cast<float>(o - i) + 0.1f; }

struct Fixture {
  TempDir dir;
  std::vector<uint8_t> pixels, labels;
  std::string net_path, weights_path, data;
  Fixture() {
    for (int i = 0; i < kN * kPix; ++i) pixels.push_back(static_cast<uint8_t>((i * 37 + 11) % 256));
    labels = {3, 1, 4, 1, 5, 9, 2};
    std::filesystem::create_directories(dir.path / "mnist");
    testing::write_bytes(dir / "mnist/t10k-images-idx3-ubyte", testing::idx_images(kN, kRows, kCols, 0x803, pixels));
    testing::write_bytes(dir / "mnist/t10k-labels-idx1-ubyte", testing::idx_labels(labels));
    data = "mnist:" + dir / "mnist";
    net_path = dir / "net.prototxt";
    std::ofstream(net_path) << kNet;

    // The weights, as Caffe writes them: a binary NetParameter, one blob list per layer.
    proto::NetParameter caffe;
    auto add = [&](const std::string& name, int rows, int cols, auto w, auto b) {
      auto* l = caffe.add_layer();
      l->set_name(name);
      auto* wb = l->add_blobs();
      wb->mutable_shape()->add_dim(rows);
      wb->mutable_shape()->add_dim(cols);
      for (int o = 0; o < rows; ++o)
        for (int i = 0; i < cols; ++i) wb->add_data(w(o, i));
      auto* bb = l->add_blobs();
      bb->mutable_shape()->add_dim(rows);
      for (int o = 0; o < rows; ++o) bb->add_data(b(o));
    };
    add("ip1", 2, kPix, w1, b1);
    add("ip2", 3, 2, w2, [](int o) { return 0.f; });
    weights_path = dir / "tiny.caffemodel";
    std::ofstream(weights_path, std::ios::binary) << caffe.SerializeAsString();
  }
  // The reader's scaling, (x - 127.5) / 255, of pixel p of image i (optionally mirrored).
  double x(int i, int p, bool flip = false) const {
    const int r = p / kCols, c = flip ? kCols - 1 - p % kCols : p % kCols;
    return (pixels[i * kPix + r * kCols + c] - 127.5) / 255.0;
  }
  double ip1(int i, int o, bool flip = false) const {
    double s = b1(o);
    for (int p = 0; p < kPix; ++p) s += double(w1(o, p)) * x(i, p, flip);
    return std::max(0.0, s);  // the in-place ReLU writes ip1 too
  }
  ExportOptions options(int64_t batch = 3) const {
    ExportOptions o;
    o.config = net_path;
    o.weights = weights_path;
    o.data = data;
    o.batch = batch;
    return o;
  }
};

// coco-export splits the dataset with the head's shard_range: contiguous, in order,
// sizes differing by at most one, empty slices when there are more ranks than samples.
TEST(Export, SlicesCoverTheDatasetInOrder) {
  EXPECT_EQ(shard_range(10, 0, 3).start, 0);
  EXPECT_EQ(shard_range(10, 0, 3).count, 4);
  EXPECT_EQ(shard_range(10, 1, 3).start, 4);
  EXPECT_EQ(shard_range(10, 1, 3).count, 3);
  EXPECT_EQ(shard_range(10, 2, 3).start, 7);
  EXPECT_EQ(shard_range(10, 2, 3).count, 3);
  EXPECT_EQ(shard_range(2, 3, 4).start, 2);
  EXPECT_EQ(shard_range(2, 3, 4).count, 0);
  EXPECT_THROW(shard_range(10, 3, 3), Error);
  // Every rank's count at once, in elements of rows `width` wide.
  EXPECT_EQ(shard_counts(10, 3), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(shard_counts(10, 3, 2), (std::vector<int64_t>{8, 6, 6}));
  EXPECT_EQ(shard_counts(2, 4), (std::vector<int64_t>{1, 1, 0, 0}));
}

// A write that fails part-way leaves the earlier export whole: the files are
// written aside and moved in together.
TEST(Export, AFailedWriteLeavesTheEarlierExport) {
  Fixture f;
  const Embeddings e = export_embeddings(f.options(3), 0, 1);
  write_export(f.dir / "out", e, f.options(3), 0.5);
  auto text = [&](const std::string& name) {
    std::ifstream in(f.dir / ("out/" + name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string emb = text("embeddings.npy"), lab = text("labels.npy"), meta = text("meta.json");
  Embeddings broken = e;
  broken.dim = -1;  // refused while the files are written aside
  EXPECT_THROW(write_export(f.dir / "out", broken, f.options(3), 0.5), Error);
  EXPECT_EQ(text("embeddings.npy"), emb);
  EXPECT_EQ(text("labels.npy"), lab);
  EXPECT_EQ(text("meta.json"), meta);
  for (const auto& entry : std::filesystem::directory_iterator(f.dir / "out"))
    EXPECT_EQ(entry.path().filename().string().find("partial"), std::string::npos) << entry.path();
}

TEST(Export, KnownNetKnownInputsGiveKnownNpy) {
  Fixture f;
  int calls = 0;
  const Embeddings e = export_embeddings(f.options(3), 0, 1, [&](int64_t done, int64_t total) {
    ++calls;
    EXPECT_EQ(total, kN);
  });
  EXPECT_EQ(calls, 3);  // batches of 3, 3 and a short 1
  EXPECT_EQ(e.blob, "ip1");
  EXPECT_NE(e.blob_rule.find("classifier InnerProduct 'ip2'"), std::string::npos) << e.blob_rule;
  write_export(f.dir / "out", e, f.options(3), 0.5);

  const NpyArray emb = read_npy(f.dir / "out/embeddings.npy");
  const NpyArray lab = read_npy(f.dir / "out/labels.npy");
  ASSERT_EQ(emb.shape, (std::vector<int64_t>{kN, 2}));
  ASSERT_EQ(lab.shape, (std::vector<int64_t>{kN}));
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(lab.i64[i], f.labels[i]);
    for (int o = 0; o < 2; ++o) EXPECT_NEAR(emb.f32[i * 2 + o], f.ip1(i, o), 1e-5) << "sample " << i << " dim " << o;
  }
  bool some_positive = false;  // the ReLU must not have zeroed everything (the test would prove little)
  for (float v : emb.f32) some_positive |= v > 0.05f;
  EXPECT_TRUE(some_positive);

  std::ifstream mf(f.dir / "out/meta.json");
  const auto meta = nlohmann::json::parse(mf);
  EXPECT_EQ(meta["blob"], "ip1");
  EXPECT_EQ(meta["count"], kN);
  EXPECT_EQ(meta["dim"], 2);
  EXPECT_EQ(meta["checkpoint"], f.weights_path);
  EXPECT_EQ(meta["normalization"], "none");
  EXPECT_EQ(meta["flip_sum"], false);
}

TEST(Export, BatchSizeDoesNotChangeTheResult) {
  Fixture f;
  const Embeddings a = export_embeddings(f.options(7), 0, 1);
  const Embeddings b = export_embeddings(f.options(2), 0, 1);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t k = 0; k < a.values.size(); ++k) EXPECT_NEAR(a.values[k], b.values[k], 1e-6);
}

TEST(Export, NormalizeFlipSumAndOtherBlobs) {
  Fixture f;
  ExportOptions o = f.options(4);
  o.normalization = Normalization::kL2;
  o.flip_sum = FlipSum::kOn;
  const Embeddings e = export_embeddings(o, 0, 1);
  for (int i = 0; i < kN; ++i) {
    const double s0 = f.ip1(i, 0) + f.ip1(i, 0, true), s1 = f.ip1(i, 1) + f.ip1(i, 1, true);
    const double n = std::sqrt(s0 * s0 + s1 * s1 + 1e-12);
    EXPECT_NEAR(e.values[i * 2 + 0], s0 / n, 1e-5);
    EXPECT_NEAR(e.values[i * 2 + 1], s1 / n, 1e-5);
  }
  ExportOptions logits = f.options(5);
  logits.blob = "ip2";
  logits.limit = 4;
  const Embeddings z = export_embeddings(logits, 0, 1);
  ASSERT_EQ(z.dim, 3);
  ASSERT_EQ(z.rows(), 4);
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 3; ++o)
      EXPECT_NEAR(z.values[i * 3 + o], w2(o, 0) * f.ip1(i, 0) + w2(o, 1) * f.ip1(i, 1), 1e-5);
  logits.blob = "nope";
  try {
    export_embeddings(logits, 0, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no blob named 'nope'"), std::string::npos) << e.what();
  }
}

// --device cuda runs the same pruned net on the GPU: the same rows, flip-summed and
// normalised, as the CPU export (skipped where there is no GPU).
TEST(Export, CudaExportEqualsTheCpuExport) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  Fixture f;
  ExportOptions o = f.options(3);  // 3 does not divide the set: the short last batch too
  o.normalization = Normalization::kL2;
  o.flip_sum = FlipSum::kOn;
  const Embeddings cpu = export_embeddings(o, 0, 1);
  o.device = Device::kCUDA;
  const Embeddings gpu = export_embeddings(o, 0, 1);
  ASSERT_EQ(gpu.values.size(), cpu.values.size());
  EXPECT_EQ(gpu.labels, cpu.labels);
  for (size_t k = 0; k < cpu.values.size(); ++k) EXPECT_NEAR(gpu.values[k], cpu.values[k], 1e-5) << k;
}

TEST(Export, RankSlicesJoinToTheSingleProcessExport) {
  Fixture f;
  const Embeddings whole = export_embeddings(f.options(2), 0, 1);
  std::vector<Embeddings> parts;
  for (int r = 2; r >= 0; --r) parts.push_back(export_embeddings(f.options(2), r, 3));  // any order
  EXPECT_EQ(parts[0].begin, 5);  // 7 = 3 + 2 + 2
  EXPECT_EQ(parts[0].rows(), 2);
  const Embeddings joined = join_slices(parts);
  EXPECT_EQ(joined.labels, whole.labels);
  ASSERT_EQ(joined.values.size(), whole.values.size());
  for (size_t k = 0; k < whole.values.size(); ++k) EXPECT_FLOAT_EQ(joined.values[k], whole.values[k]);
  parts.pop_back();  // a missing slice is an error, not a shorter file
  EXPECT_THROW(join_slices(parts), Error);
}

TEST(Export, CocoCheckpointWrittenAndReadBack) {
  // Our own checkpoint format: a net's parameters saved, loaded into a fresh net by export.
  Fixture f;
  proto::NetParameter np;
  read_text_file(f.net_path, &np);
  LocalCommunicator comm;
  Net net(np, Phase::kTest, &comm, 1, "tiny");
  load_weights(net, f.weights_path);
  proto::Checkpoint ckpt;
  ckpt.set_iter(5);
  net.to_proto(ckpt.mutable_net());
  save_checkpoint(f.dir / "tiny.ckpt", ckpt);
  ExportOptions o = f.options(3);
  o.weights = f.dir / "tiny.ckpt";
  const Embeddings e = export_embeddings(o, 0, 1);
  for (int i = 0; i < kN; ++i) EXPECT_NEAR(e.values[i * 2 + 1], f.ip1(i, 1), 1e-5);
}

proto::NetParameter parse_net(const std::string& text) {
  proto::NetParameter p;
  parse_text(text, "<net>", &p);
  return p;
}

TEST(Export, DefaultBlobRule) {
  // The seed's COCO net: ip1 -> Normalize -> CenterProjection -> SoftmaxWithLoss.
  EXPECT_EQ(default_embedding_blob(parse_net(R"(
    layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" }
    layer { name: "l2norm" type: "Normalize" bottom: "ip1" top: "ip1_norm" }
    layer { name: "ip2" type: "CenterProjection" bottom: "ip1_norm" top: "ip2" }
    layer { name: "my_loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "l" })"), "n"),
            "ip1");
  // Fused CocoLoss and CenterLoss take the feature itself.
  EXPECT_EQ(default_embedding_blob(parse_net(R"(
    layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" }
    layer { name: "coco" type: "CocoLoss" bottom: "ip1" bottom: "label" top: "l" })"), "n"),
            "ip1");
  EXPECT_EQ(default_embedding_blob(parse_net(R"(
    layer { name: "fc5" type: "InnerProduct" bottom: "pool3" top: "fc5" }
    layer { name: "closs" type: "CenterLoss" bottom: "fc5" bottom: "label" top: "l" })"), "n"),
            "fc5");
  EXPECT_THROW(default_embedding_blob(parse_net(R"(
    layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1" })"), "n"),
               Error);
  // Pruning keeps in-place writers of the blob and drops the head.
  const auto pruned = prune_to_blob(parse_net(kNet), "ip1", "n");
  ASSERT_EQ(pruned.layer_size(), 2);
  EXPECT_EQ(pruned.layer(1).name(), "relu1");
}

// The seed's released COCO model through export: ip1 is its 3-d feature, ip2 its logits.
TEST(Export, SeedCocoModelExportsAndClassifies) {
  COCO_SEED_DIR_OR_SKIP(seed_dir);
  const std::string seed = seed_dir + "/model";
  const std::string mnist = std::string(COCO_SOURCE_DIR) + "/data/mnist";
  if (!std::filesystem::exists(mnist + "/t10k-images-idx3-ubyte"))
    GTEST_SKIP() << "needs MNIST in data/mnist: run tools/fetch_mnist.sh";
  ExportOptions o;
  o.config = seed + "/train_prototxts/net_cocoloss.prototxt";
  o.weights = seed + "/coco_loss/10epoches.caffemodel";
  o.data = "mnist:" + mnist;
  o.batch = 500;
  o.limit = 500;
  const Embeddings feat = export_embeddings(o, 0, 1);
  EXPECT_EQ(feat.blob, "ip1");
  EXPECT_EQ(feat.dim, 3);
  EXPECT_EQ(feat.rows(), 500);
  o.blob = "ip2";
  o.limit = -1;
  const Embeddings logits = export_embeddings(o, 0, 1);
  const double acc = classification_accuracy(logits.values, logits.dim, logits.labels);
  std::printf("seed COCO model via export: MNIST test accuracy %.4f\n", acc);
  EXPECT_GE(acc, 0.99);
}

}  // namespace
}  // namespace coco
