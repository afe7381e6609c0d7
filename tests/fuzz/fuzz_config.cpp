// libFuzzer target: a config file as coco-train reads it (engine/config.*).
//
// The input is written as a .prototxt and read with load_train_config (the solver /
// net detection, the parser and its file:line:column errors). A solver goes through
// validate_solver; the net is prepared for both phases (include/exclude rules,
// legacy inputs) and, when it is small, built, described and run forward (and
// backward) once on zero inputs, then stepped once by the solver at a few points of
// its schedule: bad layer parameters (a zero stride, a kernel larger than the input,
// an axis out of range, mismatched bottoms) must be clear errors.
//
// "Small" bounds the work, not the validity: at most kMaxRepeated entries in any
// repeated field (layers, bottoms, dims), shape dimensions at most kMaxDim and every
// other integer at most kMaxInt (the batch is set to 2). A net that declares a
// 10^9-wide layer legitimately asks for that memory; the fuzzer is after wrong
// handling of values, which small ones reach as well.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "comm/communicator.h"
#include "engine/config.h"
#include "engine/net.h"
#include "engine/proto/coco.pb.h"
#include "engine/solver.h"
#include "engine/trainer.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr int64_t kMaxInt = 8, kMaxDim = 32;
constexpr int kMaxRepeated = 16;

bool small(const Message& m) {
  const auto* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const auto* f : fields) {
    const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
    if (n > kMaxRepeated) return false;
    const int64_t limit = f->name() == "dim" || f->name() == "input_dim" ? kMaxDim : kMaxInt;
    for (int i = 0; i < n; ++i) {
      int64_t v = 0;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          v = f->is_repeated() ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          v = f->is_repeated() ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f);
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          v = f->is_repeated() ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f);
          break;
        case FieldDescriptor::CPPTYPE_UINT64: {
          const uint64_t u = f->is_repeated() ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f);
          if (u > static_cast<uint64_t>(limit)) return false;
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (!small(f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f))) return false;
          break;
        default:
          break;
      }
      if (v > limit) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  const std::string path = (fuzz::scratch_dir() / "solver.prototxt").string();
  fuzz::write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  TrainConfig cfg;
  if (!fuzz::expect_clean([&] { cfg = load_train_config(path); })) return 0;
  const bool solver_ok = !cfg.net_only && fuzz::expect_clean([&] { validate_solver(cfg.solver, path); });
  for (Phase phase : {Phase::kTrain, Phase::kTest}) {
    proto::NetParameter prepared;
    if (!fuzz::expect_clean([&] { prepared = prepare_net(cfg.net, phase, cfg.net_origin); })) continue;
    if (!small(cfg.net)) continue;
    fuzz::expect_clean([&] {
      proto::NetParameter p = cfg.net;
      set_input_batch(&p, 2);
      LocalCommunicator comm;
      Net net(p, phase, &comm, 1, cfg.net_origin);
      (void)net.describe();
      if (phase == Phase::kTest) {
        net.forward();
        return;
      }
      net.forward_backward();
      if (solver_ok) {
        SgdSolver solver(cfg.solver, &net);
        for (int64_t it : {0, 1, 7, 1000}) (void)solver.learning_rate(it);
        solver.apply_update(0);
      }
    });
  }
  return 0;
}
