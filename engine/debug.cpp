#include "engine/debug.h"

#include <cmath>
#include <random>
#include <sstream>

#include "engine/common.h"
#include "engine/device_memory.h"

namespace coco {

namespace {

float read_at(const Tensor& t, int64_t i) {
  float v = 0;
  device_copy(&v, Device::kCPU, t.data() + i, t.device(), sizeof(float));
  return v;
}

void write_at(Tensor& t, int64_t i, float v) { device_copy(t.data() + i, t.device(), &v, Device::kCPU, sizeof(float)); }

// The layer's loss weight on top 0 (1 unless the config says otherwise).
double loss_weight(const Layer& layer) {
  return layer.param().loss_weight_size() > 0 ? layer.param().loss_weight(0) : 1.0;
}

double objective(Layer& layer, const Blobs& bottom, const Blobs& top) {
  layer.reshape(bottom, top);
  layer.forward(bottom, top);
  double s = 0;
  for (float v : top[0]->data().to_vector()) s += v;
  return loss_weight(layer) * s;
}

}  // namespace

GradCheckResult check_loss_layer_gradient(Layer& layer, const Blobs& bottom, const Blobs& top,
                                          const std::vector<bool>& check_bottom, const GradCheckOptions& o) {
  GradCheckResult r;
  r.layer = layer.name() + " (" + layer.type() + ")";
  // What forward may change, kept to be put back.
  std::vector<Tensor> saved(layer.blobs().size());
  for (size_t k = 0; k < saved.size(); ++k) saved[k].copy_from(layer.blobs()[k]->data());
  auto restore = [&] {
    for (size_t k = 0; k < saved.size(); ++k) layer.blobs()[k]->data().copy_from(saved[k]);
  };

  // Analytic: one forward, top-0 diff = the loss weight (as the Net seeds it), one
  // backward (parameter diffs from zero).
  for (auto& b : layer.blobs()) b->diff().zero();
  const double j0 = objective(layer, bottom, top);
  for (size_t t = 0; t < top.size(); ++t) top[t]->diff().fill(t == 0 ? static_cast<float>(loss_weight(layer)) : 0.f);
  std::vector<bool> down(bottom.size(), false);
  for (size_t b = 0; b < bottom.size(); ++b) down[b] = b < check_bottom.size() && check_bottom[b];
  layer.backward(top, down, bottom);

  struct Target {
    Tensor* value;
    std::vector<float> analytic;
    std::string what;
  };
  std::vector<Target> targets;
  for (size_t b = 0; b < bottom.size(); ++b)
    if (down[b]) targets.push_back({&bottom[b]->data(), bottom[b]->diff().to_vector(), "bottom " + std::to_string(b)});
  for (size_t k = 0; k < layer.blobs().size(); ++k)
    if (layer.param_learnable(static_cast<int>(k)))
      targets.push_back({&layer.blobs()[k]->data(), layer.blobs()[k]->diff().to_vector(), "parameter " + std::to_string(k)});
  restore();

  std::mt19937_64 rng(o.seed);
  for (auto& t : targets) {
    const int64_t n = t.value->count();
    if (n == 0) continue;
    for (int s = 0; s < o.samples; ++s) {
      const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
      const float x = read_at(*t.value, i);
      const double h = o.step * std::max(1.0, std::fabs(static_cast<double>(x)));
      write_at(*t.value, i, static_cast<float>(x + h));
      const double jp = objective(layer, bottom, top);
      restore();
      write_at(*t.value, i, static_cast<float>(x - h));
      const double jm = objective(layer, bottom, top);
      restore();
      write_at(*t.value, i, x);
      const double numeric = (jp - jm) / (2 * h);
      const double analytic = t.analytic[i];
      // Rounding of the float32 objective bounds what the difference can resolve:
      // a few ulps of |J| over 2h; below that the entries are compared absolutely.
      const double floor = 8 * 1.2e-7 * std::max(1.0, std::fabs(j0)) / (2 * h);
      const double tol = o.rtol * std::max(std::fabs(analytic), std::fabs(numeric)) + floor;
      const double err = std::fabs(analytic - numeric) / tol;
      ++r.checked;
      if (!(err <= 1)) ++r.failed;
      if (!(err <= r.max_error)) {
        r.max_error = err;
        std::ostringstream w;
        w << t.what << " [" << i << "]: analytic " << analytic << ", numeric " << numeric;
        r.worst = w.str();
      }
    }
  }
  // Forward again with the restored parameters, so the tops are what they were.
  objective(layer, bottom, top);
  restore();
  return r;
}

std::vector<GradCheckResult> check_loss_gradients(Net& net, const GradCheckOptions& o) {
  // What the forward below may change: running statistics, and the loss layers'
  // parameters (the seed's RENORMALIZE rewrites centroid rows in forward).
  std::vector<std::pair<Blob*, Tensor>> saved;
  for (const auto& p : net.params()) {
    bool keep = !p.learnable;
    for (size_t i = 0; i < net.num_layers() && !keep; ++i)
      keep = net.layer(i).is_loss() && net.layer(i).name() == p.layer;
    if (!keep) continue;
    saved.emplace_back(p.blob.get(), Tensor());
    saved.back().second.copy_from(p.blob->data());
  }
  net.forward();
  std::vector<GradCheckResult> out;
  for (size_t i = 0; i < net.num_layers(); ++i) {
    Layer& l = net.layer(i);
    if (!l.is_loss() || !net.layer_needs_backward(i)) continue;
    std::vector<bool> check(net.bottoms(i).size(), false);
    for (size_t b = 0; b < check.size(); ++b) check[b] = l.can_backward_to(static_cast<int>(b));
    out.push_back(check_loss_layer_gradient(l, net.bottoms(i), net.tops(i), check, o));
  }
  for (auto& [blob, t] : saved) blob->data().copy_from(t);
  net.clear_param_diffs();
  return out;
}

}  // namespace coco
