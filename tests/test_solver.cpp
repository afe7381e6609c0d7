// Learning-rate policies against their formulas, and the SGD update rule against a
// hand computation.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/common.h"
#include "engine/config.h"
#include "engine/solver.h"
#include "tests/gradient_checker.h"

namespace coco {
namespace {

proto::SolverParameter solver(const std::string& text) {
  proto::SolverParameter p;
  parse_text(text, "<solver>", &p);
  return p;
}

// A net with one learnable blob: an inner product's weight (3 x 2).
proto::NetParameter tiny_net() {
  proto::NetParameter n;
  parse_text(R"(
    input: "x" input_shape { dim: 4 dim: 2 }
    input: "y" input_shape { dim: 4 }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "z"
            param { lr_mult: 2 decay_mult: 0.5 }
            inner_product_param { num_output: 3 bias_term: false weight_filler { type: "gaussian" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "z" bottom: "y" top: "loss" })",
             "<net>", &n);
  return n;
}

TEST(Solver, LearningRatePolicies) {
  LocalCommunicator comm;
  Net net(tiny_net(), Phase::kTrain, &comm, 1);
  auto lr = [&](const std::string& text, int64_t it) { return SgdSolver(solver(text), &net).learning_rate(it); };
  EXPECT_DOUBLE_EQ(lr("base_lr: 0.5 lr_policy: \"fixed\"", 1234), 0.5);
  EXPECT_NEAR(lr("base_lr: 1 lr_policy: \"step\" gamma: 0.1 stepsize: 10", 25), 0.01, 1e-6);
  const std::string ms = "base_lr: 1 lr_policy: \"multistep\" gamma: 0.5 stepvalue: 10 stepvalue: 20";
  EXPECT_DOUBLE_EQ(lr(ms, 9), 1.0);
  EXPECT_DOUBLE_EQ(lr(ms, 10), 0.5);
  EXPECT_DOUBLE_EQ(lr(ms, 20), 0.25);
  EXPECT_NEAR(lr("base_lr: 2 lr_policy: \"poly\" power: 2 max_iter: 100", 50), 2 * 0.25, 1e-6);
  EXPECT_NEAR(lr("base_lr: 2 lr_policy: \"cosine\" max_iter: 100", 25), 2 * 0.5 * (1 + std::cos(M_PI / 4)), 1e-6);
  EXPECT_NEAR(lr("base_lr: 2 lr_policy: \"cosine\" max_iter: 100 min_lr_factor: 0.1", 100), 0.2, 1e-6);
  EXPECT_NEAR(lr("base_lr: 1 lr_policy: \"exp\" gamma: 0.9", 3), 0.729, 1e-6);
  EXPECT_NEAR(lr("base_lr: 1 lr_policy: \"inv\" gamma: 0.1 power: 0.5", 10), 1 / std::sqrt(2.0), 1e-6);
  // Linear warm-up from 0.1 * lr over 10 iterations, then the policy.
  const std::string wu = "base_lr: 1 lr_policy: \"fixed\" warmup_iter: 10 warmup_start_factor: 0.1";
  EXPECT_NEAR(lr(wu, 0), 0.1, 1e-6);
  EXPECT_NEAR(lr(wu, 5), 0.55, 1e-6);
  EXPECT_NEAR(lr(wu, 10), 1.0, 1e-6);
}

TEST(Solver, ValidationNamesTheProblem) {
  EXPECT_THROW(validate_solver(solver("base_lr: 0.1 lr_policy: \"triangle\""), "s"), Error);
  EXPECT_THROW(validate_solver(solver("base_lr: 0.1 lr_policy: \"step\""), "s"), Error);
  EXPECT_THROW(validate_solver(solver("base_lr: 0.1 lr_policy: \"cosine\""), "s"), Error);
  EXPECT_THROW(validate_solver(solver("lr_policy: \"fixed\""), "s"), Error);
  EXPECT_THROW(validate_solver(solver("base_lr: 0.1 type: \"Adam\""), "s"), Error);
  EXPECT_NO_THROW(validate_solver(solver("base_lr: 0.1 lr_policy: \"cosine\" max_iter: 10"), "s"));
}

TEST(Solver, MomentumAndWeightDecayFollowCaffe) {
  LocalCommunicator comm;
  Net net(tiny_net(), Phase::kTrain, &comm, 1);
  SgdSolver s(solver("base_lr: 0.1 lr_policy: \"fixed\" momentum: 0.9 weight_decay: 0.01"), &net);
  Blob& w = *net.params()[0].blob;
  ASSERT_EQ(w.count(), 6);
  std::vector<double> ww(6), v(6, 0.0);
  for (int i = 0; i < 6; ++i) ww[i] = w.cdata()[i];
  for (int step = 0; step < 3; ++step) {
    for (int i = 0; i < 6; ++i) w.mutable_diff()[i] = 0.1f * (i + 1) - 0.3f * step;
    // v = m v + lr * lr_mult * (g + wd * decay_mult * w); w -= v (lr_mult 2, decay_mult 0.5)
    for (int i = 0; i < 6; ++i) {
      const double g = 0.1f * (i + 1) - 0.3f * step;
      v[i] = 0.9 * v[i] + 0.1 * 2 * (g + 0.01 * 0.5 * ww[i]);
      ww[i] -= v[i];
    }
    s.apply_update(step);
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(w.cdata()[i], ww[i], 1e-6) << "step " << step << " element " << i;
  }
}

TEST(Solver, StateRoundTrip) {
  LocalCommunicator comm;
  Net net(tiny_net(), Phase::kTrain, &comm, 1);
  const auto sp = solver("base_lr: 0.1 lr_policy: \"fixed\" momentum: 0.9");
  SgdSolver a(sp, &net);
  for (int i = 0; i < 6; ++i) net.params()[0].blob->mutable_diff()[i] = 0.5f * i;
  a.apply_update(0);
  proto::SolverState st;
  a.save_state(&st);
  ASSERT_EQ(st.history_size(), 1);
  EXPECT_NEAR(st.history(0).data(3), 0.1 * 2 * 0.5 * 3, 1e-6);  // lr * lr_mult * g
  SgdSolver b(sp, &net);
  b.restore_state(st, "state");
  proto::SolverState st2;
  b.save_state(&st2);
  EXPECT_EQ(st.SerializeAsString(), st2.SerializeAsString());
  st.mutable_history(0)->mutable_data()->RemoveLast();
  EXPECT_THROW(b.restore_state(st, "state"), Error);
}

}  // namespace
}  // namespace coco
