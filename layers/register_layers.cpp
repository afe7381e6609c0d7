// The one list of built-in layer types. A new layer adds its line here.
#include "engine/layer.h"
#include "layers/accuracy_layer.h"
#include "layers/batch_norm_layer.h"
#include "layers/bn_layer.h"
#include "layers/concat_layer.h"
#include "layers/convolution_layer.h"
#include "layers/dropout_layer.h"
#include "layers/eltwise_layer.h"
#include "layers/flatten_layer.h"
#include "layers/inner_product_layer.h"
#include "layers/prelu_layer.h"
#include "layers/scale_layer.h"
#include "layers/center_loss_layer.h"
#include "layers/center_projection_layer.h"
#include "layers/coco_loss_layer.h"
#include "layers/normalize_layer.h"
#include "layers/pooling_layer.h"
#include "layers/relu_layer.h"
#include "layers/softmax_loss_layer.h"
#include "layers/split_layer.h"

namespace coco {

void register_builtin_layers(LayerRegistry& r) {
  r.add("Accuracy", factory_of<AccuracyLayer>());
  r.add("BatchNorm", factory_of<BatchNormLayer>());
  r.add("BN", factory_of<BNLayer>());
  r.add("Concat", factory_of<ConcatLayer>());
  r.add("Convolution", factory_of<ConvolutionLayer>());
  r.add("Dropout", factory_of<DropoutLayer>());
  r.add("Eltwise", factory_of<EltwiseLayer>());
  r.add("Flatten", factory_of<FlattenLayer>());
  r.add("InnerProduct", factory_of<InnerProductLayer>());
  r.add("PReLU", factory_of<PReLULayer>());
  r.add("Pooling", factory_of<PoolingLayer>());
  r.add("Scale", factory_of<ScaleLayer>());
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
