#include "layers/labels.h"

#include <cmath>
#include <sstream>

#include "engine/common.h"
#include "engine/cuda_math.h"
#include "engine/cuda_runtime.h"

namespace coco {

namespace {
bool is_int32_class(float v) { return v >= 0.f && v < 2147483648.f && v == std::floor(v); }

int32_t* as_int32(Tensor& t) { return reinterpret_cast<int32_t*>(t.data()); }
}  // namespace

const float* float_labels(const Blob& b, Tensor& scratch) {
  if (b.element_type() == ElementType::kFloat32) return b.cdata();
  scratch.set_device(b.device());
  scratch.reshape(b.shape());
  const int32_t* x = b.cdata_int32();
  float* y = scratch.data();
  if (b.device() == Device::kCUDA) {
    cuda_int32_to_float(b.count(), x, y, cuda::stream());
  } else {
    for (int64_t i = 0; i < b.count(); ++i) y[i] = static_cast<float>(x[i]);
  }
  return y;
}

const int32_t* int32_labels(const Blob& b, Tensor& scratch) {
  if (b.element_type() == ElementType::kInt32) return b.cdata_int32();
  scratch.set_device(b.device());
  scratch.reshape(b.shape());
  const float* x = b.cdata();
  int32_t* y = as_int32(scratch);
  if (b.device() == Device::kCUDA) {
    cuda_float_to_int32(b.count(), x, y, cuda::stream());
  } else {
    for (int64_t i = 0; i < b.count(); ++i) y[i] = is_int32_class(x[i]) ? static_cast<int32_t>(x[i]) : -1;
  }
  return y;
}

int64_t first_label_outside(const Blob& b, int64_t n, int64_t K) {
  COCO_CHECK(b.device() == Device::kCPU, "first_label_outside: the labels are not on the CPU");
  if (b.element_type() == ElementType::kInt32) {
    const int32_t* y = b.cdata_int32();
    for (int64_t i = 0; i < n; ++i)
      if (y[i] < 0 || y[i] >= K) return i;
    return -1;
  }
  const float* y = b.cdata();
  for (int64_t i = 0; i < n; ++i)
    if (!is_int32_class(y[i]) || y[i] >= static_cast<float>(K)) return i;
  return -1;
}

std::string label_str(const Blob& b, int64_t i) {
  COCO_CHECK(b.device() == Device::kCPU, "label_str: the labels are not on the CPU");
  if (b.element_type() == ElementType::kInt32) return std::to_string(b.cdata_int32()[i]);
  std::ostringstream os;
  os << b.cdata()[i];
  return os.str();
}

}  // namespace coco
