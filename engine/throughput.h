// Images per second of the training steps alone (test passes and snapshots do not
// count): over the whole run, and over the current display window, which also
// gives the ETA.
#pragma once

#include <algorithm>
#include <cstdint>

namespace coco {

class Throughput {
 public:
  void add_step(double seconds, int64_t images) {
    run_seconds_ += seconds;
    run_images_ += images;
    window_seconds_ += seconds;
    window_images_ += images;
    ++window_steps_;
  }
  double run_images_per_s() const { return run_images_ / std::max(run_seconds_, 1e-9); }
  double window_images_per_s() const { return window_images_ / std::max(window_seconds_, 1e-9); }
  double window_seconds_per_step() const { return window_seconds_ / window_steps_; }
  void start_window() {
    window_seconds_ = 0;
    window_images_ = 0;
    window_steps_ = 0;
  }

 private:
  double run_seconds_ = 0;
  int64_t run_images_ = 0;
  double window_seconds_ = 0;
  int64_t window_images_ = 0;
  int64_t window_steps_ = 0;
};

}  // namespace coco
