// Validation while training on face verification sets (insightface's lfw.bin,
// cfp_fp.bin, agedb_30.bin, ...): what arcface_torch users watch during a run.
//
// Each set is embedded by a test-phase copy of the net pruned to the embedding blob
// (engine/embedding_net.h: coco-export's layers), sharing the training net's
// parameters and running statistics, so the head never runs. Every image and its
// horizontal mirror are embedded; their sum is scored with insightface's protocol
// (engine/face_verification.h), and XNorm is the mean L2 norm of the raw
// embeddings of both.
//
// Under mpirun the ranks share the work by whole batches (batch k goes to rank
// k mod ranks), so every image is embedded in the same batch as one process embeds
// it, and the rows are gathered in order; every rank then scores the same numbers
// and so agrees on the best checkpoint. The embedding net has no collective
// layers, so ranks may run different numbers of batches.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/data/source.h"
#include "engine/net.h"
#include "engine/proto_fwd.h"

namespace coco {

struct ValidationScore {
  std::string set;   // the file's stem: "lfw" for bin:.../lfw.bin
  int64_t pairs = 0;
  double accuracy = 0, std = 0, xnorm = 0;
};

class Validator {
 public:
  // solver: its val_data, val_folds and val_blob; net: the solver's net (all phases).
  Validator(const proto::SolverParameter& solver, const proto::NetParameter& net, const std::string& origin,
            const std::string& data_root, const Net& train_net, Communicator* comm, Communicator* host_comm,
            uint64_t seed);
  ~Validator();
  void to_device(Device dev) { net_->to_device(dev); }
  // Every rank calls it; every rank gets the same scores.
  std::vector<ValidationScore> run();

 private:
  struct Set;
  ValidationScore score(const Set& set);
  // The flip-summed embeddings and raw norms of `n` images from `start`.
  void embed(const Set& set, int64_t start, int64_t n, std::vector<float>* sums, std::vector<float>* norms);
  // Rows of all ranks' batches, in dataset order (`width` floats per image).
  std::vector<float> gather_in_order(const std::vector<float>& mine, int64_t images, int64_t batch, int64_t width);

  Communicator* host_comm_;
  std::string blob_;
  int folds_;
  std::unique_ptr<Net> net_;
  std::vector<Set> sets_;
  Blob host_data_;
  std::vector<float> flipped_;
};

// "bin:data/faces_emore/lfw.bin" -> "lfw".
std::string validation_set_name(const std::string& source);

}  // namespace coco
