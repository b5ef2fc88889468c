#include "proxy/user_list.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace turnout::proxy {
namespace {

// Reads one token: "quoted ""with"" quotes" or a bare word. Returns false at
// end of line.
bool NextToken(const std::string& line, std::size_t& pos, std::string& out, bool& malformed) {
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
  if (pos >= line.size() || line[pos] == '#') return false;
  out.clear();
  if (line[pos] == '"') {
    ++pos;
    for (;;) {
      if (pos >= line.size()) {
        malformed = true;
        return false;
      }
      if (line[pos] == '"') {
        if (pos + 1 < line.size() && line[pos + 1] == '"') {
          out += '"';
          pos += 2;
          continue;
        }
        ++pos;
        return true;
      }
      out += line[pos++];
    }
  }
  while (pos < line.size() && line[pos] != ' ' && line[pos] != '\t') out += line[pos++];
  return true;
}

}  // namespace

absl::StatusOr<UserList> UserList::Parse(const std::string& text, const std::string& source) {
  UserList list;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::size_t pos = 0;
    std::string user, secret, extra;
    bool malformed = false;
    if (!NextToken(line, pos, user, malformed)) {
      if (malformed) return absl::InvalidArgumentError(absl::StrCat(source, ":", number, ": unterminated quote"));
      continue;  // blank or comment
    }
    if (!NextToken(line, pos, secret, malformed) || NextToken(line, pos, extra, malformed) || malformed)
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", number, ": expected \"user\" \"secret\""));
    if (user.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ":", number, ": empty user name"));
    list.users_[user] = secret;
  }
  return list;
}

absl::StatusOr<UserList> UserList::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read users file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

const std::string* UserList::Secret(const std::string& user) const {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

}  // namespace turnout::proxy
