#include "engine/loss_window.h"

#include <algorithm>

namespace coco {

LossWindow::LossWindow(int size) : size_(std::max(1, size)) {}

// A running sum rather than a re-sum of the window: the window may be long
// (thousands of steps) and the mean is taken every step.
double LossWindow::add(double loss) {
  recent_.push_back(loss);
  sum_ += loss;
  if (static_cast<int>(recent_.size()) > size_) {
    sum_ -= recent_.front();
    recent_.pop_front();
  }
  return mean();
}

double LossWindow::mean() const { return recent_.empty() ? 0.0 : sum_ / recent_.size(); }

}  // namespace coco
