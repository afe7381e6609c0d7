// Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) with the
// repository's own writers: save_training_checkpoint, Net::to_proto, pack_records,
// encode_jpeg, the shipped configs. Each corpus holds a few small valid files and a
// few broken ones (truncated, a flipped byte, a lying length), so the fuzzer starts
// from both sides of every check.
//
//   build-fuzz/coco-fuzz-corpus tests/fuzz/corpus      (regenerates; commit the result)
//
// The output is deterministic (fixed seeds; no time or paths inside), so
// regenerating gives the same bytes unless a writer's format changed.
#include <google/protobuf/text_format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "comm/communicator.h"
#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/data/jpeg.h"
#include "engine/data/pack.h"
#include "engine/data/recordio.h"
#include "engine/proto/coco.pb.h"
#include "engine/training_checkpoint.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/fuzz_net.h"

namespace fs = std::filesystem;
using namespace coco;

namespace {

fs::path g_out;

void emit(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  fuzz::write_file(g_out / target / name, bytes);
}

std::string slurp(const fs::path& p) { return read_file(p.string()); }

std::string flip(std::string s, size_t at) {
  if (!s.empty()) s[std::min(at, s.size() - 1)] ^= 0x5a;
  return s;
}

// ---- config ----

// Every layer type, small: the fuzzer mutates parameters of each.
const char* kZoo = R"(
base_lr: 0.01
lr_policy: "step"
stepsize: 3
gamma: 0.5
momentum: 0.9
max_iter: 10
train_data { source: "mnist:data/mnist" batch_size: 2 }
net_param {
  name: "zoo"
  layer { name: "in" type: "Input" top: "data" top: "label"
          input_param { shape { dim: 2 dim: 2 dim: 8 dim: 8 } shape { dim: 2 } } }
  layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
          convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1 group: 2 weight_filler { type: "xavier" } } }
  layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
  layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
  layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
  layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "split" type: "Split" bottom: "pool" top: "a" top: "b" }
  layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" eltwise_param { operation: SUM } }
  layer { name: "cat" type: "Concat" bottom: "sum" bottom: "pool" top: "cat" concat_param { axis: 1 } }
  layer { name: "bn2" type: "BN" bottom: "cat" top: "cat" }
  layer { name: "pr" type: "PReLU" bottom: "cat" top: "cat" }
  layer { name: "drop" type: "Dropout" bottom: "cat" top: "cat" dropout_param { dropout_ratio: 0.5 } }
  layer { name: "flat" type: "Flatten" bottom: "cat" top: "flat" }
  layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
  layer { name: "norm" type: "Normalize" bottom: "ip" top: "norm" }
  layer { name: "proj" type: "CenterProjection" bottom: "norm" top: "proj" center_projection_param { num_output: 4 } }
  layer { name: "sm" type: "SoftmaxWithLoss" bottom: "proj" bottom: "label" top: "sm" }
  layer { name: "acc" type: "Accuracy" bottom: "proj" bottom: "label" top: "acc" include { phase: TEST } }
  layer { name: "center" type: "CenterLoss" bottom: "ip" bottom: "label" top: "center" loss_weight: 0.1
          center_loss_param { num_output: 4 } }
  layer { name: "coco" type: "CocoLoss" bottom: "ip" bottom: "label" top: "coco" coco_loss_param { num_output: 4 auto_scale: true } }
}
)";

void config_corpus(const fs::path& src) {
  for (const char* c : {"mnist_coco", "mnist_softmax", "mnist_center", "synthetic_ms1m"})
    emit("config", std::string(c) + ".prototxt", slurp(src / "configs" / (std::string(c) + ".prototxt")));
  emit("config", "fuzz_net_solver.prototxt", fuzz::kFuzzSolver);
  emit("config", "zoo.prototxt", kZoo);
  // A net file alone (what --dry-run accepts), in Caffe's legacy input form.
  emit("config", "net_only.prototxt",
       "name: \"n\"\ninput: \"data\"\ninput_dim: 1\ninput_dim: 1\ninput_dim: 4\ninput_dim: 4\n"
       "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"data\" top: \"ip\" inner_product_param { num_output: 2 } }\n");
  emit("config", "net_by_path.prototxt", "net: \"no_such_net.prototxt\"\nbase_lr: 0.1\n");
  emit("config", "broken_syntax.prototxt", "base_lr: 0.1\nnet_param {\n  layer { name: \"a\" typo: 1 }\n");
  emit("config", "bad_policy.prototxt", std::string(fuzz::kFuzzSolver) + "lr_policy: \"sometimes\"\n");
  emit("config", "two_nets.prototxt", std::string(fuzz::kFuzzSolver) + "net: \"x\"\n");
}

// ---- mnist ----

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}
std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  std::string s = be32(magic) + be32(n) + be32(rows) + be32(cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) s.push_back(static_cast<char>((i * 31 + i / 7) % 256));
  return s;
}
std::string idx_labels(const std::string& labels, uint32_t magic = 0x801) {
  return be32(magic) + be32(static_cast<uint32_t>(labels.size())) + labels;
}

void mnist_corpus(const fs::path& src) {
  const std::string labels("\x01\x07\x03", 3);
  emit("mnist", "valid_3x4x4", fuzz::join_parts({idx_images(3, 4, 4), idx_labels(labels)}));
  emit("mnist", "valid_1x28x28", fuzz::join_parts({idx_images(1, 28, 28), idx_labels(std::string("\x09", 1))}));
  // The first 2 images of the real training set, when tools/fetch_mnist.sh has run.
  const fs::path real = src / "data" / "mnist";
  if (fs::exists(real / "train-images-idx3-ubyte")) {
    std::string img = slurp(real / "train-images-idx3-ubyte").substr(16, 2 * 784);
    std::string lab = slurp(real / "train-labels-idx1-ubyte").substr(8, 2);
    emit("mnist", "real_first_2", fuzz::join_parts({be32(0x803) + be32(2) + be32(28) + be32(28) + img, idx_labels(lab)}));
  }
  emit("mnist", "bad_magic", fuzz::join_parts({idx_images(3, 4, 4, 0x802), idx_labels(labels)}));
  std::string cut = idx_images(3, 4, 4);
  cut.resize(cut.size() - 5);
  emit("mnist", "truncated", fuzz::join_parts({cut, idx_labels(labels)}));
  emit("mnist", "count_mismatch", fuzz::join_parts({idx_images(2, 4, 4), idx_labels(labels)}));
  emit("mnist", "label_out_of_range", fuzz::join_parts({idx_images(3, 4, 4), idx_labels(std::string("\x01\x0a\x03", 3))}));
  emit("mnist", "header_only", fuzz::join_parts({be32(0x803), idx_labels(labels)}));
  // Dimensions whose product does not fit 64 bits (2^22 * 2^21 * 2^21 = 2^64).
  emit("mnist", "dims_wrap_64bit",
       fuzz::join_parts({be32(0x803) + be32(1u << 22) + be32(1u << 21) + be32(1u << 21), idx_labels(labels)}));
}

// ---- recordio ----

std::vector<uint8_t> rgb(int h, int w, int id) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * (3 + id) + id * 37) % 256);
  return px;
}

std::string rec_package(const fs::path& tmp, PackLayout layout, int images, int size, bool property,
                        const std::string& options) {
  fs::remove_all(tmp);
  fs::create_directories(tmp / "img");
  std::vector<PackItem> items;
  for (int i = 0; i < images; ++i) {
    const auto px = rgb(size, size, i);
    const auto jpg = encode_jpeg(px.data(), size, size, 50);
    const auto p = tmp / "img" / (std::to_string(i) + ".jpg");
    fuzz::write_file(p, std::string(jpg.begin(), jpg.end()));
    items.push_back({p.string(), i % 2, p.string()});
  }
  pack_records(items, (tmp / "pkg" / "train").string(), layout);
  std::vector<std::string> parts{slurp(tmp / "pkg" / "train.rec"), slurp(tmp / "pkg" / "train.idx")};
  if (property || !options.empty()) parts.push_back(property ? slurp(tmp / "pkg" / "property") : std::string());
  if (!options.empty()) parts.push_back(options);
  return fuzz::join_parts(parts);
}

void recordio_corpus(const fs::path& tmp) {
  emit("recordio", "insightface_3x8x8", rec_package(tmp, PackLayout::kInsightface, 3, 8, true, ""));
  emit("recordio", "insightface_no_property", rec_package(tmp, PackLayout::kInsightface, 2, 8, false, ""));
  emit("recordio", "plain_skip_crop",
       rec_package(tmp, PackLayout::kPlain, 3, 8, true, "on_corrupt: SKIP crop_size: 6 mirror: true shuffle_block: 2"));
  // A record split where the magic appears at an aligned offset, written by RecordWriter.
  {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    RecordWriter w((tmp / "s.rec").string());
    RecordHeader h;
    h.label = 1;
    std::string body("abcd\x0a\x23\xd7\xce" "efgh", 12);
    const std::string payload = pack_payload(h, body.data(), body.size());
    const uint64_t off = w.write(payload.data(), payload.size());
    w.close();
    emit("recordio", "split_record",
         fuzz::join_parts({slurp(tmp / "s.rec"), "0\t" + std::to_string(off) + "\n", "2,8,8\n"}));
  }
  std::string good = rec_package(tmp, PackLayout::kInsightface, 2, 8, true, "");
  auto parts = fuzz::split_parts(reinterpret_cast<const uint8_t*>(good.data()), good.size());
  auto cut = parts;
  cut[0].resize(cut[0].size() - 7);
  emit("recordio", "truncated_rec", fuzz::join_parts(cut));
  auto bad_magic = parts;
  bad_magic[0][0] ^= 0x01;
  emit("recordio", "bad_magic", fuzz::join_parts(bad_magic));
  auto bad_idx = parts;
  bad_idx[1] = "0\t0\n1\t999999\nx y\n";
  emit("recordio", "bad_index", fuzz::join_parts(bad_idx));
  auto bad_prop = parts;
  bad_prop[2] = "2,2147483648,8\n";
  emit("recordio", "bad_property", fuzz::join_parts(bad_prop));
  auto bad_jpeg = parts;
  bad_jpeg[0] = flip(bad_jpeg[0], bad_jpeg[0].size() - 40);
  emit("recordio", "bad_jpeg_bytes", fuzz::join_parts(bad_jpeg));
}

// ---- checkpoint and caffemodel ----

void checkpoint_corpus(const fs::path& tmp) {
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fuzz::FuzzNet f;
  const std::string path = (tmp / "ck.ckpt").string();
  save_training_checkpoint(path, 4, 1, "solver.prototxt", *f.net, *f.solver, f.comm);
  const std::string main = slurp(path), shard = slurp(shard_path(path, 0, 1));
  emit("checkpoint", "one_shard", fuzz::join_parts({main, shard}));
  // The same state as two ranks save it: the manifest says 2 shards, rows split 3 + 2.
  {
    proto::Checkpoint ck = load_checkpoint(path);
    ck.set_num_shards(2);
    const proto::CheckpointShard whole = load_checkpoint_shard(shard_path(path, 0, 1));
    std::vector<std::string> parts;
    save_checkpoint(path, ck);
    parts.push_back(slurp(path));
    for (int s = 0; s < 2; ++s) {
      proto::CheckpointShard sh;
      sh.set_iter(whole.iter());
      sh.set_rank(s);
      sh.set_num_shards(2);
      for (const auto& b : whole.block()) {
        const ShardRange r = shard_range(b.rows(), s, 2);
        auto* nb = sh.add_block();
        nb->set_layer(b.layer());
        nb->set_index(b.index());
        nb->set_row_start(r.start);
        nb->set_rows(r.count);
        nb->set_cols(b.cols());
        for (int64_t i = r.start * b.cols(); i < (r.start + r.count) * b.cols(); ++i) {
          nb->add_data(b.data(static_cast<int>(i)));
          nb->add_history(b.history(static_cast<int>(i)));
        }
      }
      save_checkpoint_shard(path, sh);
      parts.push_back(slurp(path));
    }
    emit("checkpoint", "two_shards", fuzz::join_parts(parts));
  }
  // fuzz_checkpoint fills in the length and hash of a header whose hash is 0: the
  // fuzzer then mutates payloads past the hash check.
  auto unhashed = [](std::string s) {
    std::memset(&s[12], 0, 16);
    return s;
  };
  emit("checkpoint", "fixup_one_shard", fuzz::join_parts({unhashed(main), unhashed(shard)}));
  {
    const std::string two = slurp(g_out / "checkpoint" / "two_shards");
    auto parts = fuzz::split_parts(reinterpret_cast<const uint8_t*>(two.data()), two.size());
    for (auto& p : parts) p = unhashed(p);
    emit("checkpoint", "fixup_two_shards", fuzz::join_parts(parts));
  }
  std::string cut = main;
  cut.resize(cut.size() / 2);
  emit("checkpoint", "truncated", fuzz::join_parts({cut, shard}));
  emit("checkpoint", "bad_hash", fuzz::join_parts({flip(main, main.size() - 3), shard}));
  emit("checkpoint", "missing_shard", main);
  std::string liar = main;  // header claims 10 GB of payload
  const uint64_t big = 10ull << 30;
  std::memcpy(&liar[12], &big, 8);
  emit("checkpoint", "length_10GB", fuzz::join_parts({liar, shard}));

  // .caffemodel: a binary NetParameter, as Caffe writes it (Net::to_proto).
  proto::NetParameter net;
  f.net->to_proto(&net);
  emit("caffemodel", "fuzz_net", net.SerializeAsString());
  proto::NetParameter legacy = net;  // Caffe's 4-d num/channels/height/width shapes, double values
  for (auto& l : *legacy.mutable_layer())
    for (auto& b : *l.mutable_blobs()) {
      std::vector<int64_t> d(b.shape().dim().begin(), b.shape().dim().end());
      while (d.size() < 4) d.insert(d.begin(), 1);
      b.clear_shape();
      b.set_num(static_cast<int>(d[0]));
      b.set_channels(static_cast<int>(d[1]));
      b.set_height(static_cast<int>(d[2]));
      b.set_width(static_cast<int>(d[3]));
      for (float v : b.data()) b.add_double_data(v);
      b.clear_data();
    }
  emit("caffemodel", "legacy_shapes_double", legacy.SerializeAsString());
  std::string cm = net.SerializeAsString();
  emit("caffemodel", "truncated", cm.substr(0, cm.size() / 2));
  emit("caffemodel", "not_a_model", "hello\n");
  emit("caffemodel", "coco_checkpoint", main);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: coco-fuzz-corpus OUT_DIR   (e.g. tests/fuzz/corpus)\n";
    return 2;
  }
  g_out = argv[1];
  fuzz::init_quiet();
  const fs::path src = COCO_SOURCE_DIR, tmp = fuzz::scratch_dir() / "make";
  try {
    config_corpus(src);
    mnist_corpus(src);
    recordio_corpus(tmp);
    checkpoint_corpus(tmp);
  } catch (const std::exception& e) {
    std::cerr << "coco-fuzz-corpus: " << e.what() << "\n";
    return 1;
  }
  std::cout << "wrote the seed corpora under " << g_out << "\n";
  return 0;
}
