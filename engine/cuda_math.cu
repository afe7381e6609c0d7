// Device math (engine/cuda_math.h): cuBLAS for the BLAS calls, small kernels for
// the rest. Reductions to the host run in two passes (per-block partials, then one
// block sums them in a fixed order), so their results do not depend on scheduling.
#include <cublas_v2.h>

#include <climits>

#include "engine/cuda_check.cuh"
#include "engine/cuda_math.h"
#include "engine/gpu_check.h"  // after cublas_v2.h: COCO_CUBLAS_CHECK

namespace coco {

namespace {

int to_int(int64_t v, const char* what) {
  COCO_CHECK(v >= 0 && v <= INT_MAX, what, " = ", v, " does not fit cuBLAS's int");
  return static_cast<int>(v);
}

__global__ void set_kernel(float* x, float v, int64_t n) {
  COCO_KERNEL_LOOP(i, n) x[i] = v;
}

__global__ void sgd_kernel(float* w, float* v, const float* g, int64_t n, float lr, float momentum, float decay,
                           bool l1, float clip) {
  COCO_KERNEL_LOOP(i, n) {
    const float wi = w[i];
    const float reg = l1 ? decay * static_cast<float>((wi > 0) - (wi < 0)) : decay * wi;
    const float vi = momentum * v[i] + lr * (clip * g[i] + reg);
    v[i] = vi;
    w[i] = wi - vi;
  }
}

// Row r of g updates row rows[r] of w and v (the same arithmetic as sgd_kernel).
__global__ void sgd_rows_kernel(int64_t n_rows, int64_t row_size, const float* rows, float* w, float* v,
                                const float* g, float lr, float momentum, float decay, bool l1, float clip) {
  COCO_KERNEL_LOOP(i, n_rows * row_size) {
    const int64_t r = i / row_size, d = i - r * row_size;
    const int64_t at = static_cast<int64_t>(rows[r]) * row_size + d;
    const float wi = w[at];
    const float reg = l1 ? decay * static_cast<float>((wi > 0) - (wi < 0)) : decay * wi;
    const float vi = momentum * v[at] + lr * (clip * g[i] + reg);
    v[at] = vi;
    w[at] = wi - vi;
  }
}

constexpr int kReduceBlocks = 256;

// Kind 0: sum x*y; kind 1: sum |x|. Each block writes one double partial.
__global__ void reduce_partial_kernel(double* partial, const float* x, const float* y, int64_t n, int kind) {
  __shared__ double s[cuda::kThreads];
  double acc = 0;
  COCO_KERNEL_LOOP(i, n) acc += kind == 0 ? static_cast<double>(x[i]) * y[i] : fabs(static_cast<double>(x[i]));
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ void reduce_final_kernel(double* out, const double* partial, int parts) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    double acc = 0;
    for (int i = 0; i < parts; ++i) acc += partial[i];
    *out = acc;
  }
}

// Per block: count of non-finite values and the smallest index of one (n if none).
__global__ void nonfinite_partial_kernel(long long* count, long long* first, const float* x, int64_t n) {
  __shared__ long long sc[cuda::kThreads];
  __shared__ long long sf[cuda::kThreads];
  long long c = 0, f = n;
  COCO_KERNEL_LOOP(i, n) {
    if (!isfinite(x[i])) {
      ++c;
      if (i < f) f = i;
    }
  }
  sc[threadIdx.x] = c;
  sf[threadIdx.x] = f;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) {
      sc[threadIdx.x] += sc[threadIdx.x + w];
      sf[threadIdx.x] = min(sf[threadIdx.x], sf[threadIdx.x + w]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    count[blockIdx.x] = sc[0];
    first[blockIdx.x] = sf[0];
  }
}

__global__ void nonfinite_final_kernel(long long* count, long long* first, int parts) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    long long c = 0, f = LLONG_MAX;
    for (int i = 0; i < parts; ++i) {
      c += count[i];
      f = min(f, first[i]);
    }
    count[0] = c;
    first[0] = f;
  }
}

// The device's cuBLAS handle, bound to `s` for the next call (cublasSetStream only
// stores the stream: no synchronisation).
cublasHandle_t cublas_on(Stream s) {
  cublasHandle_t h = cuda::cublas();
  COCO_CUBLAS_CHECK(cublasSetStream(h, s));
  return h;
}

unsigned reduce_blocks(int64_t n) {
  const unsigned b = cuda::blocks_for(n);
  return b < kReduceBlocks ? b : kReduceBlocks;
}

}  // namespace

void cuda_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
               float beta, float* C, Stream s) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // no terms: C = beta C, as cpu_gemm (cuBLAS rejects a leading dimension of 0)
    if (beta == 0.f)
      cuda_set(M * N, 0.f, C, s);
    else
      cuda_scale(M * N, beta, C, s);
    return;
  }
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int lda = to_int(ta == Trans::kNo ? K : M, "lda"), ldb = to_int(tb == Trans::kNo ? N : K, "ldb");
  COCO_CUBLAS_CHECK(cublasSgemm(cublas_on(s), tb == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T,
                                ta == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T, to_int(N, "N"), to_int(M, "M"),
                                to_int(K, "K"), &alpha, B, ldb, A, lda, &beta, C, to_int(N, "N")));
}

void cuda_gemm_at(Precision p, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  const float* B, float beta, float* C, Stream s) {
  if (p == Precision::kFP32 || M == 0 || N == 0 || K == 0) {
    cuda_gemm(ta, tb, M, N, K, alpha, A, B, beta, C, s);
    return;
  }
  HalfScratch a(M * K), b(K * N);
  cuda_to_half(p, M * K, A, a.get(), s);
  cuda_to_half(p, K * N, B, b.get(), s);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int lda = to_int(ta == Trans::kNo ? K : M, "lda"), ldb = to_int(tb == Trans::kNo ? N : K, "ldb");
  const cudaDataType_t t = p == Precision::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
  COCO_CUBLAS_CHECK(cublasGemmEx(cublas_on(s), tb == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T,
                                 ta == Trans::kNo ? CUBLAS_OP_N : CUBLAS_OP_T, to_int(N, "N"), to_int(M, "M"),
                                 to_int(K, "K"), &alpha, b.get(), t, ldb, a.get(), t, lda, &beta, C, CUDA_R_32F,
                                 to_int(N, "N"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemv(Trans ta, int64_t M, int64_t N, float alpha, const float* A, const float* x, float beta, float* y,
               Stream s) {
  if (M == 0 || N == 0) return;
  // Row-major A (M x N) is column-major A^T (N x M).
  COCO_CUBLAS_CHECK(cublasSgemv(cublas_on(s), ta == Trans::kNo ? CUBLAS_OP_T : CUBLAS_OP_N, to_int(N, "N"),
                                to_int(M, "M"), &alpha, A, to_int(N, "N"), x, 1, &beta, y, 1));
}

void cuda_axpy(int64_t n, float alpha, const float* x, float* y, Stream s) {
  if (n == 0) return;
  COCO_CUBLAS_CHECK(cublasSaxpy(cublas_on(s), to_int(n, "n"), &alpha, x, 1, y, 1));
}

void cuda_scale(int64_t n, float alpha, float* x, Stream s) {
  if (n == 0) return;
  COCO_CUBLAS_CHECK(cublasSscal(cublas_on(s), to_int(n, "n"), &alpha, x, 1));
}

void cuda_set(int64_t n, float value, float* x, Stream s) {
  if (n == 0) return;
  set_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(x, value, n);
  cuda::check_launch("set_kernel");
}

__global__ void int32_to_float_kernel(const int32_t* x, float* y, int64_t n) {
  COCO_KERNEL_LOOP(i, n) y[i] = static_cast<float>(x[i]);
}

__global__ void float_to_int32_kernel(const float* x, int32_t* y, int64_t n) {
  COCO_KERNEL_LOOP(i, n) {
    const float v = x[i];
    y[i] = v >= 0.f && v < 2147483648.f && v == floorf(v) ? static_cast<int32_t>(v) : -1;
  }
}

void cuda_int32_to_float(int64_t n, const int32_t* x, float* y, Stream s) {
  if (n == 0) return;
  int32_to_float_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(x, y, n);
  cuda::check_launch("int32_to_float_kernel");
}

void cuda_float_to_int32(int64_t n, const float* x, int32_t* y, Stream s) {
  if (n == 0) return;
  float_to_int32_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(x, y, n);
  cuda::check_launch("float_to_int32_kernel");
}

void cuda_copy(int64_t n, const float* x, float* y, Stream s) {
  if (n == 0 || x == y) return;
  COCO_CUDA_CHECK(cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
}

namespace {
double reduce_to_host(int64_t n, const float* x, const float* y, int kind, Stream s) {
  if (n == 0) return 0;
  const unsigned blocks = reduce_blocks(n);
  auto* partial = static_cast<double*>(cuda::workspace((blocks + 1) * sizeof(double)));
  reduce_partial_kernel<<<blocks, cuda::kThreads, 0, s>>>(partial, x, y, n, kind);
  cuda::check_launch("reduce_partial_kernel");
  reduce_final_kernel<<<1, 32, 0, s>>>(partial + blocks, partial, static_cast<int>(blocks));
  cuda::check_launch("reduce_final_kernel");
  double out = 0;
  COCO_CUDA_CHECK(cudaMemcpyAsync(&out, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, s));
  cuda::wait(s, "a reduction read back from the device (a norm or dot product)");
  return out;
}
}  // namespace

double cuda_dot_double(int64_t n, const float* x, const float* y, Stream s) { return reduce_to_host(n, x, y, 0, s); }
double cuda_asum_double(int64_t n, const float* x, Stream s) { return reduce_to_host(n, x, x, 1, s); }

int64_t cuda_count_nonfinite(int64_t n, const float* x, int64_t* first, Stream s) {
  if (first) *first = -1;
  if (n == 0) return 0;
  const unsigned blocks = reduce_blocks(n);
  auto* ws = static_cast<long long*>(cuda::workspace(2 * blocks * sizeof(long long)));
  nonfinite_partial_kernel<<<blocks, cuda::kThreads, 0, s>>>(ws, ws + blocks, x, n);
  cuda::check_launch("nonfinite_partial_kernel");
  nonfinite_final_kernel<<<1, 32, 0, s>>>(ws, ws + blocks, static_cast<int>(blocks));
  cuda::check_launch("nonfinite_final_kernel");
  long long host[2] = {0, 0};
  COCO_CUDA_CHECK(cudaMemcpyAsync(&host[0], ws, sizeof(long long), cudaMemcpyDeviceToHost, s));
  COCO_CUDA_CHECK(cudaMemcpyAsync(&host[1], ws + blocks, sizeof(long long), cudaMemcpyDeviceToHost, s));
  cuda::wait(s, "the NaN/Inf count read back from the device");
  if (first && host[0] > 0) *first = host[1];
  return host[0];
}

void cuda_sgd_update(int64_t n, float* w, float* v, const float* g, float lr, float momentum, float decay, bool l1,
                     float clip, Stream s) {
  if (n == 0) return;
  sgd_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, s>>>(w, v, g, n, lr, momentum, decay, l1, clip);
  cuda::check_launch("sgd_kernel");
}

void cuda_sgd_update_rows(int64_t n_rows, int64_t row_size, const float* rows, float* w, float* v, const float* g,
                          float lr, float momentum, float decay, bool l1, float clip, Stream s) {
  if (n_rows == 0 || row_size == 0) return;
  sgd_rows_kernel<<<cuda::blocks_for(n_rows * row_size), cuda::kThreads, 0, s>>>(n_rows, row_size, rows, w, v, g, lr,
                                                                                momentum, decay, l1, clip);
  cuda::check_launch("sgd_rows_kernel");
}

}  // namespace coco
