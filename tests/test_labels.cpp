// Labels as int32 class ids (coco's sources) or float ids (Caffe-style inputs):
// the conversions of layers/labels.h, and every label-reading layer giving the
// same results from either type.
#include "layers/labels.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "layers/accuracy_layer.h"
#include "layers/coco_loss_layer.h"
#include "layers/flatten_layer.h"
#include "layers/softmax_loss_layer.h"
#include "tests/coco_head_golden.h"
#include "tests/error_of.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

namespace {

void set_float_labels(Blob& b, const std::vector<float>& v) {
  b.reshape({static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), b.mutable_data());
}

void set_int_labels(Blob& b, const std::vector<int32_t>& v) {
  b.set_element_type(ElementType::kInt32);
  b.reshape({static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), b.mutable_data_int32());
}

proto::LayerParameter coco_param(int64_t K, const std::string& extra = "scale: 4") {
  std::ostringstream s;
  s << "name: \"head\" type: \"CocoLoss\" coco_loss_param { num_output: " << K << " " << extra << " }";
  return layer_param(s.str());
}

}  // namespace

TEST(Labels, ConversionsBetweenTheTwoTypes) {
  Blob ids, floats;
  set_int_labels(ids, {0, 7, 16777217, 2147483647});
  Tensor scratch;
  const float* f = float_labels(ids, scratch);
  EXPECT_EQ(f[1], 7.f);
  EXPECT_EQ(f[2], 16777216.f);  // float's nearest: why the head reads ids
  const float nan = std::numeric_limits<float>::quiet_NaN();
  set_float_labels(floats, {3.f, 2.5f, -1.f, nan, 16777216.f, 3e9f});
  const int32_t* y = int32_labels(floats, scratch);
  EXPECT_EQ(y[0], 3);
  EXPECT_EQ(y[1], -1);  // not an integer: no class
  EXPECT_EQ(y[2], -1);
  EXPECT_EQ(y[3], -1);
  EXPECT_EQ(y[4], 16777216);
  EXPECT_EQ(y[5], -1);  // past int32
  EXPECT_EQ(int32_labels(ids, scratch), ids.cdata_int32());  // no copy of ids
  EXPECT_EQ(float_labels(floats, scratch), floats.cdata());
  EXPECT_EQ(first_label_outside(ids, 4, 2147483647), 3);
  EXPECT_EQ(first_label_outside(ids, 3, 16777218), -1);
  EXPECT_EQ(first_label_outside(floats, 6, 10), 1);
  EXPECT_EQ(label_str(ids, 2), "16777217");
  EXPECT_EQ(label_str(floats, 1), "2.5");
  EXPECT_THROW(floats.cdata_int32(), Error);
}

// The golden cases' labels as int32 ids give the float labels' loss and gradients
// bit for bit.
TEST(Labels, CocoLossReadsIdsAsItReadsFloats) {
  for (const GoldenCase& gc : read_golden()) {
    SCOPED_TRACE(gc.name);
    std::vector<float> loss_diff_x[2];
    std::vector<float> grad_c[2];
    float loss_value[2];
    for (int as_ids = 0; as_ids < 2; ++as_ids) {
      CocoLossLayer layer(coco_param(gc.K, golden_extra(gc) + " chunk_size: 2"));
      Blob x({gc.M, gc.D}), y, loss;
      for (int64_t i = 0; i < x.count(); ++i) x.mutable_data()[i] = static_cast<float>(gc.v.at("x")[i]);
      std::vector<int32_t> ids;
      for (double l : gc.v.at("labels")) ids.push_back(static_cast<int32_t>(l));
      if (as_ids)
        set_int_labels(y, ids);
      else
        set_float_labels(y, std::vector<float>(ids.begin(), ids.end()));
      LayerHarness h;
      h.setup(layer, {&x, &y}, {&loss});
      const auto& c = gc.v.at("centroids");
      for (size_t i = 0; i < c.size(); ++i) layer.blobs()[0]->mutable_data()[i] = static_cast<float>(c[i]);
      layer.blobs()[0]->diff().zero();
      layer.forward({&x, &y}, {&loss});
      loss.mutable_diff()[0] = 1.f;
      layer.backward({&loss}, {true, false}, {&x, &y});
      loss_value[as_ids] = loss.cdata()[0];
      loss_diff_x[as_ids].assign(x.cdiff(), x.cdiff() + x.count());
      grad_c[as_ids] = layer.blobs()[0]->diff().to_vector();
    }
    EXPECT_EQ(loss_value[0], loss_value[1]);
    EXPECT_EQ(loss_diff_x[0], loss_diff_x[1]);
    EXPECT_EQ(grad_c[0], grad_c[1]);
  }
}

TEST(Labels, SoftmaxLossAndAccuracyReadIds) {
  Blob z({4, 3}), loss, prob, acc;
  fill_uniform(z, -2, 2, 5);
  float got[2][2];
  for (int as_ids = 0; as_ids < 2; ++as_ids) {
    Blob y;
    if (as_ids)
      set_int_labels(y, {2, 0, 1, 1});
    else
      set_float_labels(y, {2, 0, 1, 1});
    SoftmaxWithLossLayer softmax(layer_param(R"(name: "loss" type: "SoftmaxWithLoss")"));
    AccuracyLayer accuracy(layer_param(R"(name: "acc" type: "Accuracy")"));
    LayerHarness h;
    h.setup(softmax, {&z, &y}, {&loss, &prob});
    h.setup(accuracy, {&z, &y}, {&acc});
    softmax.forward({&z, &y}, {&loss, &prob});
    accuracy.forward({&z, &y}, {&acc});
    got[as_ids][0] = loss.cdata()[0];
    got[as_ids][1] = acc.cdata()[0];
  }
  EXPECT_EQ(got[0][0], got[1][0]);
  EXPECT_EQ(got[0][1], got[1][1]);
}

TEST(Labels, AnIdOutsideTheClassesIsNamed) {
  CocoLossLayer layer(coco_param(5));
  Blob x({2, 3}), y, loss;
  fill_uniform(x, -1, 1, 3);
  set_int_labels(y, {1, 5});
  LayerHarness h;
  h.setup(layer, {&x, &y}, {&loss});
  const std::string e = error_of([&] { layer.forward({&x, &y}, {&loss}); });
  EXPECT_NE(e.find("label 5 of sample 1 is not a class in [0, 5)"), std::string::npos) << e;
}

// Inside the head a label is a float column of the rank's shard: one rank holds
// at most 2^24 classes, and more are refused with the ranks that would do.
TEST(Labels, OneRankHoldsAtMostTwoToThe24thClasses) {
  CocoLossLayer layer(coco_param((int64_t{1} << 24) + 3));
  Blob x({2, 2}), y, loss;
  set_int_labels(y, {0, 1});
  LayerHarness h;
  const std::string e = error_of([&] { h.setup(layer, {&x, &y}, {&loss}); });
  EXPECT_NE(e.find("16777219 classes on 1 rank(s) give rank 0 16777219 classes; one rank holds at most 16777216: "
                   "run on at least 2 ranks"),
            std::string::npos)
      << e;
}

// A layer that would read the ids' bits as floats refuses them: only the label
// readers (and Split, which copies them on) take an int32 bottom.
TEST(Labels, OnlyTheLabelReadersTakeIds) {
  FlattenLayer flatten(layer_param(R"(name: "flat" type: "Flatten" bottom: "label" top: "f")"));
  Blob y, out;
  set_int_labels(y, {1, 2});
  y.reshape({2, 1});
  LayerHarness h;
  h.setup(flatten, {&y}, {&out});
  const std::string e = error_of([&] { flatten.forward({&y}, {&out}); });
  EXPECT_NE(e.find("layer 'flat' (Flatten): bottom 0 'label' holds int32 class ids"), std::string::npos) << e;
}

}  // namespace coco::testing
