// The NCCL communicator at size 1 on a GPU: every collective is the identity on
// device memory, and results are ordered before the compute stream's next copy.
// Skipped (not failed) without a GPU or in a build without NCCL.
#include "comm/nccl_communicator.h"

#include <gtest/gtest.h>

#include "engine/common.h"
#include "engine/device_memory.h"
#include "engine/tensor.h"

namespace coco {
namespace {

TEST(NcclCommunicator, SizeOneCollectivesAreTheIdentity) {
  if (!nccl_available() || !cuda_available()) GTEST_SKIP() << "no GPU or no NCCL in this build";
  NcclCommunicator comm(0);
  EXPECT_EQ(comm.size(), 1);
  std::vector<float> host(37);
  for (size_t i = 0; i < host.size(); ++i) host[i] = 0.5f * i - 3;
  Tensor x({37}, Device::kCUDA), y({37}, Device::kCUDA);
  device_copy(x.data(), Device::kCUDA, host.data(), Device::kCPU, 37 * 4);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
    comm.all_reduce(x.data(), 37, op);
    EXPECT_EQ(x.to_vector(), host);
  }
  comm.all_gather(x.data(), y.data(), {37});
  EXPECT_EQ(y.to_vector(), host);
  y.zero();
  comm.reduce_scatter(x.data(), y.data(), {37});
  EXPECT_EQ(y.to_vector(), host);
  comm.broadcast(x.data(), 37, 0);
  comm.barrier();
  EXPECT_EQ(x.to_vector(), host);
  EXPECT_EQ(comm.stats(Collective::kAllReduce).calls, 3);
}

TEST(NcclCommunicator, BuildWithoutNcclSaysSo) {
  if (nccl_available()) GTEST_SKIP() << "this build has NCCL";
  EXPECT_THROW(NcclCommunicator comm(0), Error);
}

}  // namespace
}  // namespace coco
