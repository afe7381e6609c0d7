// Every seed prototxt parses unchanged; parse errors name file:line:column.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/common.h"
#include "engine/config.h"
#include "tests/seed_files.h"

namespace coco {
namespace {

TEST(Config, EverySeedNetParses) {
  COCO_SEED_DIR_OR_SKIP(dir);
  const char* nets[] = {"model/net_test.prototxt", "model/train_prototxts/net_cocoloss.prototxt",
                        "model/train_prototxts/net_softmax.prototxt", "model/train_prototxts/net_centerloss.prototxt",
                        "materials_for_face/ir235_release.prototxt"};
  for (const char* n : nets) {
    SCOPED_TRACE(n);
    proto::NetParameter net;
    ASSERT_NO_THROW(read_text_file(dir + "/" + n, &net));
    EXPECT_GT(net.layer_size(), 10);
    EXPECT_EQ(net.input_size(), std::string(n) == "model/net_test.prototxt" ? 1 : 2);
    EXPECT_EQ(net.input_dim_size(), 4 * net.input_size());
  }
  proto::NetParameter ir;
  read_text_file(dir + "/materials_for_face/ir235_release.prototxt", &ir);
  EXPECT_EQ(ir.name(), "IRv1");
  EXPECT_EQ(ir.input_dim(2), 235);
  int bn = 0;
  for (const auto& l : ir.layer()) bn += l.type() == "BN";
  EXPECT_EQ(bn, 242);
  const auto* cp = &ir.layer(0);
  for (const auto& l : ir.layer())
    if (l.type() == "CenterProjection") cp = &l;
  EXPECT_EQ(cp->center_projection_param().num_output(), 87020u);
  EXPECT_FLOAT_EQ(cp->center_projection_param().scale(), 21.475f);
}

TEST(Config, EverySeedSolverParses) {
  COCO_SEED_DIR_OR_SKIP(dir);
  const char* solvers[] = {"model/solver_test.prototxt", "model/train_prototxts/solver_cocoloss.prototxt",
                           "model/train_prototxts/solver_softmax.prototxt",
                           "model/train_prototxts/solver_centerloss.prototxt", "materials_for_face/solver_train.prototxt"};
  for (const char* s : solvers) {
    SCOPED_TRACE(s);
    proto::SolverParameter sp;
    ASSERT_NO_THROW(read_text_file(dir + "/" + s, &sp));
    EXPECT_EQ(sp.lr_policy(), "multistep");
    EXPECT_GT(sp.stepvalue_size(), 2);
  }
  // A seed solver with its net beside it resolves the net.
  const TrainConfig cfg = load_train_config(dir + "/model/train_prototxts/solver_cocoloss.prototxt");
  EXPECT_FALSE(cfg.net_only);
  EXPECT_EQ(cfg.net.name(), "LeNet++");
  EXPECT_NE(cfg.net_origin.find("net_cocoloss.prototxt"), std::string::npos);
  EXPECT_FLOAT_EQ(cfg.solver.base_lr(), 0.1f);
}

TEST(Config, ParseErrorNamesFileLineColumn) {
  proto::NetParameter net;
  try {
    parse_text("name: \"x\"\nlayer {\n  name: \"a\"\n  bogus_field: 3\n}\n", "my.prototxt", &net);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("my.prototxt:4:", 0), 0u) << what;  // protobuf points just past the name
    EXPECT_NE(what.find("bogus_field"), std::string::npos) << what;
  }
  try {
    parse_text("layer { name: \"a\" ", "cut.prototxt", &net);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("cut.prototxt:1:", 0), 0u) << e.what();
  }
}

TEST(Config, MissingFileAndMissingNetAreClear) {
  EXPECT_THROW(load_train_config("/nonexistent/solver.prototxt"), Error);
  const auto tmp = std::filesystem::temp_directory_path() / "coco_cfg_test.prototxt";
  std::ofstream(tmp) << "base_lr: 0.1\n";
  try {
    load_train_config(tmp.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("names no net"), std::string::npos) << e.what();
  }
  std::ofstream(tmp) << "base_lr: 0.1\nnet: \"does_not_exist.prototxt\"\n";
  try {
    load_train_config(tmp.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does_not_exist.prototxt"), std::string::npos) << e.what();
  }
  std::filesystem::remove(tmp);
}

TEST(Config, ShippedConfigsParse) {
  for (const char* c : {"mnist_coco", "mnist_softmax", "mnist_center"}) {
    SCOPED_TRACE(c);
    const TrainConfig cfg = load_train_config(std::string(COCO_SOURCE_DIR) + "/configs/" + c + ".prototxt");
    EXPECT_FALSE(cfg.net_only);
    EXPECT_EQ(cfg.solver.train_data().source(), "mnist:data/mnist");
    EXPECT_EQ(cfg.net.name(), "LeNet++");
  }
}

}  // namespace
}  // namespace coco
