// Whole nets on CUDA against the CPU: LeNet++ with each head trains the same few
// SGD steps on both devices; the steady-state loop allocates no device memory; the
// debug scan names a planted NaN on the device. Skipped where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/config.h"
#include "engine/cuda_runtime.h"
#include "engine/net.h"
#include "engine/solver.h"
#include "engine/trainer.h"
#include "tests/cuda_parity.h"

namespace coco::testing {
namespace {

struct TrainRun {
  std::unique_ptr<Net> net;
  std::unique_ptr<SgdSolver> solver;
  std::vector<double> losses;
};

TrainRun train(const std::string& config, Device dev, int steps, int64_t batch) {
  TrainConfig cfg = load_train_config(std::string(COCO_SOURCE_DIR) + "/" + config);
  set_input_batch(&cfg.net, batch);
  static LocalCommunicator comm;
  TrainRun r;
  r.net = std::make_unique<Net>(cfg.net, Phase::kTrain, &comm, 1, cfg.net_origin);
  r.solver = std::make_unique<SgdSolver>(cfg.solver, r.net.get());
  Blob* data = r.net->input_blobs()[0];
  Blob* label = r.net->input_blobs()[1];
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (int64_t i = 0; i < data->count(); ++i) data->mutable_data()[i] = u(g);
  for (int64_t i = 0; i < label->count(); ++i) label->mutable_data()[i] = static_cast<float>((i * 7) % 10);
  r.net->to_device(dev);
  r.solver->to_device(dev);
  for (int it = 0; it < steps; ++it) {
    r.net->set_iter(it);
    r.net->clear_param_diffs();
    r.losses.push_back(r.net->forward_backward());
    r.solver->apply_update(it);
  }
  return r;
}

// Three SGD steps of LeNet++ (convolutions, PReLU, pooling, inner products and
// the head) on both devices. cuDNN's convolution algorithms and cuBLAS sum in
// other orders than oneDNN/OpenBLAS, and three steps of SGD carry those rounding
// differences forward: 1e-3 relative on the loss and 2e-3 on the parameters is
// well above float32 rounding after ~10^4-term sums and well below any real bug
// (a wrong gradient moves the loss by percents).
TEST(CudaNet, LeNetTrainsTheSameStepsOnBothDevices) {
  COCO_REQUIRE_CUDA();
  for (const char* config : {"configs/mnist_coco.prototxt", "configs/mnist_softmax.prototxt",
                             "configs/mnist_center.prototxt"}) {
    SCOPED_TRACE(config);
    TrainRun cpu = train(config, Device::kCPU, 3, 33);
    TrainRun gpu = train(config, Device::kCUDA, 3, 33);
    for (size_t i = 0; i < cpu.losses.size(); ++i)
      EXPECT_NEAR(gpu.losses[i], cpu.losses[i], 1e-3 * std::fabs(cpu.losses[i]) + 1e-5) << "step " << i;
    ParityOptions o;
    o.rtol = 2e-3;
    o.atol = 2e-4;
    for (size_t p = 0; p < cpu.net->params().size(); ++p)
      detail_parity::expect_close(cpu.net->params()[p].layer + " param " + std::to_string(cpu.net->params()[p].index),
                                  cpu.net->params()[p].blob->data(), gpu.net->params()[p].blob->data(), o);
  }
}

// The caching allocator keeps cudaMalloc out of the training loop: after the
// warm-up steps no step asks the driver for memory.
TEST(CudaNet, SteadyStateStepsAllocateNoDeviceMemory) {
  COCO_REQUIRE_CUDA();
  TrainRun r = train("configs/mnist_coco.prototxt", Device::kCUDA, 2, 64);
  const auto before = cuda::memory_stats();
  for (int it = 2; it < 12; ++it) {
    r.net->set_iter(it);
    r.net->clear_param_diffs();
    r.net->forward_backward();
    r.solver->apply_update(it);
  }
  cuda::synchronize("steady state");
  const auto after = cuda::memory_stats();
  EXPECT_EQ(after.device_allocs, before.device_allocs);
  EXPECT_EQ(after.device_frees, before.device_frees);
  EXPECT_GT(after.peak_in_use, 0);
}

TEST(CudaNet, DebugScanNamesAPlantedNaNOnTheDevice) {
  COCO_REQUIRE_CUDA();
  TrainRun r = train("configs/mnist_coco.prototxt", Device::kCUDA, 1, 16);
  // A NaN planted in ip1's weights (on the device).
  for (const auto& p : r.net->params())
    if (p.layer == "ip1" && p.index == 0) {
      Tensor host;
      host.copy_from(p.blob->data());
      host.at(5) = NAN;
      p.blob->data().copy_from(host);
    }
  r.net->set_debug(true);
  r.net->set_iter(4);
  try {
    r.net->forward();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("iteration 4, forward of layer 'ip1' (InnerProduct)"), std::string::npos) << m;
    EXPECT_NE(m.find("top 'ip1'"), std::string::npos) << m;
  }
}

// The same step twice in deterministic mode gives bit-identical results.
TEST(CudaNet, DeterministicModeRepeatsBitForBit) {
  COCO_REQUIRE_CUDA();
  cuda::set_deterministic(true);
  TrainRun a = train("configs/mnist_coco.prototxt", Device::kCUDA, 3, 40);
  TrainRun b = train("configs/mnist_coco.prototxt", Device::kCUDA, 3, 40);
  cuda::set_deterministic(false);
  EXPECT_EQ(a.losses, b.losses);
  for (size_t p = 0; p < a.net->params().size(); ++p)
    EXPECT_EQ(a.net->params()[p].blob->data().to_vector(), b.net->params()[p].blob->data().to_vector());
}

}  // namespace
}  // namespace coco::testing
