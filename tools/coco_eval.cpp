// coco-eval: verification, identification and classification metrics on the
// embeddings coco-export wrote. Prints one JSON object on stdout (and to --json);
// a short summary goes to stderr. The ROC goes to a CSV that tools/plot_roc.py
// turns into a PNG (plotting stays in Python/matplotlib, out of the C++ build).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/cli.h"
#include "engine/common.h"
#include "engine/logging.h"
#include "tools/embed/eval.h"
#include "tools/embed/npy.h"

namespace {

using coco::UsageError;
using coco::parse_int_flag;

const char* kUsage = R"(usage: coco-eval --embeddings DIR [tasks] [options]

Reads DIR/embeddings.npy (float32, N x D) and DIR/labels.npy (int64, N), as
coco-export writes them, and prints a JSON object with the metrics.

Tasks (default: --verify and --identify):
  --verify               pair verification: 10-fold accuracy (LFW protocol:
                         each fold's threshold is chosen on the other folds),
                         ROC, AUC, TAR at FAR 1e-1 ... 1e-6 (a FAR below
                         1/negative pairs is reported as unreachable)
  --identify             gallery/probe identification: top-1, top-5 and the CMC
  --classify             rows are logits: top-1 accuracy of the argmax
                         (export the classifier's output, e.g. --blob ip2)

Options:
  --pairs FILE           pairs file, one "A B" or "A B SAME" a line (row
                         indices; SAME 1/0, else from the labels)
  --sample-pairs N       without --pairs: draw N pairs from the labels, half
                         positive, half negative, alternating (default 6000)
  --seed S               seed for --sample-pairs (default 1)
  --write-pairs FILE     write the pairs used (to reuse them)
  --folds F              verification folds (default 10)
  --metric M             cosine (default) or euclidean (score = -distance)
  --gallery-per-class G  the first G samples of each class form the gallery,
                         the rest are probes (default 1)
  --json FILE            also write the JSON to FILE
  --roc-csv FILE         write the ROC as CSV: threshold,far,tar
                         (plot: python3 tools/plot_roc.py FILE --out roc.png)
  -h, --help             this text
)";

// JSON has no infinities: the last ROC point's threshold is written as null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

int main(int argc, char** argv) {
  std::string dir, pairs_file, write_pairs_file, json_file, roc_csv;
  bool do_verify = false, do_identify = false, do_classify = false;
  int64_t sample_n = 6000, seed = 1, folds = 10, gallery = 1;
  coco::Metric metric = coco::Metric::kCosine;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] { return coco::flag_value(argc, argv, i, a); };
      if (a == "-h" || a == "--help") {
        std::fputs(kUsage, stdout);
        return 0;
      } else if (a == "--embeddings") {
        dir = value();
      } else if (a == "--verify") {
        do_verify = true;
      } else if (a == "--identify") {
        do_identify = true;
      } else if (a == "--classify") {
        do_classify = true;
      } else if (a == "--pairs") {
        pairs_file = value();
      } else if (a == "--sample-pairs") {
        sample_n = parse_int_flag(a, value(), 2);
      } else if (a == "--seed") {
        seed = parse_int_flag(a, value(), 0);
      } else if (a == "--write-pairs") {
        write_pairs_file = value();
      } else if (a == "--folds") {
        folds = parse_int_flag(a, value(), 2);
      } else if (a == "--metric") {
        const std::string m = value();
        if (m == "cosine") metric = coco::Metric::kCosine;
        else if (m == "euclidean") metric = coco::Metric::kEuclidean;
        else throw UsageError{"--metric is cosine or euclidean, got '" + m + "'"};
      } else if (a == "--gallery-per-class") {
        gallery = parse_int_flag(a, value(), 1);
      } else if (a == "--json") {
        json_file = value();
      } else if (a == "--roc-csv") {
        roc_csv = value();
      } else {
        throw UsageError{"unknown option '" + a + "'"};
      }
    }
    if (dir.empty()) throw UsageError{"--embeddings is required"};
    if (!do_verify && !do_identify && !do_classify) do_verify = do_identify = true;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "coco-eval: %s\n\n%s", e.msg.c_str(), kUsage);
    return 2;
  }

  coco::init_logging(0, 1);
  try {
    const coco::NpyArray emb = coco::read_npy(dir + "/embeddings.npy");
    const coco::NpyArray lab = coco::read_npy(dir + "/labels.npy");
    if (emb.type != coco::NpyType::kFloat32 || emb.shape.size() != 2)
      COCO_THROW(dir, "/embeddings.npy: expected a 2-d float32 array");
    if (lab.type != coco::NpyType::kInt64 || lab.shape.size() != 1 || lab.shape[0] != emb.shape[0])
      COCO_THROW(dir, "/labels.npy: expected int64 labels, one per embedding row (", emb.shape[0], ")");
    const int64_t dim = emb.shape[1];
    // A NaN score never advances the ROC's threshold walk; refuse it by row instead.
    coco::require_finite(emb.f32, dim, dir + "/embeddings.npy",
                         "every embedding must be finite (was the model trained to NaN?)");
    const char* metric_name = metric == coco::Metric::kCosine ? "cosine" : "euclidean";

    nlohmann::json out;
    out["embeddings"] = dir;
    out["count"] = emb.shape[0];
    out["dim"] = dim;
    out["metric"] = metric_name;

    if (do_classify) {
      const double acc = coco::classification_accuracy(emb.f32, dim, lab.i64);
      out["classification"] = {{"top1", acc}};
      spdlog::info("classification: top-1 {:.4f} over {} samples", acc, emb.shape[0]);
    }
    if (do_verify) {
      const auto pairs = pairs_file.empty() ? coco::sample_pairs(lab.i64, sample_n, static_cast<uint64_t>(seed))
                                            : coco::read_pairs(pairs_file, lab.i64);
      if (!write_pairs_file.empty()) coco::write_pairs(write_pairs_file, pairs);
      const auto scores = coco::pair_scores(emb.f32, dim, pairs, metric);
      const auto v = coco::verify(scores, pairs, static_cast<int>(folds));
      nlohmann::json j;
      j["pairs"] = pairs_file.empty() ? "sampled: " + std::to_string(sample_n) + ", seed " + std::to_string(seed)
                                      : pairs_file;
      j["positives"] = v.positives;
      j["negatives"] = v.negatives;
      j["folds"] = folds;
      j["accuracy_mean"] = v.accuracy_mean;
      j["accuracy_std"] = v.accuracy_std;
      j["fold_accuracy"] = v.fold_accuracy;
      j["fold_threshold"] = v.fold_threshold;
      j["auc"] = v.auc;
      nlohmann::json tars = nlohmann::json::array();
      for (const auto& q : v.tar_at_far) {
        nlohmann::json t{{"far_target", q.far_target}, {"reachable", q.reachable}};
        if (q.reachable) {
          t["tar"] = q.tar;
          t["far"] = q.far;
          t["threshold"] = num(q.threshold);
        } else {
          t["note"] = "needs at least " + std::to_string(static_cast<int64_t>(std::ceil(1 / q.far_target - 1e-9))) +
                      " negative pairs, have " + std::to_string(v.negatives);
        }
        tars.push_back(t);
      }
      j["tar_at_far"] = tars;
      out["verification"] = j;
      spdlog::info("verification: {}-fold accuracy {:.4f} +- {:.4f} ({} positive, {} negative pairs), AUC {:.5f}",
                   folds, v.accuracy_mean, v.accuracy_std, v.positives, v.negatives, v.auc);
      if (!roc_csv.empty()) {
        std::ofstream f(roc_csv, std::ios::trunc);
        if (!f) COCO_THROW(roc_csv, ": cannot write");
        f << "threshold,far,tar\n";
        f.precision(9);
        for (const auto& p : v.roc) f << p.threshold << ',' << p.far << ',' << p.tar << '\n';
        if (!f) COCO_THROW(roc_csv, ": write failed");
      }
    }
    if (do_identify) {
      const auto r = coco::identify(emb.f32, dim, lab.i64, gallery, metric);
      out["identification"] = {{"gallery_per_class", gallery}, {"gallery", r.gallery}, {"probes", r.probes},
                               {"classes", r.classes},         {"top1", r.top1},       {"top5", r.top5},
                               {"cmc", r.cmc}};
      spdlog::info("identification: top-1 {:.4f}, top-5 {:.4f} ({} probes, gallery {} of {} classes)", r.top1,
                   r.top5, r.probes, r.gallery, r.classes);
    }
    const std::string text = out.dump(2) + "\n";
    std::fputs(text.c_str(), stdout);
    if (!json_file.empty()) {
      std::ofstream f(json_file, std::ios::trunc);
      f << text;
      if (!f) COCO_THROW(json_file, ": cannot write");
    }
    return 0;
  } catch (const std::exception& ex) {
    spdlog::error("{}", ex.what());
    return 1;
  }
}
