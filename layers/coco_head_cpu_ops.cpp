// The CPU bodies of the CocoLoss head's steps (contracts: layers/coco_loss_cuda.h).
// OpenMP over rows; sums that the CUDA kernels accumulate in double are
// accumulated in double here too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/cpu_clones.h"
#include "engine/math.h"
#include "engine/norm.h"
#include "layers/coco_head_ops.h"

namespace coco {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// exp(x) for x <= 88 (softmax terms, after subtracting the row max or the fixed
// shift), written so the compiler vectorises it (no branch, no select): 2^k * p(r)
// with a degree-6 polynomial on r in [-ln2/2, ln2/2]; relative error about 2e-7
// (float round-off). Below about -87.3 float turns subnormal: there the result is
// subnormal (0 where denormals are flushed), and exactly 0 below -87.68 (k = -127
// makes the exponent bits 0). The fixed shift's safety bound (kFixedShiftLostTerm
// in layers/coco_head.cpp) counts each such term as lost, e^-87 at most.
inline float exp_nonpositive(float x_in) {
  const float x = std::max(x_in, -88.f);
  // Round to nearest by adding and removing 1.5 * 2^23 (vectorises without SSE4.1).
  const float k = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = x - k * 0.693145751953125f - k * 1.428606765330187045e-06f;
  float p = 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  // k < 128 for every x <= 88; a NaN (or +Inf) logit would make the int conversion
  // undefined: it takes 128 instead, and the NaN still propagates through p.
  const float two_k = k < 128.f ? k : 128.f;
  const int32_t bits = (static_cast<int32_t>(two_k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// The column of a row's label within the chunk [first_class, first_class + t), or -1.
int64_t target_column(float label, int64_t first_class, int64_t t) {
  if (!(label >= 0)) return -1;  // another rank's class (-1), or none (NaN)
  const int64_t yl = static_cast<int64_t>(label) - first_class;
  return yl >= 0 && yl < t ? yl : -1;
}

// 1 / sqrt(||v||² + eps), the norm in double as on the device.
float inverse_norm(int64_t D, const float* v) {
  return 1.0f / std::sqrt(static_cast<float>(cpu_dot_double(D, v, v)) + static_cast<float>(kNormEpsilon));
}

// One row of chunk_stats: the online softmax update and the accuracy's best logit.
COCO_CPU_CLONES void chunk_stats_row(float& row_max, float& row_sum, float& target, float& best, float& best_class,
                     const float* zi, int64_t t, int64_t yl, int64_t first_class, bool want_accuracy,
                     const CocoMarginParams& mp) {
  const bool has_target = yl >= 0;
  const bool margin = has_target && mp.kind != CocoMarginKind::kNone;
  // Raw maximum (accuracy) and the maximum with the target's margin (softmax).
  float cm = kNegInf;
#pragma omp simd reduction(max : cm)
  for (int64_t j = 0; j < t; ++j) cm = std::max(cm, zi[j]);
  const float zt = has_target ? apply_margin(zi[yl], mp) : 0.f;
  float mm = cm;
  if (margin) {
    mm = kNegInf;
    for (int64_t j = 0; j < t; ++j) mm = std::max(mm, j == yl ? zt : zi[j]);
  }
  const float nm = std::max(row_max, mm);
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < t; ++j) s += exp_nonpositive(zi[j] - nm);
  if (margin) s += exp_nonpositive(zt - nm) - exp_nonpositive(zi[yl] - nm);
  row_sum = static_cast<float>(static_cast<double>(row_sum) * std::exp(static_cast<double>(row_max) - nm) + s);
  row_max = nm;
  if (has_target) target += zt;
  if (want_accuracy && cm > best) {
    int64_t arg = 0;
    // The first maximum, found only when it improves; bounded, since with NaN
    // logits the vectorised max need not equal any entry (it read past the row).
    while (arg + 1 < t && zi[arg] != cm) ++arg;
    best = cm;
    best_class = static_cast<float>(first_class + arg);
  }
}

// One row of softmax_grad (the running maximum's backward).
COCO_CPU_CLONES void softmax_grad_row(float* zi, float m, float scale, int64_t t, int64_t yl, float inv_m,
                                      const CocoMarginParams& mp) {
  const float raw_target = yl >= 0 ? zi[yl] : 0.f;
#pragma omp simd
  for (int64_t j = 0; j < t; ++j) zi[j] = exp_nonpositive(zi[j] - m) * scale;
  if (yl >= 0) {
    const float p = mp.kind != CocoMarginKind::kNone ? exp_nonpositive(apply_margin(raw_target, mp) - m) * scale
                                                     : zi[yl];
    zi[yl] = (p - inv_m) * margin_slope(raw_target, mp);
  }
}

// v = z * cs in place over [0, t) and its first maximum (for the accuracy).
COCO_CPU_CLONES void scale_and_max(float* zi, const float* cs, int64_t t, float& vmax) {
  float m = kNegInf;
  if (cs) {
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < t; ++j) {
      zi[j] *= cs[j];
      m = std::max(m, zi[j]);
    }
  } else {
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < t; ++j) m = std::max(m, zi[j]);
  }
  vmax = m;
}

// sum over [a, b) of exp(v - shift), v = z (scaled: z * cs); with keep the terms
// replace z.
COCO_CPU_CLONES float exp_sum_range(float* zi, const float* cs, int64_t a, int64_t b, float shift, bool keep) {
  float s = 0.f;
  if (cs && keep) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = a; j < b; ++j) {
      const float e = exp_nonpositive(zi[j] * cs[j] - shift);
      zi[j] = e;
      s += e;
    }
  } else if (cs) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = a; j < b; ++j) s += exp_nonpositive(zi[j] * cs[j] - shift);
  } else if (keep) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = a; j < b; ++j) {
      const float e = exp_nonpositive(zi[j] - shift);
      zi[j] = e;
      s += e;
    }
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t j = a; j < b; ++j) s += exp_nonpositive(zi[j] - shift);
  }
  return s;
}

// One row of exp_stats. The target's column is summed on its own (with its margin),
// not added and taken away again: when it holds almost all of the row's mass, the
// difference would lose the rest of the sum to round-off.
void exp_stats_row(float* zi, float& row_sum, float& target, float& raw_target, float& best, float& best_class,
                   const float* cs, int64_t t, int64_t yl, int64_t first_class, float shift, bool keep,
                   bool want_accuracy, const CocoMarginParams& mp) {
  const float* scale = cs;
  if (want_accuracy) {
    float vmax;
    scale_and_max(zi, cs, t, vmax);
    scale = nullptr;  // scaled in place
    if (vmax > best) {
      int64_t arg = 0;
      while (arg + 1 < t && zi[arg] != vmax) ++arg;  // bounded, as in chunk_stats_row
      best = vmax;
      best_class = static_cast<float>(first_class + arg);
    }
  }
  if (yl < 0) {
    row_sum += exp_sum_range(zi, scale, 0, t, shift, keep);
    return;
  }
  const float v = scale ? zi[yl] * scale[yl] : zi[yl];
  const float zt = apply_margin(v, mp);
  row_sum += exp_sum_range(zi, scale, 0, yl, shift, keep) + exp_sum_range(zi, scale, yl + 1, t, shift, keep) +
             exp_nonpositive(zt - shift);
  target += zt;
  raw_target = v;
}

// One row of fixed_shift_grad.
COCO_CPU_CLONES void fixed_shift_grad_row(float* zi, float row_sum, float raw_target, const float* cs, int64_t t,
                                          int64_t yl, float shift, float inv_m, bool z_is_exp,
                                          const CocoMarginParams& mp) {
  const float scale = inv_m / row_sum;
  if (!z_is_exp) {
    if (cs) {
#pragma omp simd
      for (int64_t j = 0; j < t; ++j) zi[j] = exp_nonpositive(zi[j] * cs[j] - shift);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < t; ++j) zi[j] = exp_nonpositive(zi[j] - shift);
    }
  }
  if (yl >= 0) zi[yl] = 0.f;  // its own term below
  if (cs) {
#pragma omp simd
    for (int64_t j = 0; j < t; ++j) zi[j] *= scale * cs[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < t; ++j) zi[j] *= scale;
  }
  if (yl >= 0) {
    const float p = exp_nonpositive(apply_margin(raw_target, mp) - shift) * scale;
    zi[yl] = (p - inv_m) * margin_slope(raw_target, mp) * (cs ? cs[yl] : 1.f);
  }
}

// dc += weight (h - c inv² (c·h)), one row.
COCO_CPU_CLONES void centroid_grad_scaled_row(float* g, const float* h, const float* c, float inv, int64_t D,
                                              float weight, bool accumulate) {
  double ch = 0;
#pragma omp simd reduction(+ : ch)
  for (int64_t d = 0; d < D; ++d) ch += static_cast<double>(c[d]) * h[d];
  const float k = static_cast<float>(ch) * inv * inv;
  if (accumulate) {
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) g[d] += weight * (h[d] - c[d] * k);
  } else {  // g may be c: each element is read, then written
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) g[d] = weight * (h[d] - c[d] * k);
  }
}

class CpuHeadOps final : public CocoHeadOps {
 public:
  void shard_columns(float* columns, const int32_t* ids, int64_t M, int64_t shard_start, int64_t shard_count,
                     int64_t K) const override {
    for (int64_t i = 0; i < M; ++i) {
      const int64_t y = ids[i], c = y - shard_start;
      columns[i] = y < 0 || y >= K ? std::numeric_limits<float>::quiet_NaN()
                   : c >= 0 && c < shard_count ? static_cast<float>(c)
                                               : -1.f;
    }
  }

  void gemm(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
            const float* B, float beta, float* C) const override {
    cpu_gemm_at(p, ta, tb, M, N, K, alpha, A, B, beta, C);
  }
  void copy(int64_t n, const float* x, float* y) const override {
    if (n > 0 && x != y) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
  }
  void set(int64_t n, float value, float* x) const override { std::fill(x, x + n, value); }
  void read_to_host(float* host, const float* src, int64_t n) const override { copy(n, src, host); }

  void features(float* f, float* x_inv_norm, const float* x, int64_t Ml, int64_t D, float alpha,
                bool cosine) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < Ml; ++i) {
      const float* xi = x + i * D;
      const float inv = cosine ? inverse_norm(D, xi) : 1.f;
      x_inv_norm[i] = inv;
      const float s = cosine ? alpha * inv : 1.f;
      for (int64_t d = 0; d < D; ++d) f[i * D + d] = s * xi[d];
    }
  }

  void centroid_norms(float* c, float* c_inv_norm, int64_t Kr, int64_t D, bool cosine,
                      bool renormalize) const override {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < Kr; ++k) {
      float* ck = c + k * D;
      const float inv = cosine ? inverse_norm(D, ck) : 1.f;
      c_inv_norm[k] = inv;
      if (cosine && renormalize) {
        for (int64_t d = 0; d < D; ++d) ck[d] *= inv;
        c_inv_norm[k] = 1.0f;
      }
    }
  }

  void unit_centroids(float* c_hat, const float* c, const float* c_inv_norm, int64_t t,
                      int64_t D) const override {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < t; ++k)
      for (int64_t d = 0; d < D; ++d) c_hat[k * D + d] = c[k * D + d] * c_inv_norm[k];
  }

  void init_stats(float* row_max, float* sum_target, float* best, float* best_class, int64_t M) const override {
    std::fill(row_max, row_max + M, kNegInf);
    std::fill(sum_target, sum_target + 2 * M, 0.f);
    std::fill(best, best + M, kNegInf);
    std::fill(best_class, best_class + M, 0.f);
  }

  void chunk_stats(float* row_max, float* row_sum, float* target, float* best, float* best_class, const float* z,
                   const float* labels, int64_t M, int64_t t, int64_t first_class, bool want_accuracy,
                   const CocoMarginParams& margin) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
      chunk_stats_row(row_max[i], row_sum[i], target[i], best[i], best_class[i], z + i * t, t,
                      target_column(labels[i], first_class, t), first_class, want_accuracy, margin);
  }

  void rescale_sums(float* row_sum, const float* local_max, const float* row_max, int64_t M) const override {
    for (int64_t i = 0; i < M; ++i)
      row_sum[i] = static_cast<float>(row_sum[i] * std::exp(static_cast<double>(local_max[i]) - row_max[i]));
  }

  void loss(float* loss, const float* row_sum, const float* row_max, const float* target, const float* labels,
            int64_t M) const override {
    double acc = 0;
    bool bad = false;
    for (int64_t i = 0; i < M; ++i) {
      acc += std::log(static_cast<double>(row_sum[i])) + row_max[i] - target[i];
      bad = bad || std::isnan(labels[i]);
    }
    loss[0] = bad ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(acc / M);
  }

  void accuracy_candidates(float* cand, const float* best, const float* raw_max, const float* best_class,
                           const float* labels, int rank, int64_t M) const override {
    for (int64_t i = 0; i < M; ++i)
      cand[i] = best[i] == raw_max[i] ? static_cast<float>(2 * rank + (best_class[i] == labels[i] ? 0 : 1))
                                      : std::numeric_limits<float>::infinity();
  }

  void accuracy(float* accuracy, const float* cand, int64_t M) const override {
    int64_t correct = 0;
    for (int64_t i = 0; i < M; ++i) correct += std::isfinite(cand[i]) && static_cast<int64_t>(cand[i]) % 2 == 0;
    accuracy[0] = static_cast<float>(correct) / M;
  }

  void softmax_grad(float* z, const float* row_max, const float* row_sum, const float* labels, int64_t M, int64_t t,
                    int64_t first_class, float inv_m, const CocoMarginParams& margin) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
      softmax_grad_row(z + i * t, row_max[i], inv_m / row_sum[i], t, target_column(labels[i], first_class, t),
                       inv_m, margin);
  }

  void centroid_grad(float* dc, const float* h, const float* u, const float* c_inv_norm, int64_t t, int64_t D,
                     float weight, bool exact) const override {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < t; ++k) {
      const float* hk = h + k * D;
      float* g = dc + k * D;
      if (exact) {
        const float* uk = u + k * D;
        const float inv = c_inv_norm[k];
        const float uh = static_cast<float>(cpu_dot_double(D, uk, hk));
        for (int64_t d = 0; d < D; ++d) g[d] += weight * inv * (hk[d] - uk[d] * uh);
      } else {
        for (int64_t d = 0; d < D; ++d) g[d] += weight * hk[d];
      }
    }
  }

  void exp_stats(float* z, float* row_sum, float* target, float* raw_target, float* best, float* best_class,
                 const float* col_scale, const float* labels, int64_t M, int64_t t, int64_t first_class, float shift,
                 bool keep, bool want_accuracy, const CocoMarginParams& margin) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
      exp_stats_row(z + i * t, row_sum[i], target[i], raw_target[i], best[i], best_class[i], col_scale, t,
                    target_column(labels[i], first_class, t), first_class, shift, keep, want_accuracy, margin);
  }

  void fixed_shift_grad(float* z, const float* row_sum, const float* raw_target, const float* col_scale,
                        const float* labels, int64_t M, int64_t t, int64_t first_class, float shift, float inv_m,
                        bool z_is_exp, const CocoMarginParams& margin) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
      fixed_shift_grad_row(z + i * t, row_sum[i], raw_target[i], col_scale, t,
                           target_column(labels[i], first_class, t), shift, inv_m, z_is_exp, margin);
  }

  void centroid_grad_scaled(float* dc, const float* h, const float* c, const float* c_inv_norm, int64_t t, int64_t D,
                            float weight, bool accumulate) const override {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < t; ++k)
      centroid_grad_scaled_row(dc + k * D, h + k * D, c + k * D, c_inv_norm[k], D, weight, accumulate);
  }

  int64_t count_below(const float* x, int64_t n, float threshold, float*) const override {
    int64_t below = 0;
    for (int64_t i = 0; i < n; ++i) below += x[i] < threshold;
    return below;
  }

  void gather_rows(float* dst, const float* src, const float* rows, int64_t n, int64_t D) const override {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r)
      std::memcpy(dst + r * D, src + static_cast<int64_t>(rows[r]) * D, static_cast<size_t>(D) * sizeof(float));
  }

  void rows_to_classes(float* cls, const float* rows, int64_t first_class, int64_t n, int64_t M) const override {
    for (int64_t i = 0; i < M; ++i) {
      const int64_t k = static_cast<int64_t>(cls[i]);
      if (k >= 0 && k < n) cls[i] = static_cast<float>(first_class + static_cast<int64_t>(rows[k]));
    }
  }

  void project_features(float* g, const float* x, const float* x_inv_norm, int64_t Ml, int64_t D,
                        float alpha) const override {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < Ml; ++i) {
      const float* xi = x + i * D;
      float* gi = g + i * D;
      const float inv = x_inv_norm[i];
      const float xg = static_cast<float>(cpu_dot_double(D, xi, gi)) * inv;  // x̂·g
      for (int64_t d = 0; d < D; ++d) gi[d] = alpha * inv * (gi[d] - xi[d] * inv * xg);
    }
  }

  void scale_by_top_diff(float* dx, const float* g, const float* w, int64_t n) const override {
    const float s = w[0];
    for (int64_t i = 0; i < n; ++i) dx[i] = s * g[i];
  }
};

}  // namespace

const CocoHeadOps& cpu_head_ops() {
  static const CpuHeadOps ops;
  return ops;
}

}  // namespace coco
