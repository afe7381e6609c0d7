// The message of the coco::Error a piece of code throws, for tests that check what
// an error says (the file, the place, the fix).
#pragma once

#include <string>
#include <utility>

#include "engine/common.h"

namespace coco::testing {

// What `f` throws as a coco::Error, or kNoError when it returns normally (any other
// exception propagates and fails the test).
inline const std::string kNoError = "(no error)";

template <typename F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const Error& e) {
    return e.what();
  }
  return kNoError;
}

}  // namespace coco::testing
