// Checkpoint -> ONNX model of the test-phase net up to the embedding blob, for
// deployment (coco-export --onnx). The model is built with the ONNX protobuf classes
// of Debian's libonnx-dev, at opset 13, with a dynamic batch axis ("batch"), the
// parameters as initializers, and is checked by onnx::checker (full check: shape
// inference included) before it is written.
//
// Layer by layer (the layers the face configs and LeNet++ use):
//   Convolution -> Conv; InnerProduct -> Flatten + Gemm; PReLU -> PRelu;
//   ReLU -> Relu / LeakyRelu; BN, BatchNorm -> BatchNormalization (running
//   statistics; a layer that would normalise with its batch's statistics in the test
//   phase is an error); Scale -> Mul (+ Add); Pooling -> MaxPool / AveragePool with
//   pads that give Caffe's output size and windows (Global* for global pooling);
//   Eltwise -> Add / Mul / Max (coefficients as constants); Flatten -> Flatten;
//   Dropout, Split -> Identity; Normalize -> x * coeff / sqrt(sum x^2 + 1e-12);
//   Concat -> Concat. Any other layer on the way to the blob is an error naming it.
#pragma once

#include <string>

#include "tools/embed/export.h"

namespace coco {

struct OnnxExport {
  std::string blob, blob_rule;
  int64_t nodes = 0, initializers = 0, parameters = 0;
  Shape sample;  // the input's shape without the batch axis
};

// Writes the model of opt's net (config, weights, blob) to `path`. With
// check_samples > 0, also the first that many samples of opt.data as the net takes them
// (PATH.input.npy, float32, count x sample) and coco's own forward of them
// (PATH.output.npy, float32, count x dim; no --normalize or --flip-sum), for a runtime
// to be checked against (tools/onnx_check.mjs). One net serves both.
OnnxExport export_onnx(const ExportOptions& opt, const std::string& path, int64_t check_samples = 0);

}  // namespace coco
