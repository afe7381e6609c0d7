// Random numbers. Fillers use a seeded std::mt19937_64 (one stream per net, so a
// fixed seed gives the same initial weights). Per-element randomness inside
// training steps (dropout masks, shuffles) is counter based: a pure function of
// (seed, step, index), so a resumed run, a rerun, a CUDA kernel and a CPU loop
// all draw the same numbers without carrying generator state.
#pragma once

#include <cstdint>
#include <random>

// The counter-based functions below also run inside CUDA kernels (Dropout's mask):
// nvcc compiles them for host and device, the C++ compiler sees plain inline functions.
#ifndef COCO_HD
#if defined(__CUDACC__)
#define COCO_HD __host__ __device__
#else
#define COCO_HD
#endif
#endif

namespace coco {

// SplitMix64 finaliser: a good 64-bit mix of its input.
COCO_HD inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

COCO_HD inline uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) { return mix64(mix64(mix64(a) ^ b) ^ c); }

// Uniform in [0, 1) from (seed, stream, index).
COCO_HD inline float uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(hash3(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

using Rng = std::mt19937_64;

}  // namespace coco
