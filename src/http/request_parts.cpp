// Pure request reading for the router (see request_parts.hpp).
#include "http/request_parts.hpp"

#include <algorithm>

#include "hub/channel_name.hpp"

namespace odin {

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

bool split_channels(std::string_view list, std::vector<std::string_view>& out) {
  while (!list.empty()) {
    size_t cut = list.find(',');
    size_t skip = 1;
    const size_t encoded = list.find("%2C");
    const size_t encoded_lower = list.find("%2c");
    for (size_t e : {encoded, encoded_lower}) {
      if (e < cut) {
        cut = e;
        skip = 3;
      }
    }
    std::string_view name = list.substr(0, cut);
    if (!is_valid_channel_name(name)) return false;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    if (cut == std::string_view::npos) break;
    list.remove_prefix(cut + skip);
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

}  // namespace odin
