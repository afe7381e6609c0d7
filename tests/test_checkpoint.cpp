// Checkpoints: round trip, atomic replacement, and clear errors for truncated,
// corrupt and foreign files; Caffe-style binary weights load by layer name.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "tests/test_files.h"

namespace coco {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

proto::Checkpoint sample(int64_t iter) {
  proto::Checkpoint c;
  c.set_iter(iter);
  auto* l = c.mutable_net()->add_layer();
  l->set_name("w");
  auto* b = l->add_blobs();
  b->mutable_shape()->add_dim(3);
  for (int i = 0; i < 3; ++i) b->add_data(0.25f * i + iter);
  return c;
}

std::string expect_error(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

TEST(Checkpoint, RoundTrip) {
  TempDir d;
  const std::string p = (d.path / "a.ckpt").string();
  save_checkpoint(p, sample(7));
  const auto c = load_checkpoint(p);
  EXPECT_EQ(c.iter(), 7);
  EXPECT_EQ(c.SerializeAsString(), sample(7).SerializeAsString());
  // No temporary files left behind.
  int files = 0;
  for (auto& e : fs::directory_iterator(d.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Checkpoint, TruncatedCorruptAndForeignFilesAreClearErrors) {
  TempDir d;
  const std::string p = (d.path / "a.ckpt").string();
  save_checkpoint(p, sample(3));
  std::string bytes = read_file(p);

  const std::string cut = (d.path / "cut.ckpt").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 5);
  std::string msg = expect_error(cut);
  EXPECT_NE(msg.find("cut.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  const std::string bad = (d.path / "bad.ckpt").string();
  std::string flipped = bytes;
  flipped[flipped.size() - 2] ^= 0x40;
  std::ofstream(bad, std::ios::binary) << flipped;
  msg = expect_error(bad);
  EXPECT_NE(msg.find("corrupt"), std::string::npos) << msg;

  const std::string other = (d.path / "other.ckpt").string();
  std::ofstream(other) << "hello";
  msg = expect_error(other);
  EXPECT_NE(msg.find("not a coco checkpoint"), std::string::npos) << msg;

  msg = expect_error((d.path / "missing.ckpt").string());
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST(Checkpoint, FailedWriteKeepsThePreviousFile) {
  if (::geteuid() == 0) {
    // Root ignores directory permissions; use a path whose parent is a file instead.
    TempDir d;
    const std::string p = (d.path / "a.ckpt").string();
    save_checkpoint(p, sample(1));
    EXPECT_THROW(save_checkpoint(p + "/child.ckpt", sample(2)), Error);
    EXPECT_EQ(load_checkpoint(p).iter(), 1);
    return;
  }
  TempDir d;
  const std::string p = (d.path / "a.ckpt").string();
  save_checkpoint(p, sample(1));
  fs::permissions(d.path, fs::perms::owner_read | fs::perms::owner_exec);
  EXPECT_THROW(save_checkpoint(p, sample(2)), Error);
  fs::permissions(d.path, fs::perms::owner_all);
  EXPECT_EQ(load_checkpoint(p).iter(), 1);
}

TEST(Checkpoint, ReplacesAtomically) {
  TempDir d;
  const std::string p = (d.path / "a.ckpt").string();
  save_checkpoint(p, sample(1));
  save_checkpoint(p, sample(2));
  EXPECT_EQ(load_checkpoint(p).iter(), 2);
}

// The temporary file of a write that was interrupted (crash, kill) is never read as a
// checkpoint; the next run reports it and removes it once its writer is gone.
TEST(Checkpoint, PartialWritesOfDeadProcessesAreReportedAndRemoved) {
  TempDir d;
  const std::string p = (d.path / "snap_iter_8.ckpt").string();
  const std::string mine = partial_write_name(p);  // this process: alive
  EXPECT_EQ(mine.rfind(p + ".tmp-", 0), 0u) << mine;
  const std::string host = mine.substr(p.size() + 5, mine.rfind('-') - p.size() - 5);
  // A pid that is surely not running: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  const std::string dead = p + ".tmp-" + host + "-" + std::to_string(child);
  const std::string other_host = p + ".tmp-some_other_host-" + std::to_string(child);
  const std::string other_run = (d.path / "other_iter_8.ckpt.tmp-").string() + host + "-" + std::to_string(child);
  for (const auto& f : {mine, dead, other_host, other_run}) std::ofstream(f) << "half";
  const auto notes = clean_partial_writes(d.path.string(), "snap");
  ASSERT_EQ(notes.size(), 2u);
  const std::string all = notes[0] + "\n" + notes[1];
  EXPECT_NE(all.find(dead + ": a partial checkpoint left by an interrupted write"), std::string::npos) << all;
  EXPECT_NE(all.find(mine + ": a partial checkpoint being written by process"), std::string::npos) << all;
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(mine));        // a live writer's file is left alone
  EXPECT_TRUE(fs::exists(other_host));  // that host's runs judge it
  EXPECT_TRUE(fs::exists(other_run));   // another snapshot prefix
  EXPECT_THROW(load_checkpoint(mine), Error);
}

TEST(Checkpoint, UnwritableFolderIsAClearErrorBeforeAnyTraining) {
  TempDir d;
  ensure_writable_folder((d.path / "new" / "deeper").string(), "snapshot");
  EXPECT_TRUE(fs::is_directory(d.path / "new" / "deeper"));
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path / "new" / "deeper"), fs::directory_iterator()), 0);
  std::ofstream(d.path / "file") << "x";
  try {
    ensure_writable_folder((d.path / "file" / "snaps").string(), "snapshot");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("file/snaps: cannot create the snapshot folder"), std::string::npos)
        << e.what();
  }
}

TEST(Checkpoint, CaffeBinaryWeightsLoadByLayerName) {
  TempDir d;
  LocalCommunicator comm;
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 2 dim: 3 }
    input: "y" input_shape { dim: 2 }
    layer { name: "head" type: "CocoLoss" bottom: "x" bottom: "y" top: "loss"
            coco_loss_param { num_output: 4 scale: 2 } })",
             "<net>", &np);
  Net net(np, Phase::kTrain, &comm, 5);
  // A Caffe model: legacy 4-d blob shape, an extra layer coco skips.
  proto::NetParameter caffe;
  auto* extra = caffe.add_layer();
  extra->set_name("not_here");
  extra->add_blobs()->add_data(1);
  auto* l = caffe.add_layer();
  l->set_name("head");
  auto* b = l->add_blobs();
  b->set_num(1);
  b->set_channels(1);
  b->set_height(4);
  b->set_width(3);
  for (int i = 0; i < 12; ++i) b->add_data(static_cast<float>(i));
  const std::string path = (d.path / "m.caffemodel").string();
  std::ofstream(path, std::ios::binary) << caffe.SerializeAsString();
  load_weights(net, path);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(net.params()[0].blob->cdata()[i], static_cast<float>(i));

  // Wrong element count: a clear error naming the layer.
  b->clear_data();
  b->add_data(1);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << caffe.SerializeAsString();
  try {
    load_weights(net, path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'head'"), std::string::npos) << e.what();
  }
}

// --weights that initialises nothing, or leaves a learnable layer to its filler
// without being told to, is an error naming the layers.
TEST(Checkpoint, CaffeWeightsMustCoverTheNetUnlessToldOtherwise) {
  TempDir d;
  LocalCommunicator comm;
  proto::NetParameter np;
  parse_text(R"(
    input: "x" input_shape { dim: 2 dim: 3 }
    input: "y" input_shape { dim: 2 }
    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "f" inner_product_param { num_output: 3 } }
    layer { name: "head" type: "CocoLoss" bottom: "f" bottom: "y" top: "loss"
            coco_loss_param { num_output: 4 scale: 2 } })",
             "<net>", &np);
  Net net(np, Phase::kTrain, &comm, 5);
  auto write = [&](const proto::NetParameter& m) {
    const std::string path = (d.path / "m.caffemodel").string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << m.SerializeAsString();
    return path;
  };
  auto error_of = [&](const std::string& path, const std::vector<std::string>& keep) -> std::string {
    try {
      load_weights(net, path, keep);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  proto::NetParameter other;  // another net's model
  auto* l = other.add_layer();
  l->set_name("conv9");
  l->add_blobs()->add_data(1);
  EXPECT_NE(error_of(write(other), {}).find("none of the net's layers"), std::string::npos);

  proto::NetParameter backbone;  // the backbone only: the head is new
  auto* fc = backbone.add_layer();
  fc->set_name("fc");
  auto* w = fc->add_blobs();
  w->mutable_shape()->add_dim(3);
  w->mutable_shape()->add_dim(3);
  for (int i = 0; i < 9; ++i) w->add_data(0.5f);
  auto* bias = fc->add_blobs();
  bias->mutable_shape()->add_dim(3);
  for (int i = 0; i < 3; ++i) bias->add_data(0.25f);
  const std::string path = write(backbone);
  const std::string e = error_of(path, {});
  EXPECT_NE(e.find("no parameters for layer(s) 'head'"), std::string::npos) << e;
  EXPECT_NE(e.find("--weights-keep-fillers head"), std::string::npos) << e;
  EXPECT_NE(error_of(path, {"head", "nope"}).find("'nope'"), std::string::npos);
  EXPECT_NE(error_of(path, {"head", "fc"}).find("'fc'"), std::string::npos);
  EXPECT_EQ(error_of(path, {"head"}), "");
  EXPECT_EQ(net.params()[0].blob->cdata()[0], 0.5f);
}

}  // namespace
}  // namespace coco
