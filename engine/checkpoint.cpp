#include "engine/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/common.h"
#include "engine/config.h"

namespace coco {

namespace {

constexpr char kMagic[8] = {'C', 'O', 'C', 'O', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 8 + 4 + 8 + 8;

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

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

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) COCO_THROW(sys_error("cannot create", tmp));
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

void save_checkpoint(const std::string& path, const proto::Checkpoint& ckpt) {
  std::string payload;
  if (!ckpt.SerializeToString(&payload)) COCO_THROW(path, ": cannot serialise the checkpoint");
  std::string bytes(kMagic, 8);
  put<uint32_t>(bytes, kVersion);
  put<uint64_t>(bytes, payload.size());
  put<uint64_t>(bytes, fnv1a(payload.data(), payload.size()));
  bytes += payload;
  write_file_atomic(path, bytes);
}

proto::Checkpoint load_checkpoint(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0)
    COCO_THROW(path, ": not a coco checkpoint (no COCOCKPT header", bytes.size() < kHeader ? ", file too short" : "",
               ")");
  const uint32_t version = get<uint32_t>(bytes, 8);
  if (version != kVersion) COCO_THROW(path, ": checkpoint format version ", version, ", this build reads ", kVersion);
  const uint64_t len = get<uint64_t>(bytes, 12), hash = get<uint64_t>(bytes, 20);
  if (bytes.size() - kHeader != len)
    COCO_THROW(path, ": truncated or padded: header promises ", len, " payload bytes, the file holds ",
               bytes.size() - kHeader);
  if (fnv1a(bytes.data() + kHeader, len) != hash) COCO_THROW(path, ": corrupt: payload hash does not match the header");
  proto::Checkpoint ckpt;
  if (!ckpt.ParseFromArray(bytes.data() + kHeader, static_cast<int>(len)))
    COCO_THROW(path, ": corrupt: the payload does not parse");
  return ckpt;
}

void load_weights(Net& net, const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 8) == 0) {
    const proto::Checkpoint ckpt = load_checkpoint(path);
    net.copy_from(ckpt.net(), path, /*require_all=*/true);
    return;
  }
  proto::NetParameter caffe;
  if (!caffe.ParseFromString(bytes) || caffe.layer_size() == 0)
    COCO_THROW(path, ": neither a coco checkpoint nor a Caffe .caffemodel (binary NetParameter)");
  net.copy_from(caffe, path, /*require_all=*/false);
}

}  // namespace coco
