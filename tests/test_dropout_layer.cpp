#include "layers/dropout_layer.h"

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

// The documented stream, written out here independently: FNV-1a 64 of the name,
// mixed with the iteration.
static uint64_t expected_stream(const std::string& name, int64_t iter) {
  uint64_t h = 14695981039346656037ull;
  for (char ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return mix64(h ^ mix64(static_cast<uint64_t>(iter)));
}

TEST(DropoutLayer, EachBatchOfAnIterationDrawsItsOwnMask) {
  // Gradient accumulation (iter_size) runs several batches per iteration: the same
  // mask for each would drop the same positions in every one of them. The first
  // batch keeps the stream it always had.
  EXPECT_EQ(DropoutLayer::mask_stream("d", 5, 0), expected_stream("d", 5));
  EXPECT_NE(DropoutLayer::mask_stream("d", 5, 1), DropoutLayer::mask_stream("d", 5, 0));
  EXPECT_NE(DropoutLayer::mask_stream("d", 5, 1), DropoutLayer::mask_stream("d", 5, 2));
  DropoutLayer layer(layer_param(R"(name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.5 })"));
  Blob x({64}), y0, y1;
  fill_uniform(x, 0.5, 1.5, 7);
  LayerHarness h;
  h.setup(layer, {&x}, {&y0});
  layer.forward({&x}, {&y0});
  h.ctx.batch_in_iter = 1;
  layer.reshape({&x}, {&y1});
  layer.forward({&x}, {&y1});
  EXPECT_NE(y0.data().to_vector(), y1.data().to_vector());
}

TEST(DropoutLayer, TrainForwardMatchesCounterMask) {
  DropoutLayer layer(layer_param(R"(name: "drop7" type: "Dropout" dropout_param { dropout_ratio: 0.3 })"));
  Blob x({7, 11, 13}), y;
  fill_uniform(x, 0.5, 1.5, 7);  // nonzero: a dropped element is recognisable
  LayerHarness h;
  h.ctx.iter = 42;
  h.ctx.seed = 99;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  EXPECT_EQ(DropoutLayer::mask_stream("drop7", 42), expected_stream("drop7", 42));
  const uint64_t stream = expected_stream("drop7", 42);
  int64_t kept = 0;
  for (int64_t i = 0; i < x.count(); ++i) {
    const bool keep = uniform01(99, stream, i) >= 0.3f;
    kept += keep;
    EXPECT_FLOAT_EQ(y.cdata()[i], keep ? x.cdata()[i] / 0.7f : 0.0f) << i;
  }
  EXPECT_NEAR(static_cast<double>(kept) / x.count(), 0.7, 0.03);
}

TEST(DropoutLayer, MaskFixedWithinAnIterationAndChangesAcross) {
  DropoutLayer a(layer_param(R"(name: "a" type: "Dropout")")), b(layer_param(R"(name: "b" type: "Dropout")"));
  Blob x({4, 50}), y1, y2, y3;
  fill_uniform(x, 1, 2, 3);
  LayerHarness h;
  h.setup(a, {&x}, {&y1});
  h.setup(b, {&x}, {&y3});
  a.forward({&x}, {&y1});
  a.reshape({&x}, {&y2});
  a.forward({&x}, {&y2});
  for (int64_t i = 0; i < x.count(); ++i) EXPECT_EQ(y1.cdata()[i], y2.cdata()[i]);
  b.forward({&x}, {&y3});  // another layer: another mask
  int64_t differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += (y1.cdata()[i] == 0) != (y3.cdata()[i] == 0);
  EXPECT_GT(differ, 20);
  h.ctx.iter = 1;  // another iteration: another mask
  a.forward({&x}, {&y2});
  differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += (y1.cdata()[i] == 0) != (y2.cdata()[i] == 0);
  EXPECT_GT(differ, 20);
}

TEST(DropoutLayer, TestPhaseIsIdentity) {
  DropoutLayer layer(layer_param(R"(name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.6 })"));
  Blob x({3, 5}), y;
  fill_uniform(x, -1, 1, 2);
  LayerHarness h;
  h.ctx.phase = Phase::kTest;
  h.setup(layer, {&x}, {&y});
  layer.forward({&x}, {&y});
  for (int64_t i = 0; i < x.count(); ++i) y.mutable_diff()[i] = 2.0f * i;
  layer.backward({&y}, {true}, {&x});
  for (int64_t i = 0; i < x.count(); ++i) {
    EXPECT_EQ(y.cdata()[i], x.cdata()[i]);
    EXPECT_EQ(x.cdiff()[i], 2.0f * i);
  }
}

TEST(DropoutLayer, GradientCheck) {
  for (Shape s : {Shape{2, 3, 5}, Shape{1, 7}}) {
    DropoutLayer layer(layer_param(R"(name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.4 })"));
    Blob x(s), y;
    fill_uniform(x, -1, 1, 11);
    LayerHarness h;
    h.ctx.iter = 5;
    h.setup(layer, {&x}, {&y});
    GradientChecker().check(layer, {&x}, {&y});
  }
}

TEST(DropoutLayer, InPlaceEqualsOutOfPlace) {
  auto p = layer_param(R"(name: "d" type: "Dropout")");
  DropoutLayer a(p), b(p);
  Blob x({5, 9}), y, z({5, 9});
  fill_uniform(x, -1, 1, 3);
  z.data().copy_from(x.data());
  LayerHarness h;
  h.ctx.iter = 3;
  h.setup(a, {&x}, {&y});
  h.setup(b, {&z}, {&z});
  a.forward({&x}, {&y});
  b.forward({&z}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = z.mutable_diff()[i] = 1.0f + i;
  a.backward({&y}, {true}, {&x});
  b.backward({&z}, {true}, {&z});
  for (int64_t i = 0; i < y.count(); ++i) {
    EXPECT_EQ(y.cdata()[i], z.cdata()[i]);
    EXPECT_EQ(x.cdiff()[i], z.cdiff()[i]);
    EXPECT_EQ(x.cdiff()[i] == 0, y.cdata()[i] == 0);  // gradient flows where data did
  }
}

TEST(DropoutLayer, BadRatio) {
  for (const char* r : {"1.0", "-0.1", "1.5"}) {
    DropoutLayer layer(layer_param(std::string(R"(name: "d" type: "Dropout" dropout_param { dropout_ratio: )") + r + " }"));
    Blob x({2, 2}), y;
    LayerHarness h;
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error) << r;
  }
}

}  // namespace coco::testing
