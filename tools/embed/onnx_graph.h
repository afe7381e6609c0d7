// Building an ONNX graph from coco's layers: tensor naming and one converter per
// layer type (tools/embed/onnx_layers.cpp), used by export_onnx.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include "engine/layer.h"

namespace coco {

// Caffe reuses blob names (in-place layers); ONNX names every value once. The
// builder maps each blob to the tensor that holds its latest value.
class OnnxGraph {
 public:
  explicit OnnxGraph(onnx::GraphProto* g) : g_(g) {}
  // The tensor now holding `blob` (an error naming `layer` when nothing wrote it).
  std::string value_of(const std::string& blob, const std::string& layer) const;
  // A fresh tensor for a write of `blob`; later reads of the blob see it.
  std::string write(const std::string& blob);
  void bind(const std::string& blob, const std::string& tensor) { current_[blob] = tensor; }
  // An initializer (float32) named after `layer` and `what`; returns its name.
  std::string constant(const std::string& layer, const std::string& what, const std::vector<float>& values,
                       const std::vector<int64_t>& dims);
  std::string constant_int64(const std::string& layer, const std::string& what, const std::vector<int64_t>& values);
  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs);
  int64_t parameters() const { return parameters_; }

 private:
  onnx::GraphProto* g_;
  std::map<std::string, std::string> current_;
  std::map<std::string, int> writes_;
  int64_t parameters_ = 0;
};

void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v);
void set_int(onnx::NodeProto* n, const std::string& name, int64_t v);
void set_float(onnx::NodeProto* n, const std::string& name, float v);

// Adds the nodes computing `layer` (test phase) to `g`; throws for a layer or a
// setting ONNX export does not cover. `bottom_shapes`: the layer's input shapes in
// the built net (batch axis included), for the settings that depend on them.
void convert_layer(const Layer& layer, const std::vector<Shape>& bottom_shapes, const Shape& top_shape, OnnxGraph& g);

}  // namespace coco
