#include "tools/embed/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <memory>

#include "comm/communicator.h"
#include "engine/checkpoint.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/data/source.h"
#include "engine/embedding_net.h"
#include "engine/net.h"
#include "engine/proto/coco.pb.h"
#include "tools/embed/npy.h"
#include "tools/embed/onnx_graph.h"

namespace coco {
namespace {

constexpr int kOpset = 13;
constexpr int64_t kIrVersion = 7;  // the IR of opset 13 (ONNX 1.8); any runtime of the last years reads it

// The pruned test-phase net of `opt`, its weights loaded (batch 1: the model's batch axis is free).
struct PrunedNet {
  std::unique_ptr<LocalCommunicator> comm = std::make_unique<LocalCommunicator>();
  std::unique_ptr<Net> net;
  std::string blob, rule, origin;
};

PrunedNet build_pruned(const ExportOptions& opt, int64_t batch) {
  const TrainConfig cfg = load_train_config(opt.config);
  const proto::NetParameter full = layers_for_phase(cfg.net, Phase::kTest);
  PrunedNet p;
  p.origin = cfg.net_origin;
  const EmbeddingChoice choice = choose_embedding_blob(full, opt.blob, cfg.net_origin);
  p.blob = choice.blob;
  p.rule = choice.rule;
  proto::NetParameter pruned = prune_to_blob(full, p.blob, cfg.net_origin);
  set_input_batch(&pruned, batch);
  p.net = std::make_unique<Net>(pruned, Phase::kTest, p.comm.get(), opt.seed, cfg.net_origin);
  if (!opt.weights.empty()) load_weights(*p.net, opt.weights);
  return p;
}

void add_value_info(onnx::ValueInfoProto* v, const std::string& name, const Shape& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("batch");
  for (size_t a = 1; a < shape.size(); ++a) s->add_dim()->set_dim_value(shape[a]);
}

// The ONNX model of `p`'s net; `out` gets its counts and input shape.
onnx::ModelProto build_model(const PrunedNet& p, const ExportOptions& opt, OnnxExport* out) {
  const Net& net = *p.net;
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("coco");
  model.set_doc_string("coco-export --onnx of " + opt.config + (opt.weights.empty() ? "" : " with " + opt.weights) +
                       ": the test-phase net up to '" + p.blob + "'");
  model.add_opset_import()->set_version(kOpset);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(net.name().empty() ? "coco" : net.name());
  OnnxGraph g(graph);

  // Inputs: the net's inputs that some layer reads (the label input does not reach the embedding).
  out->blob = p.blob;
  out->blob_rule = p.rule;
  for (size_t i = 0; i < net.input_blobs().size(); ++i) {
    const std::string& name = net.input_names()[i];
    bool read = false;
    for (size_t l = 0; l < net.num_layers(); ++l)
      for (const auto& b : net.layer(l).param().bottom()) read |= b == name;
    if (!read) continue;
    const Shape& s = net.input_blobs()[i]->shape();
    if (out->sample.empty()) out->sample.assign(s.begin() + 1, s.end());
    add_value_info(graph->add_input(), name, s);
    g.bind(name, name);
  }
  for (size_t l = 0; l < net.num_layers(); ++l) {
    const Layer& layer = net.layer(l);
    if (layer.param().type() == "Input") continue;
    std::vector<Shape> bottoms;
    for (const auto& b : layer.param().bottom()) bottoms.push_back(net.blob(b)->shape());
    const Shape top = layer.param().top_size() > 0 ? net.blob(layer.param().top(0))->shape() : Shape{};
    convert_layer(layer, bottoms, top, g);
  }
  // The output keeps the blob's name: a final Identity when the last writer named it otherwise.
  const std::string last = g.value_of(p.blob, "(the output)");
  std::string output = last;
  if (last != p.blob) {
    output = p.blob + "/output";
    g.node("Identity", "output", {last}, {output});
  }
  add_value_info(graph->add_output(), output, net.blob(p.blob)->shape());
  out->nodes = graph->node_size();
  out->initializers = graph->initializer_size();
  out->parameters = g.parameters();
  return model;
}

void check_and_write(const onnx::ModelProto& model, const std::string& path) {
  try {
    onnx::checker::check_model(model);
    // The full check: strict shape inference over a copy, which also checks the
    // inferred output shape against the declared (batch, dim).
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict=*/1));
  } catch (const std::exception& e) {
    COCO_THROW(path, ": the ONNX checker refuses the model coco built (a coco bug, please report it): ", e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) COCO_THROW(path, ": the ONNX model does not serialise (over 2 GB?)");
  write_file_atomic(path, bytes);
}

// The first `count` samples of opt.data (at most all), as the net takes them.
std::vector<float> read_samples(const ExportOptions& opt, int64_t count, Shape* shape) {
  proto::DataSourceParameter dp;
  dp.set_source(opt.data);
  dp.set_split(opt.split);
  dp.set_shuffle(false);
  dp.set_threads(0);
  const auto src = open_data_source(dp, "", opt.seed, "--data " + opt.data);
  count = std::min(count, src->size());
  *shape = src->sample_shape();
  shape->insert(shape->begin(), count);
  std::vector<float> x(static_cast<size_t>(shape_count(*shape)));
  std::vector<int32_t> labels(static_cast<size_t>(count));
  src->fill_range(0, count, x.data(), labels.data());
  return x;
}

// coco's output for `x` (shape `xs`), beside the model: PREFIX.input.npy, PREFIX.output.npy.
void write_check(const PrunedNet& p, const std::vector<float>& x, const Shape& xs, const std::string& prefix) {
  Blob* in = p.net->input_blobs()[0];
  if (in->shape() != xs)
    COCO_THROW(p.origin, ": the net's first input takes ", shape_str(in->shape()), ", not --data's ", shape_str(xs));
  std::copy(x.begin(), x.end(), in->mutable_data());
  p.net->forward();
  const Blob* y = p.net->blob(p.blob);
  write_npy(prefix + ".input.npy", xs, x.data());
  write_npy(prefix + ".output.npy", {xs[0], y->count() / xs[0]}, y->cdata());
}

}  // namespace

OnnxExport export_onnx(const ExportOptions& opt, const std::string& path, int64_t check_samples) {
  Shape xs;
  const std::vector<float> x = check_samples > 0 ? read_samples(opt, check_samples, &xs) : std::vector<float>();
  // One net for the model and the check: the model's batch axis is free either way.
  const PrunedNet p = build_pruned(opt, check_samples > 0 ? xs[0] : 1);
  OnnxExport out;
  check_and_write(build_model(p, opt, &out), path);
  if (check_samples > 0) write_check(p, x, xs, path);
  return out;
}

}  // namespace coco
