// wait_until, the one host wait on a device (engine/device_wait.h), with fakes for
// the device: it returns once the work is done, asks the watch between polls, and a
// watch that throws (NCCL's async error, the collective timeout) ends a wait that
// would never finish. Then the collective timeout setting (comm/comm_timeout.h).
#include "engine/device_wait.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "comm/comm_timeout.h"
#include "engine/common.h"
#include "tests/error_of.h"

namespace coco {
namespace {

// Installs a watch for one test and puts the previous one back.
struct ScopedWatch {
  explicit ScopedWatch(DeviceWaitWatch w) : previous(set_device_wait_watch(std::move(w))) {}
  ~ScopedWatch() { set_device_wait_watch(previous); }
  DeviceWaitWatch previous;
};

TEST(DeviceWait, ReturnsOnceDoneAskingTheWatchBetweenPolls) {
  std::vector<double> waited;
  std::vector<std::string> what;
  ScopedWatch watch([&](const std::string& w, double s) {
    what.push_back(w);
    waited.push_back(s);
  });
  int polls = 0;
  wait_until([&] { return ++polls == 5; }, "the loss read");
  EXPECT_EQ(polls, 5);
  ASSERT_EQ(waited.size(), 4u);  // between polls only: not after the last
  for (size_t i = 1; i < waited.size(); ++i) EXPECT_GE(waited[i], waited[i - 1]);
  EXPECT_EQ(what.front(), "the loss read");
}

TEST(DeviceWait, AThrowingWatchEndsAWaitThatNeverFinishes) {
  ScopedWatch watch([](const std::string& w, double s) {
    if (s > 0.05) COCO_THROW(w, " made no progress in ", s, " s");
  });
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = testing::error_of([] { wait_until([] { return false; }, "NCCL all_gather"); });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(e.find("NCCL all_gather made no progress"), std::string::npos) << e;
  EXPECT_LT(took, 5.0);
}

TEST(DeviceWait, WithoutAWatchItPollsUntilDone) {
  ScopedWatch none({});
  int polls = 0;
  wait_until([&] { return ++polls == 1000; }, "a copy");
  EXPECT_EQ(polls, 1000);
}

TEST(DeviceWait, InstallingAWatchReturnsTheOneItReplaces) {
  int calls = 0;
  ScopedWatch first([&](const std::string&, double) { ++calls; });
  const DeviceWaitWatch previous = set_device_wait_watch({});
  ASSERT_TRUE(static_cast<bool>(previous));
  previous("x", 0);
  EXPECT_EQ(calls, 1);
  set_device_wait_watch(previous);
}

TEST(CommTimeout, IsSetInSecondsAndRefusesNegativeValues) {
  const double before = comm_timeout_s();
  set_comm_timeout_s(20);
  EXPECT_EQ(comm_timeout_s(), 20);
  set_comm_timeout_s(0);  // no bound
  EXPECT_EQ(comm_timeout_s(), 0);
  const std::string e = testing::error_of([] { set_comm_timeout_s(-1); });
  EXPECT_NE(e.find("must be >= 0 seconds"), std::string::npos) << e;
  set_comm_timeout_s(before);
}

}  // namespace
}  // namespace coco
