// The small net the checkpoint and .caffemodel fuzz targets load parameters into,
// and that tests/fuzz/make_corpus.cpp saves the seed files from. It holds every kind
// of parameter a loader must place: a convolution and an inner product (weights and
// biases), BatchNorm running statistics (state, not learnable), Scale, PReLU and the
// CocoLoss centroids (sharded: rows in shard files).
#pragma once

#include <google/protobuf/text_format.h>

#include <memory>

#include "comm/communicator.h"
#include "engine/net.h"
#include "engine/proto/coco.pb.h"
#include "engine/solver.h"

namespace coco::fuzz {

inline const char* kFuzzSolver = R"(
base_lr: 0.1
momentum: 0.9
max_iter: 10
net_param {
  name: "fuzz"
  input: "data" input_shape { dim: 2 dim: 1 dim: 6 dim: 6 }
  input: "label" input_shape { dim: 2 }
  layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
          convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } } }
  layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
  layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
  layer { name: "pr" type: "PReLU" bottom: "conv" top: "conv" }
  layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
          inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
  layer { name: "head" type: "CocoLoss" bottom: "ip" bottom: "label" top: "loss"
          coco_loss_param { num_output: 5 scale: 4 } }
}
)";

struct FuzzNet {
  proto::SolverParameter solver_param;
  LocalCommunicator comm;
  std::unique_ptr<Net> net;
  std::unique_ptr<SgdSolver> solver;
  FuzzNet() {
    if (!google::protobuf::TextFormat::ParseFromString(kFuzzSolver, &solver_param)) throw std::runtime_error("kFuzzSolver");
    net = std::make_unique<Net>(solver_param.net_param(), Phase::kTrain, &comm, 1, "fuzz net");
    solver = std::make_unique<SgdSolver>(solver_param, net.get());
  }
};

}  // namespace coco::fuzz
