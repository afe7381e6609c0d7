// Shared by the libFuzzer targets (tests/fuzz/fuzz_*.cpp).
//
// Why files: the readers under test take paths (they stat, pread and name the file
// in their errors), so each input is written to a private folder in /dev/shm (tmpfs:
// no disk traffic) and read back through the engine's own API, exactly as a user's
// file would be.
//
// Several files in one input: the parts are separated by kPartSeparator (a line that
// binary formats do not contain by accident), so libFuzzer's insertions and
// deletions inside one part never shift the others.
//
// What counts as a finding: anything but a clean return or a coco::Error -- a crash,
// a sanitizer report, another exception type (std::bad_alloc from a length nobody
// checked, std::out_of_range, ...), a timeout or an allocation over -malloc_limit_mb.
#pragma once

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/common.h"
#include "engine/math.h"

namespace coco::fuzz {

inline const std::string kPartSeparator = "\n--coco-fuzz-part--\n";

inline std::vector<std::string> split_parts(const uint8_t* data, size_t size) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t at = 0;
  for (;;) {
    const size_t next = all.find(kPartSeparator, at);
    if (next == std::string::npos) {
      parts.push_back(all.substr(at));
      return parts;
    }
    parts.push_back(all.substr(at, next - at));
    at = next + kPartSeparator.size();
  }
}

inline std::string join_parts(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? kPartSeparator : std::string()) + parts[i];
  return s;
}

// This process's scratch folder (one per process, so parallel fuzzers do not collide).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("coco-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Removes the scratch folder at exit (libFuzzer exits through exit()).
struct ScratchCleanup {
  ~ScratchCleanup() {
    std::error_code ec;
    std::filesystem::remove_all(scratch_dir(), ec);
  }
};

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("fuzz harness: cannot write " + p.string());
}

// Quiet (the readers warn on skipped records) and single-threaded (reproducible).
inline void init_quiet() {
  spdlog::set_level(spdlog::level::off);
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  set_num_threads(1);
  (void)scratch_dir();
  static ScratchCleanup cleanup;
}

// Runs f; a coco::Error is the expected outcome for bad input, anything else escapes.
template <typename F>
bool expect_clean(F&& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    // A good error names the place; an empty one is a finding.
    if (std::string(e.what()).empty()) __builtin_trap();
    return false;
  }
}

}  // namespace coco::fuzz
