// The one list of built-in layer types. A new layer adds its line here.
#include "engine/layer.h"
#include "layers/center_loss_layer.h"
#include "layers/center_projection_layer.h"
#include "layers/coco_loss_layer.h"
#include "layers/normalize_layer.h"
#include "layers/relu_layer.h"
#include "layers/softmax_loss_layer.h"
#include "layers/split_layer.h"

namespace coco {

void register_builtin_layers(LayerRegistry& r) {
  r.add("CenterLoss", factory_of<CenterLossLayer>());
  r.add("CenterProjection", factory_of<CenterProjectionLayer>());
  r.add("CocoLoss", factory_of<CocoLossLayer>());
  r.add("Input", factory_of<InputLayer>());
  r.add("Normalize", factory_of<NormalizeLayer>());
  r.add("ReLU", factory_of<ReLULayer>());
  r.add("SoftmaxWithLoss", factory_of<SoftmaxWithLossLayer>());
  r.add("Split", factory_of<SplitLayer>());
}

}  // namespace coco
