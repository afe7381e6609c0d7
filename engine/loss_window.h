// The displayed training loss: the mean of the last `average_loss` steps' losses
// (Caffe's solver option), so one noisy batch does not dominate the log.
#pragma once

#include <deque>

namespace coco {

class LossWindow {
 public:
  // Windows shorter than one step are one step.
  explicit LossWindow(int size);
  // Adds a step's loss; returns the mean over the window.
  double add(double loss);
  double mean() const;

 private:
  int size_;
  std::deque<double> recent_;
  double sum_ = 0;
};

}  // namespace coco
