// Image augmentation: (height, width, 3) RGB bytes -> (3, out_h, out_w) floats.
//
// Why it looks like this: every random choice (flip, crop offset) is drawn from
// uniform01(seed, stream, position) -- position being the sample's place in the
// training sequence -- so a batch is the same whichever thread decodes it, when,
// or on which rank: resume and prefetch stay bit-exact. Normalisation is
// (pixel - mean[c]) * scale, per channel, after the optional swap to BGR.
#pragma once

#include <cstdint>

#include "engine/data/jpeg.h"

namespace coco {

enum class AugmentMode { kTrain, kTest };  // kTest: no flip, centred crop
enum class ChannelOrder { kRgb, kBgr };

struct AugmentParams {
  int crop = 0;          // square crop side; 0 keeps the whole image
  bool mirror = false;   // random horizontal flip (kTrain only)
  float mean[3] = {127.5f, 127.5f, 127.5f};
  float scale = 1.0f / 128;
  ChannelOrder order = ChannelOrder::kRgb;
};

// The choices made for one sample, exposed for tests.
struct AugmentDraw {
  bool flip = false;
  int y0 = 0, x0 = 0;  // crop origin
};
AugmentDraw draw_augment(const AugmentParams& p, AugmentMode mode, int height, int width, uint64_t seed,
                         uint64_t position);

// out: (3, crop or height, crop or width). The image must be at least crop x crop.
void augment_image(const ImageU8& img, const AugmentParams& p, AugmentMode mode, uint64_t seed, uint64_t position,
                   float* out);

}  // namespace coco
