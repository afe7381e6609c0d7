// FP16's dynamic loss scale (solver loss_scale, loss_scale_window).
//
// Why: fp16 keeps magnitudes from 2^-24 to 65504, and many gradient terms lie
// below that range. Backward therefore starts from loss_weight * s, which moves
// every gradient up by s, and the solver divides s back out in fp32 before the
// update. Too large an s overflows fp16 somewhere: the gradients turn infinite, the
// step is skipped, and s halves. After `window` steps in a row without an overflow
// s doubles again, so it stays near the largest safe value. s is a power of two,
// so scaling and unscaling are exact (apart from values that left fp16's range).
// The state travels in checkpoints, so a resumed run continues bit for bit.
#pragma once

#include <cstdint>
#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// A loss scale coco accepts: a power of two in [1, 2^64] (unscaling is exact, and
// past 2^64 every float gradient would overflow). The solver setting's rule and a
// checkpoint's state are both checked with it.
bool is_valid_loss_scale(double s);

class DynamicLossScale {
 public:
  DynamicLossScale(float initial, int window);

  float value() const { return scale_; }
  int64_t skipped() const { return skipped_; }

  // A step whose gradients overflowed: halves the scale and counts the skip. False,
  // changing nothing, when the scale is already 1: the gradients overflow unscaled,
  // which no scale can mend (the caller treats it as any non-finite step).
  bool back_off();
  // A step whose gradients were finite: the scale doubles after `window` of them in
  // a row (up to 2^64, past which every float gradient would overflow anyway).
  void grow();

  void save(proto::SolverState* state) const;
  // A checkpoint without the fields (saved at another precision) keeps the
  // configured start.
  void restore(const proto::SolverState& state, const std::string& origin);

 private:
  float scale_;
  int window_;
  int good_steps_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace coco
