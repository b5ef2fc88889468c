// Dependencies point one way (STYLE.md): protocol/ and routing/ are pure
// (standard library and Abseil only), protocol knows nothing of routing,
// routing nothing of sockets, and proxy/ and control/ never include each
// other — except proxy/main.cc, which wires them. This test reads every
// source file's #include lines and fails on the first that points the wrong way.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Rule {
  std::string folder;                  // the folder whose files are checked
  std::vector<std::string> forbidden;  // include prefixes they must not use
  std::vector<std::string> exempt;     // files allowed to break the rule
};

std::vector<std::string> Includes(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> out;
  static const std::regex kInclude(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, kInclude)) out.push_back(m[1]);
  return out;
}

TEST(LayeringTest, IncludesPointDownward) {
  const std::vector<Rule> rules = {
      {"protocol", {"routing/", "control/", "proxy/", "boost/", "openssl/", "libpq", "hiredis/", "yaml-cpp/", "spdlog/",
                    "prometheus/"}, {}},
      {"routing", {"control/", "proxy/", "boost/", "openssl/", "libpq", "hiredis/", "yaml-cpp/", "spdlog/",
                   "prometheus/"}, {}},
      {"control", {"proxy/"}, {}},
      {"proxy", {"control/", "libpq", "hiredis/"}, {"proxy/main.cc"}},
  };
  int checked = 0;
  for (const auto& rule : rules) {
    const fs::path root = fs::path(TURNOUT_SOURCE_DIR) / rule.folder;
    ASSERT_TRUE(fs::is_directory(root)) << root;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      const auto ext = entry.path().extension();
      if (ext != ".h" && ext != ".cc" && ext != ".inc") continue;
      const std::string rel = fs::relative(entry.path(), TURNOUT_SOURCE_DIR).string();
      if (std::find(rule.exempt.begin(), rule.exempt.end(), rel) != rule.exempt.end()) continue;
      ++checked;
      for (const auto& inc : Includes(entry.path()))
        for (const auto& bad : rule.forbidden)
          EXPECT_NE(inc.rfind(bad, 0), 0u) << rel << " includes " << inc << " (" << rule.folder
                                           << "/ must not depend on " << bad << ")";
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
