// The page's files (web/, and the JavaScript SDK's modules under /sdk/), read once at start-up and
// served from memory.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace odin::http {

class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string_view content_type;
  };
  // Loads every regular file directly inside `root` (no subfolders), each served as
  // `prefix` + its name (prefix "/" or e.g. "/sdk/"). Returns the count loaded from `root`.
  size_t load(const std::string& root, std::string_view prefix = "/");
  // `path` as requested ("/" means index.html); nullptr when there is no such file.
  const File* find(std::string_view path) const;

 private:
  std::unordered_map<std::string, File> files_;
};

}  // namespace odin::http
