// Pure request reading for the router (see request_parts.hpp).
#include "http/request_parts.hpp"

#include "core/channel_name.hpp"
#include "core/unique_channels.hpp"

namespace odin::http {

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string_view query_param(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool split_channels(std::string_view list, std::vector<std::string_view>& out, size_t cap) {
  core::UniqueChannels names(out, cap);
  // One pass over the list: each byte is looked at once, whichever separator comes next.
  size_t start = 0;
  for (size_t i = 0; i <= list.size();) {
    size_t skip = 0;
    if (i == list.size() || list[i] == ',') {
      skip = 1;
    } else if (list[i] == '%' && list.size() - i >= 3 && list[i + 1] == '2' &&
               (list[i + 2] == 'C' || list[i + 2] == 'c')) {
      skip = 3;
    } else {
      ++i;
      continue;
    }
    const std::string_view name = list.substr(start, i - start);
    const bool last = i == list.size();
    if (last && name.empty()) break;  // an empty list or a trailing separator
    if (!core::is_valid_channel_name(name)) return false;
    if (!names.add(name)) break;  // over the cap: the caller refuses, the rest is not read
    if (last) break;
    i += skip;
    start = i;
  }
  return true;
}

ws::UpgradeRequest upgrade_request_of(const HttpRequest& request) {
  namespace http = boost::beast::http;
  ws::UpgradeRequest up;
  up.method = request.method_string();
  up.http_version = request.version();
  up.upgrade = request[http::field::upgrade];
  up.connection = request[http::field::connection];
  up.key = request[http::field::sec_websocket_key];
  up.version = request[http::field::sec_websocket_version];
  return up;
}

size_t extension_header_values(const HttpRequest& request, std::span<std::string_view> out) {
  size_t n = 0;
  auto [it, end] = request.equal_range(boost::beast::http::field::sec_websocket_extensions);
  for (; it != end && n < out.size(); ++it)
    out[n++] = it->value();
  return n;
}

}  // namespace odin::http
