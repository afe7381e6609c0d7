// coco as a library: train a net from a solver prototxt for a few steps, then run
// the trained net on the held-out split and write each sample's embedding.
//
//   train_and_embed [CONFIG] [OUT]   (defaults: tiny_synthetic.prototxt, embeddings.tsv)
//
// OUT gets one line per sample: its label, then the embedding's values. Only the
// installed library's public API is used (engine/trainer.h, engine/net.h).
#include <cstdio>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"
#include "engine/config.h"
#include "engine/data/source.h"
#include "engine/logging.h"
#include "engine/net.h"
#include "engine/trainer.h"

int main(int argc, char** argv) try {
  const std::string config = argc > 1 ? argv[1] : "tiny_synthetic.prototxt";
  const std::string out = argc > 2 ? argv[2] : "embeddings.tsv";
  coco::init_logging(0, 1);
  coco::LocalCommunicator comm;  // one process; under mpirun pass an MpiCommunicator

  // 1. Train: the same loop as coco-train (solver, data, display), no snapshots.
  coco::TrainOptions opt;
  opt.config = config;
  opt.quiet = true;
  coco::Trainer trainer(opt, &comm);
  const coco::TrainResult r = trainer.run();
  std::printf("trained %lld iterations, loss %.4f\n", static_cast<long long>(r.iterations), r.last_loss);

  // 2. Embed: a test-phase net sharing the trained parameters, fed the test split.
  const coco::TrainConfig cfg = coco::load_train_config(config);
  // The run's seed: synthetic identities (and shuffles) are drawn from it.
  const uint64_t seed = static_cast<uint64_t>(cfg.solver.random_seed());
  const auto data = coco::open_data_source(cfg.solver.test_data(), "", seed, config);
  const int64_t n = data->size();
  coco::proto::NetParameter np = cfg.net;
  coco::set_input_batch(&np, n);
  coco::Net net(np, coco::Phase::kTest, &comm, seed, config);
  net.share_params_from(trainer.train_net());
  // The label input takes int32 class ids, as coco's sources write them.
  net.input_blobs()[1]->set_element_type(coco::ElementType::kInt32);
  data->fill_range(0, n, net.input_blobs()[0]->mutable_data(), net.input_blobs()[1]->mutable_data_int32());
  net.forward();

  const coco::Blob* emb = net.blob("embedding");
  const coco::Blob* label = net.blob("label");
  const int64_t dim = emb->count(1);
  std::ofstream f(out);
  for (int64_t i = 0; i < n; ++i) {
    f << label->cdata_int32()[i];
    for (int64_t j = 0; j < dim; ++j) f << '\t' << emb->cdata()[i * dim + j];
    f << '\n';
  }
  if (!f.flush()) throw std::runtime_error(out + ": cannot write");
  std::printf("test accuracy %.3f; wrote %lld x %lld embeddings to %s\n", net.blob("accuracy")->cdata()[0],
              static_cast<long long>(n), static_cast<long long>(dim), out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_and_embed: %s\n", e.what());
  return 1;
}
