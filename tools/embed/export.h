// Checkpoint -> embeddings: the library behind coco-export.
//
// Why this shape: the export runs a *pruned* copy of the test-phase net -- only
// the layers that write the chosen blob or something it depends on (in-place
// writers included) -- so a face net's 87,020-class head never runs and labels
// are not needed. Which samples a process exports is an argument (rank, size):
// rank r takes the contiguous slice [begin_r, end_r) of the dataset, split as
// docs/DESIGN.md, "Sharding", splits classes (the first N mod size ranks get one more), so that
// joining the slices in rank order gives dataset order. coco-export gathers the
// slices over MPI and joins them with join_slices().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/embedding_net.h"
#include "engine/proto_fwd.h"
#include "engine/tensor.h"

namespace coco {

enum class Normalization { kNone, kL2 };  // kL2: each row divided by its Euclidean norm
enum class FlipSum { kOff, kOn };         // kOn: embedding(x) + embedding(horizontally flipped x)

struct ExportOptions {
  std::string config;   // net prototxt, or a solver config with its net
  std::string weights;  // coco checkpoint or Caffe .caffemodel ("" keeps the fillers' values)
  std::string blob;     // "" chooses default_embedding_blob()
  std::string data;     // data source, e.g. "mnist:data/mnist"
  std::string split = "test";
  int64_t batch = 100;
  int64_t limit = -1;  // export only the first `limit` samples (-1: all)
  Normalization normalization = Normalization::kNone;
  FlipSum flip_sum = FlipSum::kOff;
  uint64_t seed = 1;  // the net's random seed (fillers for layers without weights)
  Device device = Device::kCPU;  // where the net runs (the caller selects the CUDA device)
};

// A slice of exported embeddings: rows [begin, begin + labels.size()) of the dataset.
struct Embeddings {
  int64_t begin = 0;
  int64_t total = 0;  // size of the whole export (all ranks)
  int64_t dim = 0;
  std::vector<float> values;    // (rows, dim)
  std::vector<int64_t> labels;  // (rows)
  std::string blob;             // which blob, and why (for meta.json)
  std::string blob_rule;
  int64_t rows() const { return static_cast<int64_t>(labels.size()); }
};

using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Runs the export of this rank's slice. Single-process callers pass (0, 1).
Embeddings export_embeddings(const ExportOptions& opt, int rank, int size, const ProgressFn& progress = {});

// Joins slices (any order) into one, checking that they tile [0, total) exactly.
Embeddings join_slices(std::vector<Embeddings> slices);

// Writes dir/embeddings.npy (float32, rows x dim), dir/labels.npy (int64) and
// dir/meta.json; creates dir. `seconds` is the export's wall time.
void write_export(const std::string& dir, const Embeddings& e, const ExportOptions& opt, double seconds);

}  // namespace coco
