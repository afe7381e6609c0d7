// libFuzzer target: the Caffe .caffemodel loader (load_weights in
// engine/checkpoint.cpp: a binary NetParameter, matched to the net by layer name;
// shapes as BlobShape or Caffe's legacy num/channels/height/width, values as float
// or double).
//
// Input: the file's bytes. It is loaded into fuzz_net.h's net (layers of the file
// that the net lacks are ignored, as Caffe does).
#include "engine/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/fuzz/fuzz_net.h"

namespace {
coco::fuzz::FuzzNet* g_net = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  coco::fuzz::init_quiet();
  g_net = new coco::fuzz::FuzzNet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace coco;
  const auto path = fuzz::scratch_dir() / "w.caffemodel";
  fuzz::write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  fuzz::expect_clean([&] { load_weights(*g_net->net, path.string()); });
  return 0;
}
