// Loading settings (see settings.hpp): the sections' tables are the only list of settings, so
// --help, the environment and the flags cannot disagree.
#include "ops/settings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

namespace odin::ops {

namespace setting {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view text) {
  double v = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

SettingParser real(double Config::*field, double min, double max, bool min_exclusive) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_double(text);
    if (!v || *v > max || *v < min || (min_exclusive && *v == min)) {
      return fmt::format("expected a number {} {} and <= {}", min_exclusive ? ">" : ">=", min, max);
    }
    c.*field = *v;
    return std::nullopt;
  };
}

std::optional<Millis> parse_duration(std::string_view text) {
  double scale = 1000.0;
  if (text.ends_with("ms")) {
    scale = 1.0;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  } else if (text.ends_with("m")) {
    scale = 60'000.0;
    text.remove_suffix(1);
  } else if (text.ends_with("h")) {
    scale = 3'600'000.0;
    text.remove_suffix(1);
  }
  auto v = parse_double(text);
  if (!v || *v <= 0) return std::nullopt;
  const double ms = *v * scale;
  if (ms < 1.0 || ms > 86'400'000.0) return std::nullopt;
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

SettingParser duration(Millis Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_duration(text);
    if (!v)
      return "expected a duration from 1ms to 24h such as 250ms, 30s, 5m (bare number = seconds)";
    c.*field = *v;
    return std::nullopt;
  };
}

namespace {

std::string duration_text(Millis d) {
  const int64_t ms = d.count();
  if (ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace

SettingParser duration_in(Millis Config::*field, Millis min, Millis max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_duration(text);
    if (!v || *v < min || *v > max) {
      return fmt::format(
          "expected a duration from {} to {} such as 250ms, 30s, 5m (bare number = "
          "seconds)",
          duration_text(min), duration_text(max));
    }
    c.*field = *v;
    return std::nullopt;
  };
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
  uint64_t scale = 1;
  std::string l = lower(text);
  std::string_view t = l;
  for (auto [suffix, mult] : {std::pair<std::string_view, uint64_t>{"kib", 1ull << 10},
                              {"mib", 1ull << 20},
                              {"gib", 1ull << 30},
                              {"kb", 1ull << 10},
                              {"mb", 1ull << 20},
                              {"gb", 1ull << 30},
                              {"k", 1ull << 10},
                              {"m", 1ull << 20},
                              {"g", 1ull << 30}}) {
    if (t.ends_with(suffix)) {
      scale = mult;
      t.remove_suffix(suffix.size());
      break;
    }
  }
  auto v = parse_u64(t);
  if (!v || *v > UINT64_MAX / scale) return std::nullopt;
  return *v * scale;
}

SettingParser text_value(std::string Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    // Control characters would corrupt log lines and HTTP headers; no setting needs one.
    for (unsigned char ch : text) {
      if (ch < 0x20 || ch == 0x7f) return "expected text without control characters";
    }
    c.*field = std::string(text);
    return std::nullopt;
  };
}

bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char ch) { return ch <= 0x20 || ch == 0x7f; });
}

SettingParser token_value(std::string Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    if (has_space_or_control(text)) return "expected a value without spaces or control characters";
    c.*field = std::string(text);
    return std::nullopt;
  };
}

SettingParser boolean(bool Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    const std::string l = lower(text);
    if (l == "1" || l == "true" || l == "yes" || l == "on") {
      c.*field = true;
    } else if (l == "0" || l == "false" || l == "no" || l == "off") {
      c.*field = false;
    } else {
      return "expected true/false (1/0, yes/no, on/off)";
    }
    return std::nullopt;
  };
}

}  // namespace setting

std::string flag_of(std::string_view variable) {
  std::string name(variable.starts_with("WS_") ? variable.substr(3) : variable);
  name = setting::lower(name);
  std::replace(name.begin(), name.end(), '_', '-');
  return "--" + name;
}

ConfigLoad load_config(std::span<const ConfigSection> sections, std::span<const char* const> args,
                       const std::function<const char*(const char*)>& getenv) {
  ConfigLoad result;
  Config config;
  GivenSettings values;

  for (const ConfigSection& section : sections) {
    for (const Setting& s : section.settings) {
      const char* v = getenv(s.variable);
      if (v && *v) values[s.variable] = {v, s.variable};
    }
  }
  // --help wins wherever it appears, even after a flag that would be an error.
  for (const char* arg : args) {
    if (arg && (std::string_view(arg) == "--help" || std::string_view(arg) == "-h")) {
      result.show_help = true;
      return result;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i] ? args[i] : "";
    const size_t eq = arg.find('=');
    const std::string_view flag = arg.substr(0, eq);
    const Setting* match = nullptr;
    for (const ConfigSection& section : sections) {
      for (const Setting& s : section.settings) {
        if (flag_of(s.variable) == flag) match = &s;
      }
    }
    if (!match) {
      result.error = fmt::format("unknown option '{}' (see --help)", flag);
      return result;
    }
    std::string value;
    if (eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (i + 1 < args.size() && args[i + 1] &&
               !std::string_view(args[i + 1]).starts_with("--")) {
      // A following "--flag" means this flag's value was forgotten; swallowing it would hide
      // that. A value that starts with "--" can still be given as --flag=--value.
      value = args[++i];
    } else {
      result.error = fmt::format("{} ({}): missing value (use {}=value or {} value)", flag,
                                 match->variable, flag, flag);
      return result;
    }
    values[match->variable] = {value, fmt::format("{} ({})", flag, match->variable)};
  }

  for (const ConfigSection& section : sections) {
    for (const Setting& s : section.settings) {
      auto it = values.find(s.variable);
      if (it == values.end() || !s.parse) continue;
      const GivenSetting& given = it->second;
      if (auto problem = s.parse(config, given.value)) {
        result.error = s.secret
                           ? fmt::format("{}: {}", given.source, *problem)
                           : fmt::format("{}: {}, got '{}'", given.source, *problem, given.value);
        return result;
      }
    }
  }
  for (const ConfigSection& section : sections) {
    if (!section.check) continue;
    if (auto problem = section.check(config, values)) {
      result.error = std::move(*problem);
      return result;
    }
  }
  result.config = std::move(config);
  return result;
}

std::string config_help(std::span<const ConfigSection> sections) {
  std::string out =
      "Usage: odin-ws [--flag=value ...]\n\n"
      "A WebSocket fan-out gateway. Every setting is an environment variable and a flag\n"
      "(--flag=value or --flag value); flags win over the environment, and an empty variable\n"
      "counts as unset. -h, --help prints this text.\n\n"
      "Durations: 250ms, 30s, 5m, 1h, fractions allowed (1.5s); a bare number is seconds;\n"
      "from 1ms to 24h. Byte sizes: 1024, 64K, 256KiB, 16M, 1GiB (K/M/G and KiB/MiB/GiB are\n"
      "powers of 1024). Booleans: 1/0, true/false, yes/no, on/off.\n"
      "A bad value exits with status 2 and a message naming the setting.\n";
  std::string group;
  for (const ConfigSection& section : sections) {
    for (const Setting& s : section.settings) {
      if (group != s.group) {
        group = s.group;
        out += fmt::format("\n{}:\n", group);
      }
      out += fmt::format("  {:<28} {:<30} default {}\n  {:<28} {}\n", s.variable,
                         flag_of(s.variable), s.default_text, "", s.meaning);
    }
  }
  return out;
}

}  // namespace odin::ops
