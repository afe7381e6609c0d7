// Command-line parsing shared by the tools: one flag table per tool, from which both
// the parse and --help come, one usage-error type, checked integer and number values.
//
// The parser is CLI11 (Debian libcli11-dev, 2.1.2): a well-kept library, header-only
// (no link step, nothing to vendor), that handles what every tool used to hand-write
// (a missing value, --flag=value, required flags, flags that need or exclude each
// other) and prints --help from the same table the parse uses, so a flag cannot be
// parsed but undocumented. Google Benchmark's own parser stays for --benchmark_*
// flags: coco-bench lets CLI11 pass what it does not know through (allow_extras).
//
// CLI11 is a heavy header (about 10k lines): only engine/cli.cpp and the tools' main
// files include <CLI/CLI.hpp>; this header only declares its two types.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace coco {

// A wrong command line: the message names the flag. parse_flags prints it with the
// tool's help and exits 2.
struct UsageError {
  std::string msg;
};

// `v` as an integer in [min, max], or a UsageError naming the flag.
inline int64_t parse_int_flag(const std::string& flag, const std::string& v, int64_t min,
                              int64_t max = std::numeric_limits<int64_t>::max()) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used != v.size() || x < min || x > max) throw std::invalid_argument("");
    return x;
  } catch (const std::exception&) {
    const std::string range = max == std::numeric_limits<int64_t>::max()
                                  ? ">= " + std::to_string(min)
                                  : "from " + std::to_string(min) + " to " + std::to_string(max);
    throw UsageError{flag + " takes an integer " + range + ", got '" + v + "'"};
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

// Call first, before adding flags: --help prints `usage` (the synopsis and the
// prose, verbatim), then the flags in the order added (descriptions start at
// `column`; "\n" in one continues it there), then app's footer. A flag given twice
// keeps its last value, as the hand-written loops did.
void describe_tool(CLI::App& app, std::string usage, std::size_t column = 25);

// --name N: an integer >= min (an int: also <= INT_MAX) into `into`.
CLI::Option* add_int_option(CLI::App& app, const std::string& name, int64_t& into, int64_t min,
                            const std::string& help);
CLI::Option* add_int_option(CLI::App& app, const std::string& name, int& into, int64_t min, const std::string& help);
// --name X: a finite number into `into`.
CLI::Option* add_number_option(CLI::App& app, const std::string& name, double& into, const std::string& help);
CLI::Option* add_number_option(CLI::App& app, const std::string& name, float& into, const std::string& help);
// --name V, V one of `choices` ("--metric takes cosine or euclidean, got 'x'").
CLI::Option* add_choice_option(CLI::App& app, const std::string& name, std::string& into,
                               const std::vector<std::string>& choices, const std::string& help);

// Parses argv[1..] into app's flags; -h/--help wins over anything else on the line.
// Returns the exit code when the tool must stop: 0 after --help (on stdout), 2 after a
// usage error (on stderr: "TOOL: message", a blank line, the help). nullopt: go on.
// `check` runs after a clean parse, for rules across flags; it throws UsageError.
// An argument no flag takes is a usage error ("unknown option '--x'"), unless the tool
// called app.allow_extras() to pass such arguments on (app.remaining()).
std::optional<int> parse_flags(CLI::App& app, int argc, const char* const* argv,
                               const std::function<void()>& check = {});

}  // namespace coco
