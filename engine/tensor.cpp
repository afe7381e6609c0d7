#include "engine/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "engine/common.h"
#include "engine/cuda_math.h"
#include "engine/device_memory.h"

namespace coco {

DeviceSpec DeviceSpec::parse(const std::string& s) {
  DeviceSpec d;
  if (s == "cpu") return d;
  if (s == "cuda") {
    d.type = Device::kCUDA;
    return d;
  }
  if (s.rfind("cuda:", 0) == 0) {
    d.type = Device::kCUDA;
    try {
      size_t used = 0;
      d.index = std::stoi(s.substr(5), &used);
      if (used != s.size() - 5 || d.index < 0) throw std::invalid_argument("");
    } catch (const std::exception&) {
      COCO_THROW("bad device '", s, "': expected cpu, cuda or cuda:N");
    }
    return d;
  }
  COCO_THROW("bad device '", s, "': expected cpu, cuda or cuda:N");
}

std::string DeviceSpec::str() const {
  return type == Device::kCPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

int64_t shape_count(const Shape& s, int begin, int end) {
  if (end < 0) end = static_cast<int>(s.size());
  int64_t c = 1;
  for (int i = begin; i < end; ++i)
    if (__builtin_mul_overflow(c, s[i], &c))  // a shape read from a file may claim anything
      COCO_THROW("shape ", shape_str(s), " has more elements than a 64-bit count holds");
  return c;
}

namespace {
std::atomic<int64_t> g_host_tensor_bytes{0};
}  // namespace

int64_t live_host_tensor_bytes() { return g_host_tensor_bytes.load(); }

Tensor::Tensor(const Shape& shape, Device dev) : device_(dev) { reshape(shape); }

void Tensor::reshape(const Shape& shape) {
  for (auto d : shape) COCO_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  shape_ = shape;
  count_ = shape_count(shape_);
  if (count_ > capacity_) {
    if (count_ > INT64_MAX / static_cast<int64_t>(sizeof(float)))
      COCO_THROW("shape ", shape_str(shape), " has more elements than memory can hold");
    Device dev = device_;
    const int64_t host_bytes = dev == Device::kCPU ? count_ * static_cast<int64_t>(sizeof(float)) : 0;
    float* p = static_cast<float*>(device_alloc(dev, static_cast<size_t>(count_) * sizeof(float)));
    g_host_tensor_bytes += host_bytes;
    data_.reset(p, [dev, host_bytes](float* q) {
      g_host_tensor_bytes -= host_bytes;
      device_free(dev, q);
    });
    device_memset_zero(p, dev, static_cast<size_t>(count_) * sizeof(float));
    capacity_ = count_;
  }
}

void Tensor::set_device(Device dev) {
  if (dev == device_) return;
  device_ = dev;
  data_.reset();
  capacity_ = 0;
  reshape(shape_);
}

int Tensor::canonical_axis(int axis) const {
  int n = num_axes();
  COCO_CHECK(axis >= -n && axis < n, "axis ", axis, " out of range for shape ", shape_str(shape_));
  return axis < 0 ? axis + n : axis;
}

int64_t Tensor::shape(int axis) const { return shape_[canonical_axis(axis)]; }

void Tensor::copy_from(const Tensor& other) {
  reshape(other.shape());
  if (data_.get() == other.data_.get()) return;
  device_copy(data(), device_, other.data(), other.device_, static_cast<size_t>(count_) * sizeof(float));
}

void Tensor::zero() { device_memset_zero(data(), device_, static_cast<size_t>(count_) * sizeof(float)); }

void Tensor::fill(float v) {
  if (device_ == Device::kCPU) {
    std::fill(data(), data() + count_, v);
  } else {
    cuda_set(count_, v, data(), cuda::stream());
  }
}

float& Tensor::at(int64_t i) {
  COCO_CHECK(device_ == Device::kCPU, "Tensor::at on a CUDA tensor");
  COCO_CHECK(i >= 0 && i < count_, "index ", i, " out of range ", count_);
  return data_.get()[i];
}

float Tensor::at(int64_t i) const { return const_cast<Tensor*>(this)->at(i); }

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(count_);
  device_copy(v.data(), Device::kCPU, data(), device_, v.size() * sizeof(float));
  return v;
}


static_assert(sizeof(int32_t) == sizeof(float), "an int32 blob reuses the float storage");

int32_t* Blob::mutable_data_int32() {
  COCO_CHECK(type_ == ElementType::kInt32, "Blob::mutable_data_int32 on a float blob ", shape_str(shape()));
  return reinterpret_cast<int32_t*>(data_.data());
}

const int32_t* Blob::cdata_int32() const {
  COCO_CHECK(type_ == ElementType::kInt32, "Blob::cdata_int32 on a float blob ", shape_str(shape()));
  return reinterpret_cast<const int32_t*>(data_.data());
}

}  // namespace coco
