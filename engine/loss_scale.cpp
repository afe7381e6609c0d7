#include "engine/loss_scale.h"

#include <cmath>

#include "engine/common.h"
#include "engine/proto/coco.pb.h"

namespace coco {

namespace {
constexpr float kMaxScale = 0x1p64f;
}

bool is_valid_loss_scale(double s) {
  int e = 0;
  return std::isfinite(s) && s >= 1 && s <= kMaxScale && std::frexp(s, &e) == 0.5;
}

DynamicLossScale::DynamicLossScale(float initial, int window) : scale_(initial), window_(window) {
  COCO_CHECK(is_valid_loss_scale(initial) && window >= 1, "bad loss scale ", initial, " / window ", window);
}

bool DynamicLossScale::back_off() {
  if (scale_ <= 1.f) return false;
  scale_ *= 0.5f;
  good_steps_ = 0;
  ++skipped_;
  return true;
}

void DynamicLossScale::grow() {
  if (++good_steps_ < window_) return;
  good_steps_ = 0;
  if (scale_ < kMaxScale) scale_ *= 2.f;
}

void DynamicLossScale::save(proto::SolverState* state) const {
  state->set_loss_scale(scale_);
  state->set_loss_scale_good_steps(good_steps_);
  state->set_loss_scale_skipped(skipped_);
}

void DynamicLossScale::restore(const proto::SolverState& state, const std::string& origin) {
  if (!state.has_loss_scale()) return;
  if (!is_valid_loss_scale(state.loss_scale()) || state.loss_scale_good_steps() < 0 || state.loss_scale_skipped() < 0)
    COCO_THROW(origin, ": the loss scale state (", state.loss_scale(), ", ", state.loss_scale_good_steps(), ", ",
               state.loss_scale_skipped(), ") is not a power of two >= 1 with non-negative counts");
  scale_ = state.loss_scale();
  good_steps_ = state.loss_scale_good_steps() % window_;
  skipped_ = state.loss_scale_skipped();
}

}  // namespace coco
