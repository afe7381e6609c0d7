#include "engine/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "engine/common.h"
#include "engine/layer.h"

namespace coco {

namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string origin) : origin_(std::move(origin)) {}
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty())
      first_ = origin_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string origin_;
  std::string first_;
};

std::string dir_of(const std::string& path) {
  auto p = path.rfind('/');
  return p == std::string::npos ? std::string() : path.substr(0, p + 1);
}

bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

// Asked of the layer the registry builds for `l`, not of its type name.
bool is_input_layer(const proto::LayerParameter& l) {
  const LayerRegistry& registry = layer_registry();
  return registry.has(l.type()) && registry.create(l)->is_input();
}

}  // namespace

std::string read_file(const std::string& path) {
  // A folder or a device (/dev/zero, /dev/random) never ends or is not a file: refuse
  // it before reading. Regular files and pipes (e.g. /dev/stdin) are read.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!ec && (st.type() == std::filesystem::file_type::directory || st.type() == std::filesystem::file_type::character ||
              st.type() == std::filesystem::file_type::block))
    COCO_THROW(path, ": not a file (", st.type() == std::filesystem::file_type::directory ? "a folder" : "a device", ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) COCO_THROW(path, ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) COCO_THROW(path, ": read error");
  return ss.str();
}

void parse_text(const std::string& text, const std::string& origin, google::protobuf::Message* msg) {
  Collector errors(origin);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, msg)) {
    COCO_THROW(errors.first().empty() ? origin + ": cannot parse as " + msg->GetTypeName()
                                      : errors.first());
  }
}

void read_text_file(const std::string& path, google::protobuf::Message* msg) {
  parse_text(read_file(path), path, msg);
}

std::string to_text(const google::protobuf::Message& msg) {
  std::string s;
  google::protobuf::TextFormat::PrintToString(msg, &s);
  return s;
}

void set_input_batch(proto::NetParameter* net, int64_t batch) {
  if (net->input_dim_size() > 0)
    for (int i = 0; i * 4 < net->input_dim_size(); ++i) net->set_input_dim(4 * i, static_cast<int>(batch));
  for (auto& s : *net->mutable_input_shape())
    if (s.dim_size() > 0) s.set_dim(0, batch);
  for (auto& l : *net->mutable_layer())
    if (is_input_layer(l))
      for (auto& s : *l.mutable_input_param()->mutable_shape())
        if (s.dim_size() > 0) s.set_dim(0, batch);
}

TrainConfig load_train_config(const std::string& path) {
  TrainConfig cfg;
  cfg.path = path;
  const std::string text = read_file(path);
  // A net file has top-level `layer {` or `input:`; a solver file has neither.
  static const std::regex net_marker(R"((^|\n)\s*(layer\s*\{|input\s*:|input_dim\s*:))");
  if (std::regex_search(text, net_marker) && text.find("net_param") == std::string::npos) {
    parse_text(text, path, &cfg.net);
    cfg.net_only = true;
    cfg.net_origin = path;
    return cfg;
  }
  parse_text(text, path, &cfg.solver);
  const auto& s = cfg.solver;
  int sources = s.has_net() + s.has_net_param() + s.has_train_net() + s.has_train_net_param();
  if (sources == 0) COCO_THROW(path, ": the solver names no net (set `net:` or `net_param { ... }`)");
  if (sources > 1) COCO_THROW(path, ": the solver names more than one net (net, net_param, train_net, train_net_param)");
  if (s.has_net_param() || s.has_train_net_param()) {
    cfg.net = s.has_net_param() ? s.net_param() : s.train_net_param();
    cfg.net_origin = path + " (net_param)";
  } else {
    const std::string& name = s.has_net() ? s.net() : s.train_net();
    std::string resolved = name;
    if (!name.empty() && name[0] != '/' && file_exists(dir_of(path) + name)) resolved = dir_of(path) + name;
    if (!file_exists(resolved)) COCO_THROW(path, ": net file '", name, "' not found (looked beside the solver and in the working directory)");
    read_text_file(resolved, &cfg.net);
    cfg.net_origin = resolved;
  }
  return cfg;
}

}  // namespace coco
