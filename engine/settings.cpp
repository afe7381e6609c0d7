#include "engine/settings.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "engine/common.h"
#include "engine/loss_scale.h"

namespace coco {

namespace {

// One rule: the field it is about, whether the message passes, and the allowed
// range in words. `field` names the proto field whose value the message quotes.
template <class Msg>
struct Rule {
  const char* field;
  bool (*ok)(const Msg&);
  const char* allowed;
};

// The field's value as the config file would spell it ("(unset)" when absent; the
// first element of a repeated field that breaks the rule is found by the rule).
std::string value_text(const google::protobuf::Message& m, const char* field) {
  const auto* fd = m.GetDescriptor()->FindFieldByName(field);
  if (fd == nullptr) return "?";
  if (fd->is_repeated()) {
    const int n = m.GetReflection()->FieldSize(m, fd);
    std::string all;
    for (int i = 0; i < n && i < 8; ++i) {
      std::string v;
      google::protobuf::TextFormat::PrintFieldValueToString(m, fd, i, &v);
      all += (i ? ", " : "") + v;
    }
    return n == 0 ? "(none)" : "[" + all + (n > 8 ? ", ...]" : "]");
  }
  std::string v;
  google::protobuf::TextFormat::PrintFieldValueToString(m, fd, -1, &v);
  return fd->has_presence() && !m.GetReflection()->HasField(m, fd) ? v + " (the default)" : v;
}

template <class Msg, size_t N>
void check(const Msg& m, const Rule<Msg> (&rules)[N], const std::string& where) {
  for (const auto& r : rules)
    if (!r.ok(m)) COCO_THROW(where, ": ", r.field, " = ", value_text(m, r.field), " is not allowed: ", r.allowed);
}

bool finite(double x) { return std::isfinite(x); }

bool finite_in(double x, double lo, double hi) { return std::isfinite(x) && x >= lo && x <= hi; }

// ---- the solver ----

using Solver = proto::SolverParameter;

std::string policy_of(const Solver& p) { return p.has_lr_policy() ? p.lr_policy() : "fixed"; }

bool policy_uses_gamma(const Solver& p) {
  const std::string s = policy_of(p);
  return s == "step" || s == "multistep" || s == "exp" || s == "inv";
}

bool policy_uses_power(const Solver& p) {
  const std::string s = policy_of(p);
  return s == "poly" || s == "inv";
}

bool known_policy(const Solver& p) {
  static const char* kPolicies[] = {"fixed", "step", "multistep", "exp", "inv", "poly", "cosine"};
  return std::find(std::begin(kPolicies), std::end(kPolicies), policy_of(p)) != std::end(kPolicies);
}

bool stepvalues_increase(const Solver& p) {
  for (int i = 0; i < p.stepvalue_size(); ++i)
    if (p.stepvalue(i) <= 0 || (i > 0 && p.stepvalue(i) <= p.stepvalue(i - 1))) return false;
  return true;
}

bool test_iters_valid(const Solver& p) {
  return std::all_of(p.test_iter().begin(), p.test_iter().end(), [](int n) { return n >= 0; });
}

bool prefix_names_a_file(const Solver& p) {
  return !p.has_snapshot_prefix() || snapshot_prefix_names_files(p.snapshot_prefix());
}

const Rule<Solver> kSolverRules[] = {
    {"lr_policy", known_policy, "fixed, step, multistep, exp, inv, poly or cosine"},
    {"type", [](const Solver& p) { return p.type() == "SGD" && p.solver_type() == Solver::SGD; },
     "SGD (coco trains with SGD and momentum only)"},
    {"base_lr", [](const Solver& p) { return finite(p.base_lr()) && p.base_lr() > 0; }, "a finite number > 0"},
    {"gamma", [](const Solver& p) { return !policy_uses_gamma(p) || (finite(p.gamma()) && p.gamma() > 0); },
     "a finite number > 0 for lr_policy step, multistep, exp and inv (the rate is multiplied by it)"},
    {"power", [](const Solver& p) { return !policy_uses_power(p) || finite_in(p.power(), 0, 1e6); },
     "a finite number >= 0 for lr_policy poly and inv"},
    {"stepsize", [](const Solver& p) { return policy_of(p) != "step" || p.stepsize() > 0; },
     "an integer > 0 for lr_policy step"},
    {"stepvalue", stepvalues_increase, "positive and increasing"},
    {"max_iter", [](const Solver& p) { return p.max_iter() >= 0; }, "an integer >= 0"},
    {"max_iter", [](const Solver& p) {
       return !(policy_of(p) == "poly" || policy_of(p) == "cosine") || p.max_iter() > 0;
     }, "an integer > 0 for lr_policy poly and cosine (the schedule ends there)"},
    {"momentum", [](const Solver& p) { return finite_in(p.momentum(), 0, 0.999999); }, "in [0, 1)"},
    {"weight_decay", [](const Solver& p) { return finite_in(p.weight_decay(), 0, 1); },
     "in [0, 1] (a negative decay grows the weights)"},
    {"regularization_type", [](const Solver& p) { return p.regularization_type() == "L2" || p.regularization_type() == "L1"; },
     "L1 or L2"},
    {"clip_gradients", [](const Solver& p) { return finite(p.clip_gradients()); },
     "a finite number (<= 0: no clipping)"},
    {"iter_size", [](const Solver& p) { return p.iter_size() >= 1 && p.iter_size() <= 4096; },
     "an integer in [1, 4096]: the batches whose gradients are summed into one update"},
    {"warmup_iter", [](const Solver& p) { return p.warmup_iter() >= 0; }, "an integer >= 0"},
    {"warmup_start_factor", [](const Solver& p) { return finite_in(p.warmup_start_factor(), 0, 1); }, "in [0, 1]"},
    {"min_lr_factor", [](const Solver& p) { return finite_in(p.min_lr_factor(), 0, 1); }, "in [0, 1]"},
    {"display", [](const Solver& p) { return p.display() >= 0; }, "an integer >= 0 (0: no display lines)"},
    {"average_loss", [](const Solver& p) { return p.average_loss() >= 1; }, "an integer >= 1"},
    {"test_interval", [](const Solver& p) { return p.test_interval() >= 0; }, "an integer >= 0 (0: no test passes)"},
    {"test_iter", test_iters_valid, "integers >= 0"},
    {"test_iter", [](const Solver& p) { return p.test_iter_size() == 0 || p.has_test_data(); },
     "set only with test_data { ... } (there is nothing to test on)"},
    {"test_interval", [](const Solver& p) { return p.test_interval() == 0 || p.has_test_data(); },
     "0 without test_data { ... } (there is nothing to test on)"},
    {"val_interval", [](const Solver& p) { return p.val_interval() >= 0; },
     "an integer >= 0 (0: validate only after the last iteration)"},
    {"val_interval", [](const Solver& p) { return p.val_interval() == 0 || p.val_data_size() > 0; },
     "0 without val_data { source: \"bin:FILE\" } (there is nothing to validate on)"},
    {"val_folds", [](const Solver& p) { return p.val_folds() >= 2 && p.val_folds() <= 100; }, "an integer in [2, 100]"},
    {"snapshot", [](const Solver& p) { return p.snapshot() >= 0; }, "an integer >= 0 (0: only the final snapshot)"},
    {"loss_scale", [](const Solver& p) { return is_valid_loss_scale(p.loss_scale()); },
     "a power of two in [1, 2^64] (dividing it back out must be exact)"},
    {"loss_scale", [](const Solver& p) { return !p.has_loss_scale() || p.precision() == Solver::FP16; },
     "set only with precision: FP16 (FP32 and BF16 keep fp32's exponent range and need no scaling)"},
    {"loss_scale_window", [](const Solver& p) { return p.loss_scale_window() >= 1; },
     "an integer >= 1 (steps without an overflow before the scale doubles)"},
    {"loss_scale_window", [](const Solver& p) { return !p.has_loss_scale_window() || p.precision() == Solver::FP16; },
     "set only with precision: FP16"},
    {"snapshot_prefix", prefix_names_a_file,
     "a path whose last part names the files, e.g. \"snapshots/mnist\" (not empty, not ending in '/')"},
};

// ---- data sources ----

using Source = proto::DataSourceParameter;

const Rule<Source> kSourceRules[] = {
    {"source", [](const Source& p) { return !p.source().empty(); },
     "a source such as \"mnist:data/mnist\", \"rec:PREFIX\", \"list:FILE\" or \"synthetic:K\""},
    {"batch_size", [](const Source& p) { return p.batch_size() > 0 && p.batch_size() <= (1u << 24); },
     "an integer in [1, 16777216]"},
    {"batch_size_per_rank", [](const Source& p) {
       return !p.has_batch_size_per_rank() || (p.batch_size_per_rank() > 0 && p.batch_size_per_rank() <= (1u << 24));
     }, "an integer in [1, 16777216]"},
    {"batch_size_per_rank", [](const Source& p) { return !(p.has_batch_size_per_rank() && p.has_batch_size()); },
     "unset when batch_size is set (batch_size is the global batch over all ranks, "
     "batch_size_per_rank one rank's share: give one of them)"},
    {"scale", [](const Source& p) { return finite(p.scale()) && p.scale() != 0; }, "a finite number other than 0"},
    {"mean_value", [](const Source& p) {
       return std::all_of(p.mean_value().begin(), p.mean_value().end(), [](float v) { return finite(v); });
     }, "finite numbers"},
    {"threads", [](const Source& p) { return p.threads() <= 256; }, "an integer in [0, 256]"},
    {"prefetch", [](const Source& p) { return p.threads() == 0 || (p.prefetch() >= 1 && p.prefetch() <= 1024); },
     "an integer in [1, 1024] when threads > 0"},
    {"shuffle_block", [](const Source& p) { return p.shuffle_block() >= 1; }, "an integer >= 1"},
    {"synthetic_samples_per_identity", [](const Source& p) { return p.synthetic_samples_per_identity() >= 1; },
     "an integer >= 1"},
    {"synthetic_noise", [](const Source& p) { return finite_in(p.synthetic_noise(), 0, 1e6); },
     "a finite number >= 0"},
};

// ---- the CocoLoss head ----

using Coco = proto::CocoLossParameter;

// The logits cache is a count of bytes held in memory: a terabyte is far past any
// machine, and the bound keeps the chunk arithmetic in range.
constexpr double kMaxCacheMb = 1 << 20;

const Rule<Coco> kCocoRules[] = {
    {"num_output", [](const Coco& p) { return p.num_output() >= 2 && p.num_output() <= 2147483647u; },
     "the number of classes, in [2, 2147483647] (class ids are int32; each rank holds at most 16777216 of them)"},
    {"scale", [](const Coco& p) { return !p.has_scale() || (finite(p.scale()) && p.scale() > 0); },
     "a finite number > 0 (or leave it out and set auto_scale: true)"},
    {"target_probability", [](const Coco& p) {
       return finite(p.target_probability()) && p.target_probability() > 0 && p.target_probability() < 1;
     }, "in (0, 1)"},
    {"margin", [](const Coco& p) {
       return p.margin_type() != Coco::NONE ? finite(p.margin()) && p.margin() > 0 && p.margin() < M_PI / 2
                                            : p.margin() == 0;
     }, "in (0, pi/2) with margin_type COSFACE or ARCFACE, and 0 (or unset) with margin_type NONE"},
    {"chunk_size", [](const Coco& p) { return p.chunk_size() <= (1u << 24); },
     "an integer in [0, 16777216] (0: the whole shard in one chunk)"},
    {"logits_cache_mb", [](const Coco& p) { return finite_in(p.logits_cache_mb(), 0, kMaxCacheMb); },
     "a number of MiB in [0, 1048576] (0: recompute the logits in backward)"},
    {"sample_rate", [](const Coco& p) { return finite(p.sample_rate()) && p.sample_rate() > 0 && p.sample_rate() <= 1; },
     "in (0, 1]: the share of each rank's classes a training step computes (1: all)"},
};

}  // namespace

bool snapshot_prefix_names_files(const std::string& prefix) { return !prefix.empty() && prefix.back() != '/'; }

void validate_solver(const proto::SolverParameter& p, const std::string& origin) {
  check(p, kSolverRules, origin);
  if (p.has_train_data()) validate_data_source(p.train_data(), origin, "train_data");
  if (p.has_test_data()) validate_data_source(p.test_data(), origin, "test_data");
  for (const auto& v : p.val_data()) {
    validate_data_source(v, origin, "val_data");
    if (v.source().rfind("bin:", 0) != 0)
      COCO_THROW(origin, ": val_data: source = \"", v.source(), "\" is not allowed: a verification set, "
                 "bin:FILE (an insightface .bin such as lfw.bin)");
  }
}

void validate_data_source(const proto::DataSourceParameter& p, const std::string& origin, const std::string& field) {
  check(p, kSourceRules, origin + ": " + field);
}

void validate_coco_loss(const proto::CocoLossParameter& p, const std::string& where) {
  check(p, kCocoRules, where);
}

}  // namespace coco
