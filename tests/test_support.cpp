#include "engine/config.h"
#include "tests/gradient_checker.h"

namespace coco::testing {

proto::LayerParameter layer_param(const std::string& text) {
  proto::LayerParameter p;
  parse_text(text, "<test>", &p);
  return p;
}

}  // namespace coco::testing
