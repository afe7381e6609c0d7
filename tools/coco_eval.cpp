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

#include <CLI/CLI.hpp>

#include "engine/cli.h"
#include "engine/common.h"
#include "engine/face_verification.h"
#include "engine/logging.h"
#include "tools/embed/eval.h"
#include "tools/embed/npy.h"

namespace {

const char* kUsage = R"(usage: coco-eval --embeddings DIR [tasks] [options]

Reads DIR/embeddings.npy (float32, N x D) and DIR/labels.npy (int64, N), as
coco-export writes them, and prints a JSON object with the metrics.
)";

// What the command line sets.
struct EvalFlags {
  std::string dir, pairs_file, write_pairs_file, json_file, roc_csv;
  bool verify = false, identify = false, classify = false;
  int64_t sample_n = 6000, seed = 1, folds = 10, gallery = 1;
  std::string metric = "cosine";
  std::string protocol = "coco";
};

void add_eval_flags(CLI::App& app, EvalFlags& f) {
  coco::describe_tool(app, kUsage);
  const std::string tasks = "Tasks (default: --verify and --identify; --verify alone with --pairs bin:)";
  app.add_flag("--verify", f.verify,
               "pair verification: 10-fold accuracy (LFW protocol:\neach fold's threshold is chosen on the other "
               "folds),\nROC, AUC, TAR at FAR 1e-1 ... 1e-6 (a FAR below\n1/negative pairs is reported as unreachable)")
      ->group(tasks);
  app.add_flag("--identify", f.identify, "gallery/probe identification: top-1, top-5 and the CMC")->group(tasks);
  app.add_flag("--classify", f.classify,
               "rows are logits: top-1 accuracy of the argmax\n(export the classifier's output, e.g. --blob ip2)")
      ->group(tasks);
  app.add_option("--embeddings", f.dir, "folder holding embeddings.npy and labels.npy")
      ->type_name("DIR")->required();
  app.add_option("--pairs", f.pairs_file,
                 "pairs file, one \"A B\" or \"A B SAME\" a line (row\nindices; SAME 1/0, else from the labels), "
                 "or bin:FILE,\nan insightface .bin (pairs 2i, 2i+1 and its issame list;\nexport with --data "
                 "bin:FILE)")
      ->type_name("FILE");
  coco::add_choice_option(app, "--protocol", f.protocol, {"coco", "insightface"},
                          "verification protocol. coco (default): score-midpoint\nthresholds, ROC, AUC, TAR@FAR "
                          "(see --verify).\ninsightface: eval/verification.py exactly -- rows\nL2-normalised, squared "
                          "distance, thresholds 0:0.01:4,\ncontiguous folds, first best threshold, population\nstd "
                          "(export with --flip-sum for its flip-summed\nembeddings)")
      ->type_name("P");
  coco::add_int_option(app, "--sample-pairs", f.sample_n, 2,
                       "without --pairs: draw N pairs from the labels, half\npositive, half negative, alternating "
                       "(default 6000)");
  coco::add_int_option(app, "--seed", f.seed, 0, "seed for --sample-pairs (default 1)")->type_name("S");
  app.add_option("--write-pairs", f.write_pairs_file, "write the pairs used (to reuse them)")->type_name("FILE");
  coco::add_int_option(app, "--folds", f.folds, 2, "verification folds (default 10)")->type_name("F");
  coco::add_choice_option(app, "--metric", f.metric, {"cosine", "euclidean"},
                          "cosine (default) or euclidean (score = -distance)")
      ->type_name("M");
  coco::add_int_option(app, "--gallery-per-class", f.gallery, 1,
                       "the first G samples of each class form the gallery,\nthe rest are probes (default 1)")
      ->type_name("G");
  app.add_option("--json", f.json_file, "also write the JSON to FILE")->type_name("FILE");
  app.add_option("--roc-csv", f.roc_csv,
                 "write the ROC as CSV: threshold,far,tar\n(plot: python3 tools/plot_roc.py FILE --out roc.png)")
      ->type_name("FILE");
}

// JSON has no infinities: the last ROC point's threshold is written as null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// DIR/embeddings.npy and DIR/labels.npy, checked: 2-d float32 rows, one int64 label
// per row, every value finite.
struct Embeddings {
  coco::NpyArray emb, lab;
  int64_t dim = 0;
};

Embeddings load_embeddings(const std::string& dir) {
  Embeddings e{coco::read_npy(dir + "/embeddings.npy"), coco::read_npy(dir + "/labels.npy")};
  if (e.emb.type != coco::NpyType::kFloat32 || e.emb.shape.size() != 2)
    COCO_THROW(dir, "/embeddings.npy: expected a 2-d float32 array");
  if (e.lab.type != coco::NpyType::kInt64 || e.lab.shape.size() != 1 || e.lab.shape[0] != e.emb.shape[0])
    COCO_THROW(dir, "/labels.npy: expected int64 labels, one per embedding row (", e.emb.shape[0], ")");
  e.dim = e.emb.shape[1];
  // A NaN score never advances the ROC's threshold walk; refuse it by row instead.
  coco::require_finite(e.emb.f32, e.dim, dir + "/embeddings.npy",
                       "every embedding must be finite (was the model trained to NaN?)");
  return e;
}

nlohmann::json tar_at_far_json(const coco::Verification& v) {
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
  return tars;
}

void write_roc_csv(const std::string& path, const coco::Verification& v) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) COCO_THROW(path, ": cannot write");
  f << "threshold,far,tar\n";
  f.precision(9);
  for (const auto& p : v.roc) f << p.threshold << ',' << p.far << ',' << p.tar << '\n';
  if (!f) COCO_THROW(path, ": write failed");
}

// insightface's eval/verification.py on the same pairs (engine/face_verification.h).
nlohmann::json insightface_verification(const EvalFlags& f, const Embeddings& e, const std::vector<coco::Pair>& pairs) {
  std::vector<std::pair<int64_t, int64_t>> rows;
  std::vector<bool> same;
  int64_t positives = 0;
  for (const auto& p : pairs) {
    rows.emplace_back(p.a, p.b);
    same.push_back(p.same);
    positives += p.same;
  }
  const auto r = coco::insightface_accuracy(coco::normalized_squared_distances(e.emb.f32, e.dim, rows), same,
                                            static_cast<int>(f.folds));
  spdlog::info("verification (insightface protocol): {}-fold accuracy {:.4f} +- {:.4f} ({} positive, {} negative pairs)",
               f.folds, r.mean, r.std, positives, pairs.size() - positives);
  return {{"protocol", "insightface"},      {"positives", positives},
          {"negatives", static_cast<int64_t>(pairs.size()) - positives},
          {"folds", f.folds},               {"accuracy_mean", r.mean},
          {"accuracy_std", r.std},          {"fold_accuracy", r.fold_accuracy},
          {"fold_threshold", r.fold_threshold}};
}

nlohmann::json verification(const EvalFlags& f, const Embeddings& e, coco::Metric metric) {
  const auto& lab = e.lab.i64;
  const auto pairs = f.pairs_file.empty() ? coco::sample_pairs(lab, f.sample_n, static_cast<uint64_t>(f.seed))
                                          : coco::read_pairs(f.pairs_file, lab);
  if (!f.write_pairs_file.empty()) coco::write_pairs(f.write_pairs_file, pairs);
  if (f.protocol == "insightface") {
    nlohmann::json j = insightface_verification(f, e, pairs);
    j["pairs"] = f.pairs_file.empty() ? "sampled: " + std::to_string(f.sample_n) + ", seed " + std::to_string(f.seed)
                                      : f.pairs_file;
    return j;
  }
  const auto scores = coco::pair_scores(e.emb.f32, e.dim, pairs, metric);
  const auto v = coco::verify(scores, pairs, static_cast<int>(f.folds));
  nlohmann::json j;
  j["pairs"] = f.pairs_file.empty() ? "sampled: " + std::to_string(f.sample_n) + ", seed " + std::to_string(f.seed)
                                    : f.pairs_file;
  j["protocol"] = "coco";
  j["positives"] = v.positives;
  j["negatives"] = v.negatives;
  j["folds"] = f.folds;
  j["accuracy_mean"] = v.accuracy_mean;
  j["accuracy_std"] = v.accuracy_std;
  j["fold_accuracy"] = v.fold_accuracy;
  j["fold_threshold"] = v.fold_threshold;
  j["auc"] = v.auc;
  j["tar_at_far"] = tar_at_far_json(v);
  spdlog::info("verification: {}-fold accuracy {:.4f} +- {:.4f} ({} positive, {} negative pairs), AUC {:.5f}",
               f.folds, v.accuracy_mean, v.accuracy_std, v.positives, v.negatives, v.auc);
  if (!f.roc_csv.empty()) write_roc_csv(f.roc_csv, v);
  return j;
}

nlohmann::json identification(const EvalFlags& f, const Embeddings& e, coco::Metric metric) {
  const auto r = coco::identify(e.emb.f32, e.dim, e.lab.i64, f.gallery, metric);
  spdlog::info("identification: top-1 {:.4f}, top-5 {:.4f} ({} probes, gallery {} of {} classes)", r.top1, r.top5,
               r.probes, r.gallery, r.classes);
  return {{"gallery_per_class", f.gallery}, {"gallery", r.gallery}, {"probes", r.probes}, {"classes", r.classes},
          {"top1", r.top1},                 {"top5", r.top5},       {"cmc", r.cmc}};
}

// The metrics of the tasks asked for, as one JSON object.
nlohmann::json evaluate(const EvalFlags& f) {
  const Embeddings e = load_embeddings(f.dir);
  const coco::Metric metric = f.metric == "cosine" ? coco::Metric::kCosine : coco::Metric::kEuclidean;
  nlohmann::json out;
  out["embeddings"] = f.dir;
  out["count"] = e.emb.shape[0];
  out["dim"] = e.dim;
  out["metric"] = f.metric;
  if (f.classify) {
    const double acc = coco::classification_accuracy(e.emb.f32, e.dim, e.lab.i64);
    out["classification"] = {{"top1", acc}};
    spdlog::info("classification: top-1 {:.4f} over {} samples", acc, e.emb.shape[0]);
  }
  if (f.verify) out["verification"] = verification(f, e, metric);
  if (f.identify) out["identification"] = identification(f, e, metric);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  EvalFlags flags;
  CLI::App app{"", "coco-eval"};
  add_eval_flags(app, flags);
  if (const auto rc = coco::parse_flags(app, argc, argv)) return *rc;
  if (!flags.verify && !flags.identify && !flags.classify) {
    // A verification set's labels are pair numbers, not identities: nothing to identify.
    flags.verify = true;
    flags.identify = flags.pairs_file.rfind("bin:", 0) != 0;
  }

  coco::init_logging(0, 1);
  try {
    const std::string text = evaluate(flags).dump(2) + "\n";
    std::fputs(text.c_str(), stdout);
    if (!flags.json_file.empty()) {
      std::ofstream f(flags.json_file, std::ios::trunc);
      f << text;
      if (!f) COCO_THROW(flags.json_file, ": cannot write");
    }
    return 0;
  } catch (const std::exception& ex) {
    spdlog::error("{}", ex.what());
    return 1;
  }
}
