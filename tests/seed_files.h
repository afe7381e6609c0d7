// The seed's released files (sciencefans/coco_loss: its prototxts, solvers and three
// MNIST caffemodels) are an input from outside the repository. The setting
// COCO_SEED_DIR names a checkout of it: the environment variable when the tests run,
// else the CMake cache value of the same name. Tests that read those files skip with
// one line saying how to enable them while it is unset, and fail while it is set to a
// folder that does not hold them.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace coco::testing {

struct SeedFiles {
  std::string dir;      // the checkout; empty when the setting is unset or wrong
  std::string problem;  // why a set COCO_SEED_DIR is not a checkout; empty when fine
};

SeedFiles find_seed_files();

extern const char* const kSeedSkipLine;

}  // namespace coco::testing

// Declares `const std::string var` holding the seed checkout, or ends the test: skipped
// while COCO_SEED_DIR is unset, failed while it is set wrong.
#define COCO_SEED_DIR_OR_SKIP(var)                                          \
  const ::coco::testing::SeedFiles var##_found = ::coco::testing::find_seed_files(); \
  if (!var##_found.problem.empty()) FAIL() << var##_found.problem;          \
  if (var##_found.dir.empty()) GTEST_SKIP() << ::coco::testing::kSeedSkipLine; \
  const std::string var = var##_found.dir
