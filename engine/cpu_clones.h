// COCO_CPU_CLONES: a hot CPU loop compiled twice, for x86-64-v3 (AVX2 and FMA) and
// for the baseline x86-64 the library is built for, the dynamic loader picking
// one copy at start-up (GCC and Clang target_clones, resolved through an ifunc).
//
// Why: the release build targets plain x86-64 (SSE2) so that it runs on any
// x86-64 machine, but the CocoLoss head's softmax passes are bound by arithmetic
// there; 8-wide vectors and FMA make them about 2x faster. Put it on functions
// that hold the loop itself, not on ones with an OpenMP region: the region's
// outlined body is made before the cloning and would keep the baseline target.
// Sums may round differently on the two copies (vector width, FMA), so results
// are reproducible on one machine, not bit-equal across CPU generations.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(COCO_NO_CPU_CLONES)
#define COCO_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define COCO_CPU_CLONES
#endif
