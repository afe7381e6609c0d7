// Every collective of MpiCommunicator against a serial result: each rank's input is
// a function of (seed, rank, index) that every rank can compute, so each rank checks
// the whole result by itself. Run under mpiexec with 2, 3 and 4 ranks (ctest).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "comm/mpi_communicator.h"
#include "engine/common.h"
#include "engine/rng.h"

namespace coco {
namespace {

MpiCommunicator* g_comm = nullptr;

// Small integers (exact in float, and in float sums of a few ranks).
float value(uint64_t seed, int rank, int64_t i) {
  return static_cast<float>(static_cast<int64_t>(hash3(seed, rank, i) % 201) - 100);
}

// Uneven per-rank counts, one of them zero when there are 3 or more ranks.
std::vector<int64_t> uneven_counts(int n) {
  std::vector<int64_t> c(n);
  for (int r = 0; r < n; ++r) c[r] = (r == 1 && n >= 3) ? 0 : 3 + 5 * r;
  return c;
}

TEST(MpiCollectives, SizeRankAndLocalRank) {
  int world = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  EXPECT_GE(world, 2) << "run this test under mpiexec with at least 2 ranks";
  EXPECT_EQ(g_comm->size(), world);
  EXPECT_EQ(g_comm->rank(), rank);
  EXPECT_EQ(g_comm->local_rank(), rank);  // one node here
  EXPECT_EQ(g_comm->local_size(), world);
}

TEST(MpiCollectives, AllReduceEveryOp) {
  const int n = g_comm->size(), me = g_comm->rank();
  const int64_t count = 1000 + 7;
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kAvg}) {
    std::vector<float> x(count);
    for (int64_t i = 0; i < count; ++i) x[i] = value(11, me, i);
    g_comm->all_reduce(x.data(), count, op);
    for (int64_t i = 0; i < count; ++i) {
      double want = op == ReduceOp::kMax ? -1e30 : op == ReduceOp::kMin ? 1e30 : 0;
      for (int r = 0; r < n; ++r) {
        const double v = value(11, r, i);
        want = op == ReduceOp::kMax ? std::max(want, v) : op == ReduceOp::kMin ? std::min(want, v) : want + v;
      }
      if (op == ReduceOp::kAvg) want /= n;
      ASSERT_NEAR(x[i], want, 1e-5) << "op " << static_cast<int>(op) << " element " << i;
    }
  }
}

TEST(MpiCollectives, AllGatherWithUnevenCounts) {
  const int n = g_comm->size(), me = g_comm->rank();
  const auto counts = uneven_counts(n);
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  std::vector<float> send(counts[me]), recv(total, -999.f);
  for (int64_t i = 0; i < counts[me]; ++i) send[i] = value(12, me, i);
  g_comm->reset_stats();
  g_comm->all_gather(send.data(), recv.data(), counts);
  int64_t off = 0;
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < counts[r]; ++i, ++off) ASSERT_EQ(recv[off], value(12, r, i)) << "rank " << r << " i " << i;
  EXPECT_EQ(g_comm->stats(Collective::kAllGather).calls, 1);
  EXPECT_EQ(g_comm->stats(Collective::kAllGather).bytes, total * 4);

  // In place: our block already sits at its offset in recv.
  std::vector<float> inplace(total, -1.f);
  int64_t mine = 0;
  for (int r = 0; r < me; ++r) mine += counts[r];
  for (int64_t i = 0; i < counts[me]; ++i) inplace[mine + i] = value(12, me, i);
  g_comm->all_gather(inplace.data() + mine, inplace.data(), counts);
  EXPECT_EQ(inplace, recv);
}

TEST(MpiCollectives, ReduceScatterWithUnevenCounts) {
  const int n = g_comm->size(), me = g_comm->rank();
  const auto counts = uneven_counts(n);
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  std::vector<float> send(total), recv(std::max<int64_t>(counts[me], 1), -999.f);
  for (int64_t i = 0; i < total; ++i) send[i] = value(13, me, i);
  g_comm->reset_stats();
  g_comm->reduce_scatter(send.data(), recv.data(), counts);
  int64_t off = 0;
  for (int r = 0; r < me; ++r) off += counts[r];
  for (int64_t i = 0; i < counts[me]; ++i) {
    double want = 0;
    for (int r = 0; r < n; ++r) want += value(13, r, off + i);
    ASSERT_EQ(recv[i], static_cast<float>(want)) << "element " << i;
  }
  EXPECT_EQ(g_comm->stats(Collective::kReduceScatter).bytes, total * 4);
}

TEST(MpiCollectives, BroadcastFromEveryRootAndBarrier) {
  const int n = g_comm->size(), me = g_comm->rank();
  for (int root = 0; root < n; ++root) {
    std::vector<float> x(33);
    for (int64_t i = 0; i < 33; ++i) x[i] = value(14, me, i);
    g_comm->broadcast(x.data(), 33, root);
    for (int64_t i = 0; i < 33; ++i) ASSERT_EQ(x[i], value(14, root, i)) << "root " << root;
  }
  g_comm->barrier();
  EXPECT_THROW(g_comm->broadcast(nullptr, 0, n), Error);
  EXPECT_THROW(g_comm->all_gather(nullptr, nullptr, std::vector<int64_t>(n + 1, 0)), Error);
}

}  // namespace
}  // namespace coco

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  coco::MpiRuntime mpi(&argc, &argv);  // fails (throws) if MPI cannot start: the test fails, it never skips
  int rc = 0;
  {
    coco::MpiCommunicator comm;
    coco::g_comm = &comm;
    rc = RUN_ALL_TESTS();
    comm.barrier();
  }
  return rc;
}
