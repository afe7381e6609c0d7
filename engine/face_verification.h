// Face verification accuracy as insightface measures it (eval/verification.py, the
// LFW / CFP-FP / AgeDB numbers its users compare), used by validation while training
// and by coco-eval --protocol insightface.
//
// The protocol, exactly: each embedding is the sum of the image's and its mirror's,
// divided by its L2 norm (a zero row stays zero, as sklearn's normalize leaves it);
// a pair's distance is the squared Euclidean distance of its two rows; a pair is
// called "same" when distance < threshold, for the thresholds 0, 0.01, ..., 3.99;
// the pairs in file order are cut into F contiguous folds (sklearn's KFold without
// shuffling: the first P mod F folds hold one pair more); each fold is scored at the
// first threshold with the best accuracy on the other F-1 folds; the result is the
// mean and the population standard deviation of the F fold accuracies.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace coco {

struct FoldedAccuracy {
  std::vector<double> fold_accuracy, fold_threshold;
  double mean = 0, std = 0;  // std: population (numpy's np.std)
};

// Squared Euclidean distances of the L2-normalised rows of `emb` (n x dim, row-major).
std::vector<double> normalized_squared_distances(const std::vector<float>& emb, int64_t dim,
                                                 const std::vector<std::pair<int64_t, int64_t>>& pairs);

// The F-fold accuracy of the protocol above. Needs at least `folds` pairs.
FoldedAccuracy insightface_accuracy(const std::vector<double>& distances, const std::vector<bool>& issame, int folds);

// The pairs of a verification set: rows 2i and 2i+1.
std::vector<std::pair<int64_t, int64_t>> consecutive_pairs(int64_t pairs);

}  // namespace coco
