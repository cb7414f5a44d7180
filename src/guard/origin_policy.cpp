// Origin matching (see origin_policy.hpp). Case-insensitive: browsers send scheme and host in
// lower case, but an operator's list or a proxy may not.
#include "guard/origin_policy.hpp"

#include <algorithm>
#include <cctype>

namespace odin::guard {

namespace {

bool equal_lower(std::string_view a, std::string_view lower_b) {
  return a.size() == lower_b.size() &&
         std::equal(a.begin(), a.end(), lower_b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == y;
         });
}

bool matches(std::string_view pattern, std::string_view origin) {
  if (pattern == "*") return true;
  const size_t wildcard = pattern.find("://*.");
  if (wildcard == std::string_view::npos) return equal_lower(origin, pattern);
  // scheme://*.example.com: same scheme, then at least one label, then ".example.com".
  const std::string_view scheme = pattern.substr(0, wildcard + 3);
  const std::string_view suffix = pattern.substr(wildcard + 4);  // ".example.com[:port]"
  if (origin.size() <= scheme.size() + suffix.size()) return false;
  if (!equal_lower(origin.substr(0, scheme.size()), scheme)) return false;
  const std::string_view host = origin.substr(scheme.size());
  const std::string_view label = host.substr(0, host.size() - suffix.size());
  if (label.find_first_of(":/") != std::string_view::npos) return false;
  return equal_lower(host.substr(host.size() - suffix.size()), suffix);
}

}  // namespace

bool origin_allowed(std::span<const std::string> allowed, std::string_view origin) {
  if (allowed.empty()) return true;
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& pattern) { return matches(pattern, origin); });
}

}  // namespace odin::guard
