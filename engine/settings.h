// The allowed range of every setting a user writes in a solver, a data source or a
// CocoLoss head, as one table of rules per message type (settings.cpp). Each check
// throws an Error naming the file or layer, the field, its value and what is allowed,
// so a wrong value stops a run (and --dry-run) before it can corrupt memory or train
// silently wrong.
#pragma once

#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// Every solver field coco reads (learning rate and its policy, decay, momentum,
// clipping, iterations, test and snapshot settings), and its data sources.
void validate_solver(const proto::SolverParameter& p, const std::string& origin);

// One data source (`field`: "train_data" or "test_data").
void validate_data_source(const proto::DataSourceParameter& p, const std::string& origin, const std::string& field);

// Whether checkpoints under `prefix` get file names: "" or "dir/" would write
// "dir/_iter_N.ckpt". The solver field and --snapshot-prefix are both held to it.
bool snapshot_prefix_names_files(const std::string& prefix);

// A CocoLoss head's fields: class count, scale or target probability, margin and
// margin type, chunk size and logits cache budget. `where` names the layer.
void validate_coco_loss(const proto::CocoLossParameter& p, const std::string& where);

}  // namespace coco
