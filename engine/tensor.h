// Tensor: a float32 array with a shape, in CPU or CUDA memory.
//
// Why: layers see shapes and raw pointers, nothing else. A tensor never moves
// between devices by itself: copy_from() is the one explicit copy, so no host/device
// synchronisation hides in an accessor. Storage grows but never shrinks on reshape,
// so the steady-state training loop does not allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace coco {

enum class Device { kCPU, kCUDA };

struct DeviceSpec {
  Device type = Device::kCPU;
  int index = 0;
  static DeviceSpec parse(const std::string& s);  // "cpu", "cuda", "cuda:N"
  std::string str() const;
};

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_count(const Shape& s, int begin = 0, int end = -1);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape, Device dev = Device::kCPU);

  void reshape(const Shape& shape);
  void reshape_like(const Tensor& other) { reshape(other.shape()); }
  // Moves the tensor to another device, discarding contents (storage is reallocated).
  void set_device(Device dev);

  const Shape& shape() const { return shape_; }
  int num_axes() const { return static_cast<int>(shape_.size()); }
  int64_t shape(int axis) const;  // negative axes count from the end
  int canonical_axis(int axis) const;
  int64_t count() const { return count_; }
  int64_t count(int begin, int end = -1) const { return shape_count(shape_, begin, end); }
  Device device() const { return device_; }
  bool empty() const { return count_ == 0; }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }

  // Explicit copy of contents (any device pair); reshapes this to other's shape.
  void copy_from(const Tensor& other);
  // Zero / fill (CPU, or CUDA ordered on the compute stream).
  void zero();
  void fill(float v);
  // Host access for tests and I/O: only valid for CPU tensors (throws otherwise).
  float& at(int64_t i);
  float at(int64_t i) const;
  std::vector<float> to_vector() const;  // copies to host (explicitly named)


 private:
  Shape shape_;
  int64_t count_ = 0;
  int64_t capacity_ = 0;
  Device device_ = Device::kCPU;
  std::shared_ptr<float> data_;
};

// The bytes of every CPU tensor alive in this process (the memory planner measures
// a net's build with it: engine/memory_plan.h).
int64_t live_host_tensor_bytes();

// What a blob's elements hold. kInt32 is for class ids: the label input that
// coco's sources fill, exact to 2^31 where float32 (Caffe's convention) is exact
// only to 2^24. The storage is the same 4-byte elements, read through
// data_int32(); layers that read labels take either type (layers/labels.h).
enum class ElementType { kFloat32, kInt32 };

// A network value: its data and the gradient of the loss with respect to it.
class Blob {
 public:
  Blob() = default;
  explicit Blob(const Shape& shape, Device dev = Device::kCPU) : data_(shape, dev), diff_(shape, dev) {}
  void reshape(const Shape& shape) {
    data_.reshape(shape);
    if (has_diff_) diff_.reshape(shape);
  }
  void reshape_like(const Blob& b) { reshape(b.shape()); }
  void set_device(Device dev) {
    data_.set_device(dev);
    diff_.set_device(dev);
  }
  // A parameter whose gradient is held elsewhere (a sampled CocoLoss head's rows,
  // Layer::row_gradient) keeps no diff: it is freed and stays empty through reshapes,
  // so a shard of millions of rows costs no second copy.
  void drop_diff() {
    has_diff_ = false;
    diff_ = Tensor(Shape{0}, device());
  }
  bool has_diff() const { return has_diff_; }
  ElementType element_type() const { return type_; }
  void set_element_type(ElementType t) { type_ = t; }
  // The int32 view of a kInt32 blob's data; throws for a float blob.
  int32_t* mutable_data_int32();
  const int32_t* cdata_int32() const;
  const Shape& shape() const { return data_.shape(); }
  int64_t shape(int axis) const { return data_.shape(axis); }
  int num_axes() const { return data_.num_axes(); }
  int64_t count() const { return data_.count(); }
  int64_t count(int begin, int end = -1) const { return data_.count(begin, end); }
  int canonical_axis(int a) const { return data_.canonical_axis(a); }
  Device device() const { return data_.device(); }

  Tensor& data() { return data_; }
  const Tensor& data() const { return data_; }
  Tensor& diff() { return diff_; }
  const Tensor& diff() const { return diff_; }
  float* mutable_data() { return data_.data(); }
  const float* cdata() const { return data_.data(); }
  float* mutable_diff() { return diff_.data(); }
  const float* cdiff() const { return diff_.data(); }

 private:
  Tensor data_;
  Tensor diff_;
  bool has_diff_ = true;
  ElementType type_ = ElementType::kFloat32;
};

}  // namespace coco
