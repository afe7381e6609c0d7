#include "layers/flatten_layer.h"

#include "engine/common.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

TEST(FlattenLayer, Shapes) {
  struct Case { const char* params; Shape out; };
  const Case cases[] = {
      {"", {2, 60}},
      {"flatten_param { axis: 0 }", {120}},
      {"flatten_param { axis: 1 end_axis: 2 }", {2, 12, 5}},
      {"flatten_param { axis: -2 }", {2, 3, 20}},
      {"flatten_param { axis: 2 end_axis: 2 }", {2, 3, 4, 5}},
  };
  for (const auto& cs : cases) {
    FlattenLayer layer(layer_param(std::string(R"(name: "f" type: "Flatten" )") + cs.params));
    Blob x({2, 3, 4, 5}), y;
    fill_uniform(x, -1, 1, 2);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    EXPECT_EQ(y.shape(), cs.out) << cs.params;
    layer.forward({&x}, {&y});
    for (int64_t i = 0; i < x.count(); ++i) EXPECT_EQ(y.cdata()[i], x.cdata()[i]);
  }
}

TEST(FlattenLayer, GradientCheck) {
  for (Shape s : {Shape{2, 3, 2, 3}, Shape{1, 5, 1}}) {
    FlattenLayer layer(layer_param(R"(name: "f" type: "Flatten")"));
    Blob x(s), y;
    fill_uniform(x, -1, 1, 11);
    LayerHarness h;
    h.setup(layer, {&x}, {&y});
    GradientChecker().check(layer, {&x}, {&y});
  }
}

TEST(FlattenLayer, BadAxes) {
  Blob x({2, 3, 4}), y;
  LayerHarness h;
  for (const char* params : {"flatten_param { axis: 2 end_axis: 1 }", "flatten_param { axis: 3 }",
                             "flatten_param { end_axis: -4 }"}) {
    FlattenLayer layer(layer_param(std::string(R"(name: "f" type: "Flatten" )") + params));
    EXPECT_THROW(h.setup(layer, {&x}, {&y}), Error) << params;
  }
}

}  // namespace coco::testing
