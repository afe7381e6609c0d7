// A build without the CUDA backend (COCO_WITH_CUDA=0): every layer still has its
// CUDA overrides (COCO_CUDA_STUBS), and reaching one -- through the ordinary
// forward()/backward() dispatch on CUDA blobs -- throws a clear coco::Error that
// names the layer and says the build has no CUDA backend. So does Layer's default
// for a layer without a CUDA path. (Named so that ctest labels it cpu: it runs in
// the CPU-only build and skips in a CUDA one.)
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/common.h"
#include "engine/layer.h"
#include "tests/gradient_checker.h"
#include "tests/error_of.h"

namespace coco::testing {

// Every built-in layer with a CUDA path (Input's CUDA path does nothing, as on the CPU).
const char* const kTypes[] = {"Accuracy", "BatchNorm", "BN", "CenterLoss", "CenterProjection", "CocoLoss",
                              "Concat", "Convolution", "Dropout", "Eltwise", "Flatten", "InnerProduct",
                              "Normalize", "Pooling", "PReLU", "ReLU", "Scale", "SoftmaxWithLoss", "Split"};

// A layer without CUDA overrides: Layer's defaults.
class CpuOnlyLayer final : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "CpuOnly"; }
  void reshape(const Blobs&, const Blobs&) override {}

 protected:
  void forward_cpu(const Blobs&, const Blobs&) override {}
  void backward_cpu(const Blobs&, const std::vector<bool>&, const Blobs&) override {}
};

void expect_no_cuda_backend(Layer& layer, const std::string& type) {
  Blob x({0}, Device::kCUDA), y({0}, Device::kCUDA);  // empty: nothing is allocated
  const std::string fwd = error_of([&] { layer.forward({&x}, {&y}); });
  EXPECT_NE(fwd.find("layer 'l' (" + type + "): this coco build has no CUDA backend"), std::string::npos) << fwd;
  const std::string bwd = error_of([&] { layer.backward({&y}, {true}, {&x}); });
  EXPECT_NE(bwd.find("layer 'l' (" + type + "): this coco build has no CUDA backend"), std::string::npos) << bwd;
}

TEST(CpuOnlyBuild, EveryLayersCudaPathThrowsNoCudaBackend) {
#if COCO_WITH_CUDA
  GTEST_SKIP() << "this build has the CUDA backend";
#else
  for (const char* type : kTypes) {
    SCOPED_TRACE(type);
    auto layer = layer_registry().create(layer_param(std::string("name: \"l\" type: \"") + type + "\""));
    expect_no_cuda_backend(*layer, type);
  }
#endif
}

TEST(CpuOnlyBuild, LayerDefaultCudaPathThrowsNoCudaBackend) {
#if COCO_WITH_CUDA
  GTEST_SKIP() << "this build has the CUDA backend";
#else
  CpuOnlyLayer layer(layer_param("name: \"l\" type: \"CpuOnly\""));
  expect_no_cuda_backend(layer, "CpuOnly");
#endif
}

}  // namespace coco::testing
