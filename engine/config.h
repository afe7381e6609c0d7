// Reading configs: prototxt text (Caffe's format) into the schema's messages.
// Also the one edit the tools make to a net config: its batch size (set_input_batch).
//
// Every parse error names file:line:column (1-based). A solver file may name its
// net by path (`net: "..."`, resolved against the solver file's folder first, then
// the working directory) or embed it (`net_param { ... }`). A net file alone (no
// solver fields) is accepted where a net is enough (--dry-run).
#pragma once

#include <cstdint>
#include <string>

#include "engine/proto_fwd.h"

namespace coco {

// Parses `text` (read from `origin`, used in messages) into `msg`; throws coco::Error.
void parse_text(const std::string& text, const std::string& origin, google::protobuf::Message* msg);
void read_text_file(const std::string& path, google::protobuf::Message* msg);
std::string read_file(const std::string& path);  // throws naming the file

// A training config: the solver and the net it trains.
struct TrainConfig {
  std::string path;              // the file given by the user
  proto::SolverParameter solver;  // as read (defaults filled by the solver)
  proto::NetParameter net;        // resolved from net / net_param / train_net
  std::string net_origin;         // where the net came from (for messages)
  bool net_only = false;          // the file held a net, not a solver
};

// Reads a solver or a net file (decided by its top-level fields).
TrainConfig load_train_config(const std::string& path);

// Sets the batch axis of every input of a net (legacy inputs and Input layers).
void set_input_batch(proto::NetParameter* net, int64_t batch);

// Text of a message (for tests and dumps).
std::string to_text(const google::protobuf::Message& msg);

}  // namespace coco
