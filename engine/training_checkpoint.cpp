#include "engine/training_checkpoint.h"

#include "engine/checkpoint.h"
#include "engine/common.h"

namespace coco {

void save_training_checkpoint(const std::string& path, int64_t iter, uint64_t seed, const std::string& config,
                              Net& net, SgdSolver& solver, Communicator& comm, const std::string& run_id) {
  proto::Checkpoint ckpt;
  ckpt.set_run_id(run_id);
  ckpt.set_iter(iter);
  ckpt.set_random_seed(static_cast<int64_t>(seed));
  ckpt.set_config_path(config);
  net.replicated_to_proto(ckpt.mutable_net());
  solver.save_state(ckpt.mutable_state());
  ckpt.mutable_state()->set_iter(static_cast<int>(iter));

  proto::CheckpointShard shard;
  shard.set_iter(iter);
  shard.set_rank(comm.rank());
  shard.set_num_shards(comm.size());
  shard.set_run_id(run_id);
  const auto& params = net.params();
  for (size_t pi = 0; pi < params.size(); ++pi) {
    const ParamInfo& p = params[pi];
    if (!p.sharded) continue;
    auto* m = ckpt.add_sharded();
    m->set_layer(p.layer);
    m->set_index(p.index);
    m->set_total_rows(p.total_rows);
    m->set_cols(p.blob->count(1));
    auto* b = shard.add_block();
    b->set_layer(p.layer);
    b->set_index(p.index);
    b->set_row_start(p.row_start);
    b->set_rows(p.blob->shape(0));
    b->set_cols(p.blob->count(1));
    const auto data = p.blob->data().to_vector();
    b->mutable_data()->Add(data.begin(), data.end());
    if (Tensor* h = solver.history_of(pi)) {
      const auto hist = h->to_vector();
      b->mutable_history()->Add(hist.begin(), hist.end());
    }
  }
  if (ckpt.sharded_size() > 0) {
    ckpt.set_num_shards(comm.size());
    save_checkpoint_shard(shard_path(path, comm.rank(), comm.size()), shard);
  }
  comm.barrier();  // every shard is on disk before the main file names them
  if (comm.rank() == 0) save_checkpoint(path, ckpt);
  comm.barrier();
}

int64_t load_training_checkpoint(const std::string& path, Net& net, SgdSolver& solver) {
  const proto::Checkpoint ckpt = load_checkpoint(path);
  net.copy_from(ckpt.net(), path, /*require_all=*/true);
  solver.restore_state(ckpt.state(), path);
  bool any_sharded = false;
  for (const auto& p : net.params()) any_sharded = any_sharded || p.sharded;
  if (any_sharded) {
    if (ckpt.num_shards() == 0) COCO_THROW(path, ": holds no shard manifest for this net's sharded parameters");
    load_sharded_rows(net, ckpt, path, [&](size_t i) { return solver.history_of(i); });
  }
  return ckpt.iter();
}

}  // namespace coco
