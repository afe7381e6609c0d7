#include "engine/common.h"

namespace coco::detail {

void throw_error(const char* file, int line, const std::string& msg) {
  std::string f(file);
  auto pos = f.rfind('/');
  throw Error(msg + " (" + (pos == std::string::npos ? f : f.substr(pos + 1)) + ":" +
              std::to_string(line) + ")");
}

}  // namespace coco::detail
