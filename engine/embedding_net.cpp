// The embedding blob of a net and the layers that compute it; see embedding_net.h.
#include "engine/embedding_net.h"

#include <algorithm>
#include <set>

#include "engine/common.h"
#include "engine/proto/coco.pb.h"

namespace coco {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Index of the last layer before `before` that writes `blob`, or -1 (an input).
int producer(const proto::NetParameter& net, const std::string& blob, int before) {
  for (int i = before - 1; i >= 0; --i)
    for (const auto& t : net.layer(i).top())
      if (t == blob) return i;
  return -1;
}

}  // namespace

std::string default_embedding_blob(const proto::NetParameter& net, const std::string& origin, std::string* rule) {
  int loss = -1;
  for (int i = 0; i < net.layer_size() && loss < 0; ++i)
    if (ends_with(net.layer(i).type(), "Loss") && net.layer(i).bottom_size() > 0) loss = i;
  if (loss < 0)
    COCO_THROW(origin, ": the net has no loss layer, so there is no default embedding blob; name one with --blob");
  const auto& l = net.layer(loss);
  std::string blob = l.bottom(0);
  std::string why = "input of " + l.type() + " '" + l.name() + "' is '" + blob + "'";
  int at = loss;
  if (l.type() == "SoftmaxWithLoss") {  // it takes logits: step over the classifier that wrote them
    const int p = producer(net, blob, at);
    if (p >= 0 && (net.layer(p).type() == "InnerProduct" || net.layer(p).type() == "CenterProjection") &&
        net.layer(p).bottom_size() > 0) {
      blob = net.layer(p).bottom(0);
      at = p;
      why += "; classifier " + net.layer(p).type() + " '" + net.layer(p).name() + "' reads '" + blob + "'";
    }
  }
  for (int p = producer(net, blob, at); p >= 0 && net.layer(p).type() == "Normalize" && net.layer(p).bottom_size() > 0;
       p = producer(net, blob, at)) {
    blob = net.layer(p).bottom(0);
    at = p;
    why += "; Normalize '" + net.layer(p).name() + "' reads '" + blob + "'";
  }
  if (rule) *rule = why;
  return blob;
}

EmbeddingChoice choose_embedding_blob(const proto::NetParameter& net, const std::string& requested,
                                      const std::string& origin) {
  if (!requested.empty()) return {requested, "--blob"};
  EmbeddingChoice c;
  c.blob = default_embedding_blob(net, origin, &c.rule);
  c.rule = "default: " + c.rule;
  return c;
}

proto::NetParameter prune_to_blob(const proto::NetParameter& net, const std::string& blob, const std::string& origin) {
  bool known = false;
  for (const auto& in : net.input()) known |= in == blob;
  for (const auto& l : net.layer())
    for (const auto& t : l.top()) known |= t == blob;
  if (!known) COCO_THROW(origin, ": no blob named '", blob, "' in the test-phase net");

  // Walk back from the last layer: a layer is needed when it writes a needed blob.
  std::set<std::string> needed{blob};
  std::vector<bool> keep(net.layer_size(), false);
  for (int i = net.layer_size() - 1; i >= 0; --i) {
    const auto& l = net.layer(i);
    bool writes = l.type() == "Input";
    for (const auto& t : l.top()) writes |= needed.count(t) != 0;
    if (!writes) continue;
    keep[i] = true;
    for (const auto& b : l.bottom()) needed.insert(b);
  }
  proto::NetParameter out = net;
  out.clear_layer();
  for (int i = 0; i < net.layer_size(); ++i)
    if (keep[i]) *out.add_layer() = net.layer(i);
  return out;
}

void mirror_rows(float* x, int64_t count, int64_t width) {
  for (int64_t r = 0; r + width <= count; r += width) std::reverse(x + r, x + r + width);
}

}  // namespace coco
