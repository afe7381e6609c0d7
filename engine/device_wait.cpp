#include "engine/device_wait.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>

namespace coco {
namespace {

std::mutex g_watch_mutex;
DeviceWaitWatch g_watch;

DeviceWaitWatch current_watch() {
  std::lock_guard<std::mutex> lock(g_watch_mutex);
  return g_watch;
}

}  // namespace

DeviceWaitWatch set_device_wait_watch(DeviceWaitWatch watch) {
  std::lock_guard<std::mutex> lock(g_watch_mutex);
  return std::exchange(g_watch, std::move(watch));
}

void wait_until(const std::function<bool()>& done, const std::string& what) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const DeviceWaitWatch watch = current_watch();
  auto pause = std::chrono::microseconds(0);
  while (!done()) {
    if (watch) watch(what, std::chrono::duration<double>(Clock::now() - start).count());
    if (pause.count() == 0)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(pause);
    pause = std::min(pause + std::chrono::microseconds(5), std::chrono::microseconds(100));
  }
}

}  // namespace coco
