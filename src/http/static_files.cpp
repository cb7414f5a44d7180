// Static page files (see static_files.hpp).
#include "http/static_files.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace odin::http {

namespace {
std::string_view content_type_for(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".json") return "application/json";
  if (ext == ".txt" || ext == ".md") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}
}  // namespace

size_t StaticFiles::load(const std::string& root, std::string_view prefix) {
  size_t loaded = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    // Built with append, not operator+: g++ 12 at -O3 reports a false -Wrestrict on the latter.
    std::string key(prefix);
    key.append(entry.path().filename().string());
    files_[key] = File{body.str(), content_type_for(entry.path())};
    ++loaded;
  }
  return loaded;
}

const StaticFiles::File* StaticFiles::find(std::string_view path) const {
  if (path == "/") path = "/index.html";
  auto it = files_.find(std::string(path));
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace odin::http
