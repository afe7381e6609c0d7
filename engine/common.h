// Errors and checks shared by every part of coco.
//
// Why: every failure -- a bad config, a corrupt file, a failed CUDA/MPI call --
// becomes one typed exception, coco::Error, that carries where it happened. The
// executables in launch/ and tools/ catch it once at the top.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace coco {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace coco

// COCO_CHECK(cond, message parts...): throws coco::Error naming the source place.
#define COCO_CHECK(cond, ...)                                                           \
  do {                                                                                  \
    if (!(cond))                                                                        \
      ::coco::detail::throw_error(__FILE__, __LINE__,                                   \
                                  ::coco::detail::concat("check failed: " #cond ": ", \
                                                         __VA_ARGS__));                 \
  } while (0)

// COCO_THROW(message parts...): a user-facing error (bad input); no source place.
#define COCO_THROW(...) throw ::coco::Error(::coco::detail::concat(__VA_ARGS__))
