// A small face-like data set for the face workflow test (tests/face/face_loop.py):
// JPEG images of made-up identities, each a few coloured blobs from (identity) with
// a per-image shift, brightness and noise from (identity, image), so that identity
// is learnable and images of one identity still differ.
//
//   make_face_set OUT IDS PER_ID SIDE PAIRS
//
// writes OUT/train/idNNNN/imgJ.jpg (IDS identities x PER_ID images, for coco-pack)
// and OUT/val/NNNN.jpg with OUT/val/issame.txt: PAIRS pairs of held-out identities,
// images 2i and 2i+1, same and different pairs alternating (for write_bin.py).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/data/jpeg.h"

namespace {

namespace fs = std::filesystem;

struct Blob2d {
  double y, x, radius, rgb[3];
};

std::vector<Blob2d> identity_blobs(int id, int side) {
  std::mt19937 rng(1000 + id);
  std::uniform_real_distribution<double> pos(0.2 * side, 0.8 * side), rad(0.12 * side, 0.3 * side), col(0, 255);
  std::vector<Blob2d> b(4);
  for (auto& x : b) x = {pos(rng), pos(rng), rad(rng), {col(rng), col(rng), col(rng)}};
  return b;
}

std::vector<uint8_t> face_jpeg(int id, int image, int side) {
  const auto blobs = identity_blobs(id, side);
  std::mt19937 rng(static_cast<uint32_t>(id * 7919 + image * 104729 + 17));
  std::uniform_int_distribution<int> shift(-2, 2);
  std::uniform_real_distribution<double> light(0.8, 1.2);
  std::normal_distribution<double> noise(0, 10);
  const int dy = shift(rng), dx = shift(rng);
  const double gain = light(rng);
  std::vector<uint8_t> rgb(static_cast<size_t>(3 * side * side));
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 40;
        for (const auto& b : blobs) {
          const double d2 = (y - dy - b.y) * (y - dy - b.y) + (x - dx - b.x) * (x - dx - b.x);
          v += b.rgb[c] * std::exp(-d2 / (2 * b.radius * b.radius));
        }
        v = v * gain + noise(rng);
        rgb[(static_cast<size_t>(y) * side + x) * 3 + c] = static_cast<uint8_t>(std::lround(std::fmin(255, std::fmax(0, v))));
      }
  return coco::encode_jpeg(rgb.data(), side, side, 90);
}

void write(const fs::path& p, const std::vector<uint8_t>& b) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) {
    std::fprintf(stderr, "make_face_set: cannot write %s\n", p.c_str());
    std::exit(1);
  }
}

std::string numbered(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: make_face_set OUT IDS PER_ID SIDE PAIRS\n");
    return 2;
  }
  const fs::path out = argv[1];
  const int ids = std::atoi(argv[2]), per_id = std::atoi(argv[3]), side = std::atoi(argv[4]),
            pairs = std::atoi(argv[5]);
  for (int k = 0; k < ids; ++k)
    for (int j = 0; j < per_id; ++j)
      write(out / "train" / ("id" + numbered(k)) / ("img" + std::to_string(j) + ".jpg"), face_jpeg(k, j, side));
  // Held-out identities ids .. ids + 9: a same pair is two images of one of them, a
  // different pair images of two of them.
  fs::create_directories(out / "val");
  std::ofstream same(out / "val" / "issame.txt");
  for (int i = 0; i < pairs; ++i) {
    const int a = ids + i % 10, b = i % 2 == 0 ? a : ids + (i + 3) % 10;
    write(out / "val" / (numbered(2 * i) + ".jpg"), face_jpeg(a, 100 + i, side));
    write(out / "val" / (numbered(2 * i + 1) + ".jpg"), face_jpeg(b, 200 + i, side));
    same << (i % 2 == 0 ? 1 : 0) << (i + 1 < pairs ? "," : "\n");
  }
  return same ? 0 : 1;
}
