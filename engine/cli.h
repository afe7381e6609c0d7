// Command-line parsing shared by the tools: one usage-error type (the tools print
// it with their usage text and exit 2) and checked integer values.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace coco {

struct UsageError {
  std::string msg;
};

// `v` as an integer >= min, or a UsageError naming the flag.
inline int64_t parse_int_flag(const std::string& flag, const std::string& v, int64_t min) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used != v.size() || x < min) throw std::invalid_argument("");
    return x;
  } catch (const std::exception&) {
    throw UsageError{flag + " takes an integer >= " + std::to_string(min) + ", got '" + v + "'"};
  }
}

// `v` as a finite number (NaN and infinities are refused), or a UsageError naming the flag.
inline double parse_number_flag(const std::string& flag, const std::string& v) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || !std::isfinite(x))
    throw UsageError{flag + " takes a finite number, got '" + v + "'"};
  return x;
}

// The value after flag argv[i] (advancing i), or a UsageError if it is missing.
inline std::string flag_value(int argc, char** argv, int& i, const std::string& flag) {
  if (i + 1 >= argc) throw UsageError{flag + " needs a value"};
  return argv[++i];
}

}  // namespace coco
