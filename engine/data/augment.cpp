// Flip, crop and normalise; see augment.h.
#include "engine/data/augment.h"

#include "engine/common.h"
#include "engine/rng.h"

namespace coco {

namespace {
// Streams of the counter-based generator, one per kind of choice.
constexpr uint64_t kFlipStream = 0xF11Bull, kCropYStream = 0xC40Bull, kCropXStream = 0xC40Aull;
}  // namespace

AugmentDraw draw_augment(const AugmentParams& p, AugmentMode mode, int height, int width, uint64_t seed,
                         uint64_t position) {
  AugmentDraw d;
  if (p.crop > 0) {
    const int sy = height - p.crop, sx = width - p.crop;
    if (mode == AugmentMode::kTrain) {
      d.y0 = static_cast<int>(uniform01(seed, kCropYStream, position) * (sy + 1));
      d.x0 = static_cast<int>(uniform01(seed, kCropXStream, position) * (sx + 1));
    } else {
      d.y0 = sy / 2;
      d.x0 = sx / 2;
    }
  }
  d.flip = mode == AugmentMode::kTrain && p.mirror && uniform01(seed, kFlipStream, position) < 0.5f;
  return d;
}

void augment_image(const ImageU8& img, const AugmentParams& p, AugmentMode mode, uint64_t seed, uint64_t position,
                   float* out) {
  const int oh = p.crop > 0 ? p.crop : img.height, ow = p.crop > 0 ? p.crop : img.width;
  COCO_CHECK(oh <= img.height && ow <= img.width, "crop ", p.crop, " exceeds image ", img.height, "x", img.width);
  const AugmentDraw d = draw_augment(p, mode, img.height, img.width, seed, position);
  const size_t plane = static_cast<size_t>(oh) * ow;
  for (int c = 0; c < 3; ++c) {
    const int src_c = p.order == ChannelOrder::kBgr ? 2 - c : c;
    const float mean = p.mean[c], scale = p.scale;
    float* dst = out + c * plane;
    for (int y = 0; y < oh; ++y) {
      const uint8_t* row = img.pixels.data() + (static_cast<size_t>(d.y0 + y) * img.width + d.x0) * 3 + src_c;
      float* o = dst + static_cast<size_t>(y) * ow;
      if (d.flip) {
        for (int x = 0; x < ow; ++x) o[ow - 1 - x] = (static_cast<float>(row[3 * x]) - mean) * scale;
      } else {
        for (int x = 0; x < ow; ++x) o[x] = (static_cast<float>(row[3 * x]) - mean) * scale;
      }
    }
  }
}

}  // namespace coco
