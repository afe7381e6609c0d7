#include "engine/gpu_check.h"

#include <string>

#include "engine/common.h"

namespace coco {
namespace gpu {

void fail(const char* library, const char* error, const char* call, const char* file, int line) {
  detail::throw_error(file, line, std::string(library) + " error in " + call + ": " + (error ? error : "unknown error"));
}

}  // namespace gpu
}  // namespace coco
