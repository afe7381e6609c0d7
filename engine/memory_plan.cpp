#include "engine/memory_plan.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "comm/communicator.h"
#include "engine/common.h"
#include "engine/config.h"
#include "engine/net.h"
#include "layers/class_sampler.h"
#include "layers/coco_head.h"
#include "layers/coco_head_plan.h"

namespace coco {

namespace {

constexpr int64_t kFloat = 4;

// This process's resident memory (Linux /proc/self/statm), in bytes; 0 elsewhere.
int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

// The training net's layers with every CocoLoss head at two classes and a plain
// scale (what follows from the head is planned from its formulas); the real heads
// are returned, in net order (a head the train phase leaves out is not one).
proto::NetParameter with_small_heads(const proto::NetParameter& net, std::vector<proto::LayerParameter>* heads) {
  proto::NetParameter small = layers_for_phase(net, Phase::kTrain);
  for (auto& l : *small.mutable_layer()) {
    if (l.type() != "CocoLoss") continue;
    heads->push_back(l);
    auto* p = l.mutable_coco_loss_param();
    p->set_num_output(2);
    p->set_sample_rate(1);
    if (p->logit_type() == proto::CocoLossParameter::COSINE) {
      p->set_auto_scale(false);
      p->set_scale(1);
    }
  }
  return small;
}

struct BuiltNet {
  int64_t tensors = 0;         // every CPU tensor the net holds after a pass
  int64_t param_tensors = 0;   // of which its parameters' data and diffs
  int64_t replicated = 0;      // learnable replicated parameter values
  int64_t replicated_all = 0;  // all replicated parameter values (state too)
  std::vector<int64_t> head_D;  // each head's feature size, in net order
};

// The small-head net at `batch` samples, after one forward and backward (buffers a
// layer makes on its first pass count too). Zero inputs: label 0 is a class.
BuiltNet build_and_count(const proto::NetParameter& small, const std::string& origin, int64_t batch, uint64_t seed,
                         Net::DescribeAs* as = nullptr, std::string* table = nullptr) {
  proto::NetParameter p = small;
  set_input_batch(&p, batch);
  LocalCommunicator comm;
  const int64_t before = live_host_tensor_bytes();
  BuiltNet out;
  {
    Net net(p, Phase::kTrain, &comm, seed, origin);
    net.set_global_batch(batch);
    net.forward_backward();
    out.tensors = live_host_tensor_bytes() - before;
    for (const ParamInfo& info : net.params()) {
      out.param_tensors += info.blob->count() * kFloat * (info.blob->has_diff() ? 2 : 1);
      if (info.sharded) continue;
      out.replicated_all += info.blob->count();
      if (info.learnable) out.replicated += info.blob->count();
    }
    for (size_t i = 0; i < net.num_layers(); ++i)
      if (std::string(net.layer(i).type()) == "CocoLoss") out.head_D.push_back(net.layer(i).blobs()[0]->count(1));
    if (table) *table = net.describe(*as);
  }
  return out;
}

// One head on rank 0: the buffers layers/coco_head.cpp sizes, at its plan.
HeadMemoryPlan plan_head(const proto::LayerParameter& l, int64_t D, int ranks, int64_t global_batch) {
  const auto& p = l.coco_loss_param();
  HeadMemoryPlan h;
  h.layer = l.name();
  h.K = p.num_output();
  h.D = D;
  check_shard_fits(h.K, ranks, "layer '" + l.name() + "' (CocoLoss): ");
  h.Kr = shard_range(h.K, 0, ranks).count;
  const std::vector<int64_t> counts = shard_counts(global_batch, ranks);
  const int64_t M = global_batch, Ml = counts[0];
  h.sampled = p.sample_rate() < 1;
  // A sampled step keeps ceil(rate K_r) classes, or every positive if more: at most
  // min(M, K_r) of them.
  h.computed = h.sampled ? sampled_class_count(h.Kr, p.sample_rate(), std::min(M, h.Kr)) : h.Kr;
  const bool cosine = p.logit_type() == proto::CocoLossParameter::COSINE;
  const bool exact = cosine && p.centroid_update() == proto::CocoLossParameter::EXACT;
  h.fixed_shift = cosine && p.softmax_shift() == proto::CocoLossParameter::AUTO;
  const CocoHeadPlan plan =
      plan_coco_head(counts, 0, D, ShardRange{0, h.computed}, p.chunk_size(), p.logits_cache_mb(), true);
  h.centroids = h.Kr * D * kFloat;
  h.momentum = h.Kr * D * kFloat;
  // Sampled: the rows' copy, which the backward turns into their gradient.
  h.gradient = h.computed * D * kFloat;
  h.logits_cache = plan.logits_floats() * kFloat;
  // f and its gradient (M x D), this rank's dx (Ml x D), the chunk's centroid
  // gradient (t x D; unit rows too with the running maximum), the norms, and the
  // M-long row statistics and labels (ids and shard columns).
  const bool unit_rows = exact && !h.fixed_shift;
  h.scratch = (2 * M * D + Ml * D + Ml + (unit_rows ? 2 : 1) * plan.t_max * D + h.computed + 11 * M) * kFloat;
  // The sampled rows' indices and the renumbered labels.
  h.sampling = h.sampled ? (3 * h.computed + 3 * M) * kFloat : 0;
  h.all_gather = (M * D + M) * kFloat;
  const bool accuracy = l.top_size() > 1;
  h.all_reduce = ((h.fixed_shift ? 2 : 3) * M + (accuracy ? 2 * M : 0)) * kFloat;
  h.reduce_scatter = M * D * kFloat;
  return h;
}

std::string mib(int64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%12.1f", static_cast<double>(bytes) / (1 << 20));
  return s;
}

}  // namespace

int64_t peak_resident_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // kilobytes on Linux
}

int64_t MemoryPlan::bytes() const {
  int64_t b = params + grads + momentum + activations + process;
  for (const auto& h : heads) b += h.bytes();
  return b;
}

MemoryPlan plan_memory(const proto::NetParameter& net, const std::string& origin, int ranks, int64_t global_batch,
                       uint64_t seed) {
  COCO_CHECK(ranks >= 1 && global_batch >= ranks, origin, ": a plan needs a global batch (", global_batch,
             ") of at least one sample per rank (", ranks, " ranks)");
  MemoryPlan plan;
  plan.process = resident_bytes();
  plan.ranks = ranks;
  plan.global_batch = global_batch;
  plan.batch = shard_counts(global_batch, ranks)[0];
  std::vector<proto::LayerParameter> heads;
  const proto::NetParameter small = with_small_heads(net, &heads);
  // Built at 1 and 3 samples: the growth per sample, and a layer table whose batch
  // axis (3, unlike any other size of these nets' first axes) is shown at the real one.
  const BuiltNet one = build_and_count(small, origin, 1, seed);
  COCO_CHECK(one.head_D.size() == heads.size(), origin, ": the plan found ", heads.size(), " CocoLoss heads, the net built ",
             one.head_D.size());
  for (size_t i = 0; i < heads.size(); ++i) plan.heads.push_back(plan_head(heads[i], one.head_D[i], ranks, global_batch));
  Net::DescribeAs as;
  as.built_batch = 3;
  as.shown_batch = plan.batch;
  for (const auto& h : plan.heads) as.param_counts[h.layer] = h.Kr * h.D;
  const BuiltNet three = build_and_count(small, origin, 3, seed, &as, &plan.layers);
  const int64_t act_one = one.tensors - one.param_tensors, act_three = three.tensors - three.param_tensors;
  plan.activations = act_one + (act_three - act_one) * (plan.batch - 1) / 2;
  plan.params = one.replicated_all * kFloat;
  plan.grads = one.replicated_all * kFloat;
  plan.momentum = one.replicated * kFloat;
  plan.gradient_all_reduce = one.replicated * kFloat;
  return plan;
}

std::string describe_memory_plan(const MemoryPlan& p) {
  std::ostringstream os;
  os << "memory plan, rank 0 of " << p.ranks << " (" << p.batch << " of a global batch of " << p.global_batch
     << "), MiB:\n";
  os << "  replicated parameters     " << mib(p.params) << "\n";
  os << "  their gradients           " << mib(p.grads) << "\n";
  os << "  their momentum            " << mib(p.momentum) << "\n";
  os << "  activations at batch " << std::left;
  os.width(5);
  os << p.batch << std::right << mib(p.activations) << "   (blobs' data and diffs, layer buffers)\n";
  for (const auto& h : p.heads) {
    os << "  head '" << h.layer << "': " << h.K << " classes, this rank's " << h.Kr << " x " << h.D;
    if (h.sampled) os << ", at most " << h.computed << " computed a step (sample_rate)";
    os << "\n";
    os << "    centroids               " << mib(h.centroids) << "\n";
    os << "    centroid gradient       " << mib(h.gradient)
       << (h.sampled ? "   (the sampled rows' copy, which becomes their gradient)" : "") << "\n";
    os << "    centroid momentum       " << mib(h.momentum) << "\n";
    os << "    logits cache            " << mib(h.logits_cache) << "\n";
    os << "    scratch                 " << mib(h.scratch) << "\n";
    if (h.sampled) os << "    sampling buffers        " << mib(h.sampling) << "\n";
  }
  os << "  this program before a net " << mib(p.process) << "\n";
  os << "  total                     " << mib(p.bytes()) << "\n";
  // One rank: every collective is the identity and moves nothing.
  const auto moved = [&](int64_t b) { return std::to_string(p.ranks > 1 ? b : 0); };
  os << "bytes per step through each collective on this rank:\n";
  os << "  gradient all-reduce: " << moved(p.gradient_all_reduce) << " (the replicated gradients)\n";
  for (const auto& h : p.heads)
    os << "  head '" << h.layer << "': all-gather " << moved(h.all_gather) << ", all-reduce " << moved(h.all_reduce)
       << ", reduce-scatter " << moved(h.reduce_scatter) << "\n";
  return os.str();
}

}  // namespace coco
