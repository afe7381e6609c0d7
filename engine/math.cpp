#include "engine/math.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "engine/common.h"
#include "engine/cpu_clones.h"
#include "engine/logging.h"

namespace coco {

namespace {
CBLAS_TRANSPOSE cb(Trans t) { return t == Trans::kNo ? CblasNoTrans : CblasTrans; }
}  // namespace

// OpenBLAS runs single-threaded; coco splits large GEMMs over its OpenMP threads
// itself (by rows or columns of C, never along K, so every element is summed in
// the same order whatever the thread count). Two thread pools -- OpenMP's, whose
// idle threads spin after every parallel loop, and OpenBLAS's pthreads -- would
// otherwise fight over the cores: on 2 cores that made chunked GEMMs 1.6x slower.
void cpu_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    cpu_scale(M * N, beta, C);
    return;
  }
  static const bool single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  const int64_t lda = ta == Trans::kNo ? K : M;
  const int64_t ldb = tb == Trans::kNo ? N : K;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || M * N * K < (int64_t{1} << 21)) {
    cblas_sgemm(CblasRowMajor, cb(ta), cb(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, N);
    return;
  }
  const bool split_n = N >= M;
  const int64_t extent = split_n ? N : M;
  const int parts = static_cast<int>(std::min<int64_t>(threads, (extent + 15) / 16));
#pragma omp parallel num_threads(parts)
  {
    const int t = omp_get_thread_num();
    // Boundaries on multiples of 16 keep each slice's columns aligned.
    const int64_t b0 = std::min(extent, (extent * t / parts + 15) / 16 * 16);
    const int64_t b1 = t + 1 == parts ? extent : std::min(extent, (extent * (t + 1) / parts + 15) / 16 * 16);
    if (b1 > b0) {
      if (split_n) {
        const float* Bs = tb == Trans::kNo ? B + b0 : B + b0 * K;
        cblas_sgemm(CblasRowMajor, cb(ta), cb(tb), M, b1 - b0, K, alpha, A, lda, Bs, ldb, beta, C + b0, N);
      } else {
        const float* As = ta == Trans::kNo ? A + b0 * K : A + b0;
        cblas_sgemm(CblasRowMajor, cb(ta), cb(tb), b1 - b0, N, K, alpha, As, lda, B, ldb, beta, C + b0 * N, N);
      }
    }
  }
}

void cpu_gemm_at(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 const float* B, float beta, float* C) {
  if (p == Precision::kFP32) {
    cpu_gemm(ta, tb, M, N, K, alpha, A, B, beta, C);
    return;
  }
  // Per thread: a GEMM inside another thread's parallel region keeps its own copies.
  thread_local std::vector<float> a, b;
  a.resize(static_cast<size_t>(M * K));
  b.resize(static_cast<size_t>(K * N));
  round_to(p, A, a.data(), M * K);
  round_to(p, B, b.data(), K * N);
  cpu_gemm(ta, tb, M, N, K, alpha, a.data(), b.data(), beta, C);
}

void cpu_gemv(Trans ta, int64_t M, int64_t N, float alpha, const float* A, const float* x,
              float beta, float* y) {
  if (M == 0 || N == 0) return;
  cblas_sgemv(CblasRowMajor, cb(ta), M, N, alpha, A, N, x, 1, beta, y, 1);
}

void cpu_axpy(int64_t n, float alpha, const float* x, float* y) { cblas_saxpy(n, alpha, x, 1, y, 1); }

void cpu_scale(int64_t n, float alpha, float* x) {
  if (alpha == 0.f) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.f;
  } else if (alpha != 1.f) {
    cblas_sscal(n, alpha, x, 1);
  }
}

float cpu_dot(int64_t n, const float* x, const float* y) { return cblas_sdot(n, x, 1, y, 1); }

// Vectorised (the sum's order follows the vector width, see engine/cpu_clones.h):
// the head's norms and projections take one per row of K_r x D centroids.
COCO_CPU_CLONES double cpu_dot_double(int64_t n, const float* x, const float* y) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * y[i];
  return s;
}

void set_num_threads(int n) {
  openblas_set_num_threads(1);  // see cpu_gemm: coco's OpenMP threads split the work
  if (n <= 0) return;
  // More threads than cores only spin at coco's barriers, and libgomp cannot start
  // tens of thousands of them (it crashed at --threads 16384): clamp, and say so.
  const int cores = std::max(1, omp_get_num_procs());
  if (n > cores) {
    spdlog::warn("{} CPU threads asked for, but this process can use {} core(s): using {}", n, cores, cores);
    n = cores;
  }
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

void set_flush_denormals(bool on) {
#if defined(__x86_64__) || defined(__i386__)
  auto apply = [on] {
    const unsigned bits = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
    _mm_setcsr(on ? (_mm_getcsr() | bits) : (_mm_getcsr() & ~bits));
  };
  apply();
#pragma omp parallel
  apply();
#else
  (void)on;
#endif
}

}  // namespace coco
