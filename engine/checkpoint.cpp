#include "engine/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "engine/common.h"
#include "engine/config.h"

namespace coco {

namespace {

constexpr char kMagic[8] = {'C', 'O', 'C', 'O', 'C', 'K', 'P', 'T'};
constexpr char kShardMagic[8] = {'C', 'O', 'C', 'O', 'S', 'H', 'R', 'D'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 8 + 4 + 8 + 8;

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
T get(const std::string& s, size_t off) {
  T v;
  std::memcpy(&v, s.data() + off, sizeof(T));
  return v;
}

std::string sys_error(const std::string& what, const std::string& path) {
  return path + ": " + what + ": " + std::strerror(errno);
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/' || c == '-') c = '_';  // the temporary name is split at '-'
  return h;
}

const char kTmpTag[] = ".tmp-";

// Fault injection for tests/fault: COCO_FAULT_KILL_IN_WRITE=N makes the N-th atomic
// write of this process stop half-way through its data and SIGKILL the process, as a
// crash or a power cut would. Unset (always, outside those tests) it does nothing.
void maybe_die_in_write(int fd, const std::string& bytes) {
  static const long target = [] {
    const char* v = std::getenv("COCO_FAULT_KILL_IN_WRITE");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  static long count = 0;
  if (target <= 0 || ++count != target) return;
  if (::write(fd, bytes.data(), bytes.size() / 2) < 0) {}
  ::kill(::getpid(), SIGKILL);
}

}  // namespace

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

std::string partial_write_name(const std::string& path) {
  return path + kTmpTag + host_name() + "-" + std::to_string(::getpid());
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = partial_write_name(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) COCO_THROW(sys_error("cannot create", tmp));
  maybe_die_in_write(fd, bytes);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string msg = sys_error("write failed", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      COCO_THROW(msg);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    std::string msg = sys_error("fsync failed", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    COCO_THROW(msg);
  }
  if (::close(fd) != 0) {
    std::string msg = sys_error("close failed", tmp);
    ::unlink(tmp.c_str());
    COCO_THROW(msg);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = sys_error("rename failed", path);
    ::unlink(tmp.c_str());
    COCO_THROW(msg);
  }
  auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace {

void save_container(const std::string& path, const char* magic, const google::protobuf::Message& msg) {
  if (msg.ByteSizeLong() > static_cast<size_t>(INT32_MAX))
    COCO_THROW(path, ": ", msg.ByteSizeLong() >> 20, " MiB is more than one checkpoint file holds (2 GiB); ",
               "shard the parameters over more ranks");
  std::string payload;
  if (!msg.SerializeToString(&payload)) COCO_THROW(path, ": cannot serialise the checkpoint");
  std::string bytes(magic, 8);
  put<uint32_t>(bytes, kVersion);
  put<uint64_t>(bytes, payload.size());
  put<uint64_t>(bytes, fnv1a(payload.data(), payload.size()));
  bytes += payload;
  write_file_atomic(path, bytes);
}

void load_container(const std::string& path, const char* magic, const char* kind, google::protobuf::Message* msg) {
  const std::string bytes = read_file(path);
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), magic, 8) != 0)
    COCO_THROW(path, ": not a coco ", kind, " (no ", std::string(magic, 8), " header",
               bytes.size() < kHeader ? ", file too short" : "", ")");
  const uint32_t version = get<uint32_t>(bytes, 8);
  if (version != kVersion) COCO_THROW(path, ": ", kind, " format version ", version, ", this build reads ", kVersion);
  const uint64_t len = get<uint64_t>(bytes, 12), hash = get<uint64_t>(bytes, 20);
  if (bytes.size() - kHeader != len)
    COCO_THROW(path, ": truncated or padded: header promises ", len, " payload bytes, the file holds ",
               bytes.size() - kHeader);
  if (fnv1a(bytes.data() + kHeader, len) != hash) COCO_THROW(path, ": corrupt: payload hash does not match the header");
  if (!msg->ParseFromArray(bytes.data() + kHeader, static_cast<int>(len)))
    COCO_THROW(path, ": corrupt: the payload does not parse");
}

}  // namespace

void save_checkpoint(const std::string& path, const proto::Checkpoint& ckpt) { save_container(path, kMagic, ckpt); }

proto::Checkpoint load_checkpoint(const std::string& path) {
  proto::Checkpoint ckpt;
  load_container(path, kMagic, "checkpoint", &ckpt);
  return ckpt;
}

void save_checkpoint_shard(const std::string& path, const proto::CheckpointShard& shard) {
  save_container(path, kShardMagic, shard);
}

proto::CheckpointShard load_checkpoint_shard(const std::string& path) {
  proto::CheckpointShard shard;
  load_container(path, kShardMagic, "checkpoint shard", &shard);
  return shard;
}

std::string shard_path(const std::string& checkpoint, int rank, int num_shards) {
  return checkpoint + ".shard-" + std::to_string(rank) + "-of-" + std::to_string(num_shards);
}

void load_sharded_rows(Net& net, const proto::Checkpoint& ckpt, const std::string& path,
                       const std::function<Tensor*(size_t)>& history_of) {
  COCO_CHECK(net.device() == Device::kCPU, "load checkpoint rows before moving the net to a device");
  const int saved = ckpt.num_shards();
  std::map<int, proto::CheckpointShard> files;  // read lazily, only where rows overlap
  auto shard_file = [&](int s) -> const proto::CheckpointShard& {
    auto it = files.find(s);
    if (it == files.end()) {
      const std::string p = shard_path(path, s, saved);
      auto sh = load_checkpoint_shard(p);
      if (sh.iter() != ckpt.iter() || sh.num_shards() != saved || sh.rank() != s)
        COCO_THROW(p, ": belongs to another checkpoint (iteration ", sh.iter(), ", shard ", sh.rank(), " of ",
                   sh.num_shards(), "; expected iteration ", ckpt.iter(), ", shard ", s, " of ", saved, ")");
      if (sh.run_id() != ckpt.run_id())
        COCO_THROW(p, ": was written by another run (run '", sh.run_id(), "') than ", path, " (run '", ckpt.run_id(),
                   "'): two runs wrote checkpoints with the same snapshot prefix, and this one is a mix of both");
      it = files.emplace(s, std::move(sh)).first;
    }
    return it->second;
  };
  const auto& params = net.params();
  for (size_t pi = 0; pi < params.size(); ++pi) {
    const ParamInfo& p = params[pi];
    if (!p.sharded) continue;
    const proto::ShardedParam* m = nullptr;
    for (const auto& s : ckpt.sharded())
      if (s.layer() == p.layer && s.index() == p.index) m = &s;
    if (!m) COCO_THROW(path, ": has no sharded rows for layer '", p.layer, "' parameter ", p.index);
    const int64_t cols = p.blob->count(1), rows = p.blob->shape(0);
    if (m->total_rows() != p.total_rows || m->cols() != cols)
      COCO_THROW(path, ": layer '", p.layer, "' parameter ", p.index, " was saved as ", m->total_rows(), " x ",
                 m->cols(), ", the net has ", p.total_rows, " x ", cols);
    Tensor* hist = history_of ? history_of(pi) : nullptr;
    const int64_t lo = p.row_start, hi = p.row_start + rows;
    int64_t filled = 0;
    for (int s = 0; s < saved; ++s) {
      const ShardRange r = shard_range(m->total_rows(), s, saved);
      if (r.start >= hi) break;  // shards are in row order: the rest lie beyond this rank's rows
      const int64_t a = std::max(lo, r.start), b = std::min(hi, r.start + r.count);
      if (a >= b) continue;
      const proto::ShardBlock* blk = nullptr;
      for (const auto& x : shard_file(s).block())
        if (x.layer() == p.layer && x.index() == p.index) blk = &x;
      if (!blk || blk->row_start() != r.start || blk->rows() != r.count || blk->data_size() != r.count * cols)
        COCO_THROW(shard_path(path, s, saved), ": rows of layer '", p.layer, "' parameter ", p.index,
                   " are missing or malformed");
      std::copy(blk->data().begin() + (a - r.start) * cols, blk->data().begin() + (b - r.start) * cols,
                p.blob->mutable_data() + (a - lo) * cols);
      if (hist) {
        if (blk->history_size() != blk->data_size())
          COCO_THROW(shard_path(path, s, saved), ": layer '", p.layer, "' has no momentum rows");
        std::copy(blk->history().begin() + (a - r.start) * cols, blk->history().begin() + (b - r.start) * cols,
                  hist->data() + (a - lo) * cols);
      }
      filled += b - a;
    }
    if (filled != rows) COCO_THROW(path, ": the shards cover ", filled, " of this rank's ", rows, " rows");
  }
}

std::vector<std::string> clean_partial_writes(const std::string& dir, const std::string& name_prefix) {
  std::vector<std::string> notes;
  std::error_code ec;
  const std::string host = host_name();
  for (std::filesystem::directory_iterator it(dir.empty() ? "." : dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto tag = name.rfind(kTmpTag);
    if (tag == std::string::npos || name.compare(0, name_prefix.size(), name_prefix) != 0) continue;
    const std::string owner = name.substr(tag + sizeof kTmpTag - 1);  // HOST-PID
    const auto dash = owner.rfind('-');
    if (dash == std::string::npos || owner.substr(0, dash) != host) continue;  // another host's to judge
    char* end_pid = nullptr;
    const long pid = std::strtol(owner.c_str() + dash + 1, &end_pid, 10);
    if (pid <= 0 || *end_pid != 0) continue;
    const std::string file = it->path().string();
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) {
      notes.push_back(file + ": a partial checkpoint being written by process " + std::to_string(pid) +
                      " (another job writes to this folder?); ignored");
      continue;
    }
    std::error_code rm;
    std::filesystem::remove(it->path(), rm);
    notes.push_back(file + ": a partial checkpoint left by an interrupted write (process " + std::to_string(pid) +
                    " is gone); ignored and " + (rm ? "could not be removed: " + rm.message() : "removed"));
  }
  return notes;
}

void ensure_writable_folder(const std::string& dir, const std::string& what) {
  std::error_code ec;
  if (!dir.empty()) {
    std::filesystem::create_directories(dir, ec);
    if (ec) COCO_THROW(dir, ": cannot create the ", what, " folder: ", ec.message());
  }
  const std::string probe = partial_write_name((dir.empty() ? std::string(".") : dir) + "/.coco-write-test");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) COCO_THROW(sys_error("the " + what + " folder is not writable (cannot create a file there)", dir.empty() ? "." : dir));
  const bool wrote = ::write(fd, "x", 1) == 1;
  const std::string msg = wrote ? std::string() : sys_error("cannot write to the " + what + " folder", dir.empty() ? "." : dir);
  ::close(fd);
  ::unlink(probe.c_str());
  if (!wrote) COCO_THROW(msg);
}

namespace {

// The net's layers with parameters, once each, in net order.
std::vector<std::string> param_layers(const Net& net) {
  std::vector<std::string> layers;
  for (const auto& p : net.params())
    if (layers.empty() || layers.back() != p.layer) layers.push_back(p.layer);
  return layers;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
  return s.empty() ? "(none)" : s;
}

// The net's layers with parameters, split by whether `file` holds parameters for them;
// checks `keep_fillers` names exactly the ones it does not.
std::vector<std::string> match_layers(const Net& net, const proto::NetParameter& file, const std::string& path,
                                      const std::vector<std::string>& keep_fillers) {
  std::set<std::string> in_file, keep(keep_fillers.begin(), keep_fillers.end());
  for (const auto& l : file.layer())
    if (l.blobs_size() > 0) in_file.insert(l.name());
  const std::vector<std::string> net_layers = param_layers(net);
  std::vector<std::string> matched, missing;
  for (const auto& l : net_layers) (in_file.count(l) ? matched : missing).push_back(l);
  if (matched.empty())
    COCO_THROW(path, ": holds parameters for none of the net's layers (the net's: ", joined(net_layers),
               "); is it the model of another net?");
  std::vector<std::string> unnamed;
  for (const auto& m : missing)
    if (!keep.erase(m)) unnamed.push_back(m);
  if (!unnamed.empty())
    COCO_THROW(path, ": holds no parameters for layer(s) ", joined(unnamed),
               ", which would start from their fillers; to fine-tune with them initialised afresh, name them "
               "(coco-train --weights-keep-fillers ", unnamed.front(), "[,...])");
  if (!keep.empty())
    COCO_THROW(path, ": --weights-keep-fillers names ", joined({keep.begin(), keep.end()}),
               ", but the file holds those layers' parameters or the net has no such layer with parameters");
  return matched;
}

}  // namespace

std::vector<std::string> load_weights(Net& net, const std::string& path, const std::vector<std::string>& keep_fillers) {
  const std::string bytes = read_file(path);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 8) == 0) {
    const proto::Checkpoint ckpt = load_checkpoint(path);
    net.copy_from(ckpt.net(), path, /*require_all=*/true);
    if (ckpt.num_shards() > 0) load_sharded_rows(net, ckpt, path, nullptr);
    return param_layers(net);
  }
  proto::NetParameter caffe;
  if (!caffe.ParseFromString(bytes) || caffe.layer_size() == 0)
    COCO_THROW(path, ": neither a coco checkpoint nor a Caffe .caffemodel (binary NetParameter)");
  auto matched = match_layers(net, caffe, path, keep_fillers);
  net.copy_from(caffe, path, /*require_all=*/false);
  return matched;
}

}  // namespace coco
