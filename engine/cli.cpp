// The tools' flag parsing on CLI11 (engine/cli.h says why CLI11). The values are
// checked by coco's own parse_int_flag/parse_number_flag, so a bad value is named
// the same way in every tool ("--seed takes an integer >= 0, got 'x'").
#include "engine/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <memory>
#include <utility>

namespace coco {

namespace {

// coco's help layout: the tool's own synopsis and prose first (CLI11's would be
// "Usage: TOOL [OPTIONS]" after the description), then CLI11's flag groups, then
// the footer.
class UsageFirstFormatter : public CLI::Formatter {
 public:
  explicit UsageFirstFormatter(std::string usage) : usage_(std::move(usage)) {}

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode mode) const override {
    std::string out = usage_ + make_groups(app, mode);
    // CLI11 ends each group with a blank line and starts the next with one.
    for (size_t at; (at = out.find("\n\n\n")) != std::string::npos;) out.erase(at, 1);
    if (!app->get_footer().empty()) out += "\n" + app->get_footer() + "\n";
    return out;
  }

 private:
  std::string usage_;
};

// "a or b", "a, b or c".
std::string alternatives(const std::vector<std::string>& choices) {
  std::string s;
  for (size_t i = 0; i < choices.size(); ++i)
    s += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
  return s;
}

}  // namespace

void describe_tool(CLI::App& app, std::string usage, std::size_t column) {
  auto formatter = std::make_shared<UsageFirstFormatter>(std::move(usage));
  formatter->column_width(column);
  // The synopsis in `usage` already shows which flags are required; CLI11's
  // "REQUIRED" after each one would only push its description to the next line.
  formatter->label("REQUIRED", "");
  app.formatter(formatter);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // parse_flags adds -h/--help last, where the old texts listed it.
  app.set_help_flag();
}

namespace {
// A flag taking one value, which `store` checks (throwing UsageError) and keeps.
CLI::Option* add_checked_option(CLI::App& app, const std::string& name, const std::string& type_name,
                                const std::string& help, std::function<void(const std::string&)> store) {
  return app.add_option_function<std::string>(name, std::move(store), help)->type_name(type_name);
}
}  // namespace

CLI::Option* add_int_option(CLI::App& app, const std::string& name, int64_t& into, int64_t min,
                            const std::string& help) {
  return add_checked_option(app, name, "N", help,
                            [&into, name, min](const std::string& v) { into = parse_int_flag(name, v, min); });
}

CLI::Option* add_int_option(CLI::App& app, const std::string& name, int& into, int64_t min, const std::string& help) {
  return add_checked_option(app, name, "N", help, [&into, name, min](const std::string& v) {
    into = static_cast<int>(parse_int_flag(name, v, min, INT_MAX));
  });
}

CLI::Option* add_number_option(CLI::App& app, const std::string& name, double& into, const std::string& help) {
  return add_checked_option(app, name, "X", help,
                            [&into, name](const std::string& v) { into = parse_number_flag(name, v); });
}

CLI::Option* add_number_option(CLI::App& app, const std::string& name, float& into, const std::string& help) {
  return add_checked_option(app, name, "X", help,
                            [&into, name](const std::string& v) { into = static_cast<float>(parse_number_flag(name, v)); });
}

CLI::Option* add_choice_option(CLI::App& app, const std::string& name, std::string& into,
                               const std::vector<std::string>& choices, const std::string& help) {
  return add_checked_option(app, name, "V", help, [&into, name, choices](const std::string& v) {
    if (std::find(choices.begin(), choices.end(), v) == choices.end())
      throw UsageError{name + " takes " + alternatives(choices) + ", got '" + v + "'"};
    into = v;
  });
}

std::optional<int> parse_flags(CLI::App& app, int argc, const char* const* argv, const std::function<void()>& check) {
  const bool pass_extras = app.get_allow_extras();
  // Help is a flag that acts as soon as it is read; the value flags' checks run after
  // the whole line is read, so --help is shown even beside a wrong value.
  app.add_flag_callback("-h,--help", [] { throw CLI::CallForHelp(); }, "this text")->trigger_on_parse();
  app.allow_extras();
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::fputs(app.help().c_str(), stdout);
      return 0;
    } catch (const CLI::ParseError& e) {
      // A misspelt flag explains a "required" error that follows from it: name it first.
      if (!pass_extras && !app.remaining().empty()) throw UsageError{"unknown option '" + app.remaining()[0] + "'"};
      throw UsageError{e.what()};
    }
    if (!pass_extras && !app.remaining().empty()) throw UsageError{"unknown option '" + app.remaining()[0] + "'"};
    if (check) check();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n\n%s", app.get_name().c_str(), e.msg.c_str(), app.help().c_str());
    return 2;
  }
  return std::nullopt;
}

}  // namespace coco
