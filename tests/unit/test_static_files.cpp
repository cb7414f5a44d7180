// Unit tests of the page's static files: the page's folder at "/" and the JavaScript SDK's
// modules under "/sdk/" (WS_WEB_ROOT, WS_SDK_ROOT), each read once into memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "http/static_files.hpp"

namespace odin {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("odin-static-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  void write(const std::string& name, const std::string& body) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary) << body;
  }
  std::string str(const std::string& sub = "") const { return (path_ / sub).string(); }

 private:
  fs::path path_;
};

TEST(StaticFiles, PageAtTheRootAndTheSdkUnderItsPrefix) {
  TempDir dir;
  dir.write("web/index.html", "<html></html>");
  dir.write("web/app.js", "import './sdk/odin-client.js';");
  dir.write("web/nested/skipped.js", "not served");
  dir.write("sdk/odin-client.js", "export class OdinClient {}");
  dir.write("sdk/odin-client.d.ts", "export declare class OdinClient {}");

  http::StaticFiles files;
  EXPECT_EQ(files.load(dir.str("web")), 2u);  // subfolders are not read
  EXPECT_EQ(files.load(dir.str("sdk"), "/sdk/"), 2u);

  const auto* index = files.find("/");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->body, "<html></html>");
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  const auto* client = files.find("/sdk/odin-client.js");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->body, "export class OdinClient {}");
  EXPECT_EQ(client->content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(files.find("/app.js"), nullptr);
  EXPECT_EQ(files.find("/odin-client.js"), nullptr);  // only under its prefix
  EXPECT_EQ(files.find("/sdk/app.js"), nullptr);
  EXPECT_EQ(files.find("/nested/skipped.js"), nullptr);
  EXPECT_EQ(files.find("/sdk/"), nullptr);
}

TEST(StaticFiles, AMissingFolderLoadsNothing) {
  TempDir dir;
  http::StaticFiles files;
  EXPECT_EQ(files.load(dir.str("absent")), 0u);
  EXPECT_EQ(files.load(dir.str("absent"), "/sdk/"), 0u);
  EXPECT_EQ(files.find("/"), nullptr);
}

}  // namespace
}  // namespace odin
