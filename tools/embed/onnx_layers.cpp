// One converter per layer type, coco (test phase) -> ONNX opset 13 nodes; see
// onnx_export.h for the table and onnx_graph.h for the naming.
#include <functional>
#include <map>

#include "engine/common.h"
#include "engine/proto/coco.pb.h"
#include "tools/embed/onnx_graph.h"

namespace coco {

// ---------------------------------------------------------------- the graph

std::string OnnxGraph::value_of(const std::string& blob, const std::string& layer) const {
  const auto it = current_.find(blob);
  if (it == current_.end()) COCO_THROW("ONNX export: layer '", layer, "' reads blob '", blob, "', which nothing wrote");
  return it->second;
}

std::string OnnxGraph::write(const std::string& blob) {
  const int k = writes_[blob]++;
  const std::string name = k == 0 ? blob : blob + "/" + std::to_string(k);
  current_[blob] = name;
  return name;
}

std::string OnnxGraph::constant(const std::string& layer, const std::string& what, const std::vector<float>& values,
                                const std::vector<int64_t>& dims) {
  onnx::TensorProto* t = g_->add_initializer();
  t->set_name(layer + "/" + what);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  t->mutable_raw_data()->assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  parameters_ += static_cast<int64_t>(values.size());
  return t->name();
}

std::string OnnxGraph::constant_int64(const std::string& layer, const std::string& what,
                                      const std::vector<int64_t>& values) {
  onnx::TensorProto* t = g_->add_initializer();
  t->set_name(layer + "/" + what);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return t->name();
}

onnx::NodeProto* OnnxGraph::node(const std::string& op, const std::string& name,
                                 const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) {
  onnx::NodeProto* n = g_->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

void set_ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void set_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void set_float(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

namespace {

// A layer's inputs are resolved before its outputs are named (an in-place layer reads
// the blob's previous tensor and writes a new one), once, in convert_layer.
struct Ctx {
  const Layer& layer;
  const std::vector<Shape>& bottoms;
  OnnxGraph& g;
  std::vector<std::string> ins, outs;
  const proto::LayerParameter& p() const { return layer.param(); }
  const std::string& name() const { return layer.name(); }
  std::string in(int i = 0) const { return ins.at(static_cast<size_t>(i)); }
  std::string out(int i = 0) const { return outs.at(static_cast<size_t>(i)); }
  std::vector<float> blob(size_t i) const {
    if (i >= layer.blobs().size()) COCO_THROW("ONNX export: layer '", name(), "' has no parameter blob ", i);
    return layer.blobs()[i]->data().to_vector();
  }
  int64_t channels() const { return bottoms.at(0).size() > 1 ? bottoms[0][1] : 1; }
  [[noreturn]] void refuse(const std::string& why) const {
    COCO_THROW("ONNX export: layer '", name(), "' (", p().type(), "): ", why);
  }
};

// Caffe's spatial settings: the repeated field (one value or h, w), else _h/_w, else `fallback`.
std::vector<int64_t> spatial(const google::protobuf::RepeatedField<uint32_t>& r, bool has_h, uint32_t h, bool has_w,
                             uint32_t w, int64_t fallback) {
  if (has_h || has_w) return {has_h ? h : fallback, has_w ? w : fallback};
  if (r.size() == 1) return {r.Get(0), r.Get(0)};
  if (r.size() == 2) return {r.Get(0), r.Get(1)};
  return {fallback, fallback};
}

void convolution(const Ctx& c) {
  const auto& p = c.p().convolution_param();
  if (c.bottoms.at(0).size() != 4) c.refuse("only 2-d convolutions (4-d inputs) are exported");
  const Shape& w = c.layer.blobs().at(0)->shape();
  const auto stride = spatial(p.stride(), p.has_stride_h(), p.stride_h(), p.has_stride_w(), p.stride_w(), 1);
  const auto pad = spatial(p.pad(), p.has_pad_h(), p.pad_h(), p.has_pad_w(), p.pad_w(), 0);
  const auto dilation = spatial(p.dilation(), false, 0, false, 0, 1);
  std::vector<std::string> inputs{c.in(), c.g.constant(c.name(), "W", c.blob(0), w)};
  if (p.bias_term()) inputs.push_back(c.g.constant(c.name(), "B", c.blob(1), {w[0]}));
  auto* n = c.g.node("Conv", c.name(), inputs, {c.out()});
  set_ints(n, "kernel_shape", {w[2], w[3]});
  set_ints(n, "strides", stride);
  set_ints(n, "pads", {pad[0], pad[1], pad[0], pad[1]});
  set_ints(n, "dilations", dilation);
  set_int(n, "group", p.group());
}

void inner_product(const Ctx& c) {
  const auto& p = c.p().inner_product_param();
  if (p.axis() != 1) c.refuse("only axis 1 is exported");
  const Shape& w = c.layer.blobs().at(0)->shape();
  const int64_t n_out = p.num_output(), k = w[0] * w[1] / n_out;
  const std::string flat = c.g.write(c.p().top(0) + "/flat");
  c.g.node("Flatten", c.name() + "/flatten", {c.in()}, {flat});
  std::vector<std::string> inputs{flat, c.g.constant(c.name(), "W", c.blob(0), p.transpose() ? Shape{k, n_out}
                                                                                               : Shape{n_out, k})};
  if (p.bias_term()) inputs.push_back(c.g.constant(c.name(), "B", c.blob(1), {n_out}));
  auto* n = c.g.node("Gemm", c.name(), inputs, {c.out()});
  set_int(n, "transB", p.transpose() ? 0 : 1);
}

void prelu(const Ctx& c) {
  const std::vector<float> slope = c.blob(0);
  const int64_t C = static_cast<int64_t>(slope.size());
  Shape dims{C};
  for (size_t a = 2; a < c.bottoms.at(0).size(); ++a) dims.push_back(1);  // broadcast over N, C, H, W
  c.g.node("PRelu", c.name(), {c.in(), c.g.constant(c.name(), "slope", slope, C == 1 ? Shape{1} : dims)}, {c.out()});
}

void relu(const Ctx& c) {
  const float slope = c.p().relu_param().negative_slope();
  auto* n = c.g.node(slope == 0 ? "Relu" : "LeakyRelu", c.name(), {c.in()}, {c.out()});
  if (slope != 0) set_float(n, "alpha", slope);
}

// Per-channel (axis 1) values as a broadcastable constant: (C, 1, 1) for 4-d inputs.
Shape channel_dims(const Ctx& c, int64_t C) {
  Shape dims{C};
  for (size_t a = 2; a < c.bottoms.at(0).size(); ++a) dims.push_back(1);
  return dims;
}

void batch_norm_node(const Ctx& c, std::vector<float> scale, std::vector<float> shift, std::vector<float> mean,
                     std::vector<float> var, float eps) {
  const int64_t C = static_cast<int64_t>(mean.size());
  auto* n = c.g.node("BatchNormalization", c.name(),
                     {c.in(), c.g.constant(c.name(), "scale", scale, {C}), c.g.constant(c.name(), "B", shift, {C}),
                      c.g.constant(c.name(), "mean", mean, {C}), c.g.constant(c.name(), "var", var, {C})},
                     {c.out()});
  set_float(n, "epsilon", eps);
}

// The seed's BN: blobs [scale, shift, running mean, running variance] (layers/bn_layer.h).
void bn(const Ctx& c) {
  const auto& p = c.p().bn_param();
  const bool running = p.has_use_global_stats() ? p.use_global_stats() : p.moving_average();
  if (!running) c.refuse("it normalises with each batch's statistics in the test phase (moving_average off); "
                         "ONNX export needs running statistics (use_global_stats: true)");
  batch_norm_node(c, c.blob(0), c.blob(1), c.blob(2), c.blob(3), p.eps());
}

// Caffe's BatchNorm: blobs [mean sum, variance sum, scale factor] (layers/batch_norm_layer.h).
void batch_norm(const Ctx& c) {
  const auto& p = c.p().batch_norm_param();
  if (p.has_use_global_stats() && !p.use_global_stats()) c.refuse("use_global_stats: false (batch statistics)");
  std::vector<float> mean = c.blob(0), var = c.blob(1);
  const float factor = c.blob(2).at(0), inv = factor == 0 ? 0.f : 1.f / factor;
  for (auto& m : mean) m *= inv;
  for (auto& v : var) v *= inv;
  const std::vector<float> ones(mean.size(), 1.f), zeros(mean.size(), 0.f);
  batch_norm_node(c, ones, zeros, mean, var, p.eps());
}

void scale(const Ctx& c) {
  const auto& p = c.p().scale_param();
  if (c.p().bottom_size() != 1) c.refuse("a scale from a second bottom is not exported");
  if (p.axis() != 1 || p.num_axes() != 1) c.refuse("only axis 1 with num_axes 1 (per channel) is exported");
  const std::vector<float> s = c.blob(0);
  const Shape dims = channel_dims(c, static_cast<int64_t>(s.size()));
  const std::string scaled = p.bias_term() ? c.g.write(c.p().top(0) + "/scaled") : c.out();
  c.g.node("Mul", c.name(), {c.in(), c.g.constant(c.name(), "scale", s, dims)}, {scaled});
  if (p.bias_term()) c.g.node("Add", c.name() + "/bias", {scaled, c.g.constant(c.name(), "bias", c.blob(1), dims)},
                              {c.out()});
}

// Caffe's windows start at o * stride - pad and are clipped to the image (MAX) or to
// the padded image (AVE's divisor). ONNX's floor-mode windows are the same when the
// end padding makes the output size Caffe's; MAX ignores padding, so that always
// holds for it; AVE only where ONNX's divisor is Caffe's (see the refusals).
void pooling(const Ctx& c, const Shape& top) {
  const auto& p = c.p().pooling_param();
  if (p.pool() == proto::PoolingParameter::STOCHASTIC) c.refuse("STOCHASTIC pooling is not exported");
  const bool max = p.pool() == proto::PoolingParameter::MAX;
  if (p.global_pooling()) {
    c.g.node(max ? "GlobalMaxPool" : "GlobalAveragePool", c.name(), {c.in()}, {c.out()});
    return;
  }
  const Shape& in = c.bottoms.at(0);
  const std::vector<int64_t> k = p.has_kernel_h() || p.has_kernel_w()
                                     ? std::vector<int64_t>{p.kernel_h(), p.kernel_w()}
                                     : std::vector<int64_t>{p.kernel_size(), p.kernel_size()};
  const std::vector<int64_t> s = p.has_stride_h() || p.has_stride_w()
                                     ? std::vector<int64_t>{p.stride_h(), p.stride_w()}
                                     : std::vector<int64_t>{p.stride(), p.stride()};
  const std::vector<int64_t> pad = p.has_pad_h() || p.has_pad_w() ? std::vector<int64_t>{p.pad_h(), p.pad_w()}
                                                                    : std::vector<int64_t>{p.pad(), p.pad()};
  std::vector<int64_t> end(2);
  for (int a = 0; a < 2; ++a) {
    end[a] = (top.at(2 + a) - 1) * s[a] + k[a] - in.at(2 + a) - pad[a];
    if (end[a] < 0) end[a] = 0;  // floor mode already stops inside the image
    if (!max && !(pad[a] == 0 || end[a] == pad[a]))
      c.refuse("AVE pooling with a padding whose last window Caffe clips differently from ONNX");
  }
  auto* n = c.g.node(max ? "MaxPool" : "AveragePool", c.name(), {c.in()}, {c.out()});
  set_ints(n, "kernel_shape", k);
  set_ints(n, "strides", s);
  set_ints(n, "pads", {pad[0], pad[1], end[0], end[1]});
  // Caffe's AVE divisor counts the padding inside pad but never past the image's end padding.
  if (!max) set_int(n, "count_include_pad", pad[0] > 0 || pad[1] > 0 ? 1 : 0);
}

void eltwise(const Ctx& c) {
  const auto& p = c.p().eltwise_param();
  const int n = c.p().bottom_size();
  if (p.coeff_size() != 0 && p.coeff_size() != n) c.refuse("coeff must be given once per bottom");
  if (p.coeff_size() != 0 && p.operation() != proto::EltwiseParameter::SUM) c.refuse("coeff applies to SUM only");
  std::vector<std::string> inputs;
  for (int i = 0; i < n; ++i) {
    std::string x = c.in(i);
    if (p.coeff_size() != 0 && p.coeff(i) != 1.f) {
      const std::string scaled = c.g.write(c.p().top(0) + "/term" + std::to_string(i));
      c.g.node("Mul", c.name() + "/coeff" + std::to_string(i),
               {x, c.g.constant(c.name(), "coeff" + std::to_string(i), {p.coeff(i)}, {1})}, {scaled});
      x = scaled;
    }
    inputs.push_back(x);
  }
  const char* op = p.operation() == proto::EltwiseParameter::PROD  ? "Mul"
                   : p.operation() == proto::EltwiseParameter::MAX ? "Max"
                                                                   : "Add";
  if (std::string(op) == "Max") {
    c.g.node(op, c.name(), inputs, {c.out()});
    return;
  }
  std::string acc = inputs[0];  // Add and Mul take two inputs: a chain
  for (int i = 1; i < n; ++i) {
    const std::string next = i + 1 == n ? c.out() : c.g.write(c.p().top(0) + "/partial" + std::to_string(i));
    c.g.node(op, c.name() + (i + 1 == n ? "" : "/" + std::to_string(i)), {acc, inputs[i]}, {next});
    acc = next;
  }
}

void flatten(const Ctx& c) {
  const auto& p = c.p().flatten_param();
  if (p.axis() != 1 || p.end_axis() != -1) c.refuse("only axis 1 to the last axis is exported");
  auto* n = c.g.node("Flatten", c.name(), {c.in()}, {c.out()});
  set_int(n, "axis", 1);
}

void identity(const Ctx& c) {
  const std::string x = c.in();
  for (int t = 0; t < c.p().top_size(); ++t)
    c.g.node("Identity", c.name() + (t ? "/" + std::to_string(t) : ""), {x}, {c.out(t)});
}

// The seed's Normalize: coeff * x / sqrt(sum over C*H*W of x^2 + 1e-12), per sample.
void normalize(const Ctx& c) {
  const std::string x = c.in(), base = c.p().top(0);
  const size_t rank = c.bottoms.at(0).size();
  std::vector<int64_t> axes;
  for (size_t a = 1; a < rank; ++a) axes.push_back(static_cast<int64_t>(a));
  const std::string sq = c.g.write(base + "/sumsq"), eps = c.g.write(base + "/sumsq_eps"),
                    norm = c.g.write(base + "/norm"), unit = c.g.write(base + "/unit");
  auto* r = c.g.node("ReduceSumSquare", c.name() + "/sumsq", {x}, {sq});
  set_ints(r, "axes", axes);
  set_int(r, "keepdims", 1);
  c.g.node("Add", c.name() + "/eps", {sq, c.g.constant(c.name(), "eps", {1e-12f}, {1})}, {eps});
  c.g.node("Sqrt", c.name() + "/sqrt", {eps}, {norm});
  const float coeff = c.p().normalize_param().coeff();
  c.g.node("Div", c.name(), {x, norm}, {coeff == 1.f ? c.out() : unit});
  if (coeff != 1.f) c.g.node("Mul", c.name() + "/coeff", {unit, c.g.constant(c.name(), "coeff", {coeff}, {1})}, {c.out()});
}

void concat(const Ctx& c) {
  const auto& p = c.p().concat_param();
  std::vector<std::string> inputs;
  for (int i = 0; i < c.p().bottom_size(); ++i) inputs.push_back(c.in(i));
  auto* n = c.g.node("Concat", c.name(), inputs, {c.out()});
  set_int(n, "axis", p.has_concat_dim() ? p.concat_dim() : p.axis());
}

}  // namespace

void convert_layer(const Layer& layer, const std::vector<Shape>& bottom_shapes, const Shape& top_shape, OnnxGraph& g) {
  Ctx c{layer, bottom_shapes, g, {}, {}};
  for (const auto& b : layer.param().bottom()) c.ins.push_back(g.value_of(b, layer.name()));
  for (const auto& t : layer.param().top()) c.outs.push_back(g.write(t));
  const std::string& type = layer.param().type();
  static const std::map<std::string, std::function<void(const Ctx&)>> kConverters = {
      {"Convolution", convolution}, {"InnerProduct", inner_product}, {"PReLU", prelu},
      {"ReLU", relu},               {"BN", bn},                      {"BatchNorm", batch_norm},
      {"Scale", scale},             {"Eltwise", eltwise},            {"Flatten", flatten},
      {"Dropout", identity},        {"Split", identity},             {"Normalize", normalize},
      {"Concat", concat}};
  if (type == "Pooling") return pooling(c, top_shape);
  const auto it = kConverters.find(type);
  if (it == kConverters.end())
    c.refuse("this layer type has no ONNX converter (exported: Convolution, InnerProduct, PReLU, ReLU, BN, "
             "BatchNorm, Scale, Pooling, Eltwise, Flatten, Dropout, Split, Normalize, Concat)");
  it->second(c);
}

}  // namespace coco
