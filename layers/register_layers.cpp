// The one list of built-in layer types. A new layer adds its line here.
#include "engine/layer.h"
#include "layers/coco_loss_layer.h"
#include "layers/relu_layer.h"

namespace coco {

void register_builtin_layers(LayerRegistry& r) {
  r.add("CocoLoss", factory_of<CocoLossLayer>());
  r.add("ReLU", factory_of<ReLULayer>());
}

}  // namespace coco
