// Dependencies point one way (STYLE.md): protocol/ and routing/ are pure
// (standard library and Abseil only), protocol knows nothing of routing,
// routing nothing of sockets, and proxy/ and control/ never include each
// other — except proxy/main.cc, which wires them. This test reads every
// source file's #include lines and fails on the first that points the wrong way.
// Pure also means no system I/O in protocol/ and routing/: no files, sockets,
// descriptors or polling (the journal's file is proxy/journal_file.h behind
// routing/journal_sink.h).
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

// System I/O headers, forbidden in the pure folders. <cstdio> is allowed:
// the codecs use std::snprintf to format numbers (an LSN, a RESP double),
// which is formatting, not I/O; PureFoldersCallNoStdio keeps it that way.
// <stdio.h> is not: <cstdio> is the C++ spelling used here.
const std::vector<std::string> kSystemIo = {
    "fstream", "iostream", "unistd.h", "fcntl.h", "sys/", "filesystem", "netinet/", "arpa/", "netdb.h",
    "poll.h", "dirent.h", "termios.h", "linux/", "stdio.h",
};

std::vector<std::string> With(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Every .h/.cc/.inc under `folder`, relative to the source tree.
std::vector<fs::path> Sources(const std::string& folder) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(TURNOUT_SOURCE_DIR) / folder)) {
    const auto ext = entry.path().extension();
    if (ext == ".h" || ext == ".cc" || ext == ".inc") out.push_back(entry.path());
  }
  return out;
}

TEST(LayeringTest, IncludesPointDownward) {
  const std::vector<Rule> rules = {
      {"protocol", With({"routing/", "control/", "proxy/", "boost/", "openssl/", "libpq", "hiredis/", "yaml-cpp/",
                         "spdlog/", "prometheus/"}, kSystemIo), {}},
      {"routing", With({"control/", "proxy/", "boost/", "openssl/", "libpq", "hiredis/", "yaml-cpp/", "spdlog/",
                        "prometheus/"}, kSystemIo), {}},
      {"control", {"proxy/"}, {}},
      {"proxy", {"control/", "libpq", "hiredis/"}, {"proxy/main.cc"}},
      // The secondary-work engine both protocols share: no protocol in it.
      {"proxy/secondary", {"proxy/pg/", "proxy/redis/", "protocol/pg/", "protocol/resp/"}, {}},
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

// <cstdio> stays allowed in the pure folders for formatting only: no stdio
// stream, file or process call.
TEST(LayeringTest, PureFoldersCallNoStdio) {
  static const std::regex kStdioIo(
      R"(\b(FILE|fopen|fdopen|freopen|popen|fread|fwrite|fgets|fputs|fprintf|printf|puts|perror|fflush|)"
      R"(fclose|tmpfile|stdin|stdout|stderr)\b)");
  int checked = 0;
  for (const std::string folder : {"protocol", "routing"}) {
    for (const auto& file : Sources(folder)) {
      std::ifstream in(file);
      std::string line;
      int number = 0;
      ++checked;
      while (std::getline(in, line)) {
        ++number;
        const auto comment = line.find("//");
        const std::string code = line.substr(0, comment);
        EXPECT_FALSE(std::regex_search(code, kStdioIo))
            << fs::relative(file, TURNOUT_SOURCE_DIR).string() << ":" << number << " does I/O: " << line;
      }
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
