#include "control/file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "control/api_status.h"

namespace turnout::control {
namespace json = boost::json;

namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write " + path);
    }
    done += static_cast<std::size_t>(n);
  }
  return absl::OkStatus();
}

// Releases the in-process lock on destruction.
class FileLock final : public ExclusiveLock {
 public:
  FileLock(std::mutex& mu, std::map<std::string, bool>& locks, std::string name)
      : mu_(mu), locks_(locks), name_(std::move(name)) {}
  ~FileLock() override {
    std::lock_guard<std::mutex> l(mu_);
    locks_.erase(name_);
  }

 private:
  std::mutex& mu_;
  std::map<std::string, bool>& locks_;
  std::string name_;
};

class SharedFileLock final : public ExclusiveLock {
 public:
  SharedFileLock(std::mutex& mu, std::map<std::string, int>& holders, std::string name)
      : mu_(mu), holders_(holders), name_(std::move(name)) {}
  ~SharedFileLock() override {
    std::lock_guard<std::mutex> l(mu_);
    if (--holders_[name_] == 0) holders_.erase(name_);
  }

 private:
  std::mutex& mu_;
  std::map<std::string, int>& holders_;
  std::string name_;
};

// Equal as the loader sees values. Doubles may differ in the last bits: the
// parser of Boost 1.81 reads them imprecisely, here and at every load alike,
// so such a difference is not a loss.
bool SameValue(const json::value& a, const json::value& b) {
  if (a.is_double() || b.is_double()) {
    if (!a.is_double() || !b.is_double()) return false;
    const double x = a.get_double(), y = b.get_double();
    if (x == y || (std::isnan(x) && std::isnan(y))) return true;
    return std::fabs(x - y) <= 1e-12 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.is_array() && b.is_array()) {
    const auto &u = a.get_array(), &v = b.get_array();
    if (u.size() != v.size()) return false;
    for (std::size_t i = 0; i < u.size(); ++i)
      if (!SameValue(u[i], v[i])) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    const auto &u = a.get_object(), &v = b.get_object();
    if (u.size() != v.size()) return false;
    for (const auto& kv : u) {
      const auto* other = v.if_contains(kv.key());
      if (other == nullptr || !SameValue(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;  // strings, bools, null, and integers (int64 and uint64 by value)
}

}  // namespace

absl::Status FileStateStore::CheckRoundTrip(const json::value& root, const std::string& text) {
  auto parsed = ParseStateText(text);
  if (!parsed.ok()) return parsed.status();
  if (!SameValue(parsed->root, root)) return absl::DataLossError("the parsed text differs from what was serialized");
  // What the loader makes of each entry must store back to the same value.
  const auto& written = root.as_object().at("migrations").as_array();
  if (written.size() != parsed->migrations.size()) return absl::DataLossError("migrations lost in the round trip");
  for (const auto& v : written) {
    const auto* id = v.is_object() ? v.as_object().if_contains("id") : nullptr;
    if (id == nullptr || !id->is_string()) return absl::DataLossError("a migration without an id");
    auto it = parsed->migrations.find(std::string(id->as_string()));
    if (it == parsed->migrations.end() || !SameValue(json::value(MigrationToStored(it->second)), v))
      return absl::DataLossError(absl::StrCat("migration ", std::string(id->as_string()), " reads back differently"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileStateStore>> FileStateStore::Open(const std::string& path) {
  std::unique_ptr<FileStateStore> store(new FileStateStore(path));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return store;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("state store ", path, ": cannot read: ", std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseStateText(ss.str());
  if (!parsed.ok())
    return absl::DataLossError(absl::StrCat("state store ", path, " is corrupt (", parsed.status().message(),
                                            "); refusing to start and leaving it untouched"));
  store->migrations_ = std::move(parsed->migrations);
  return store;
}

absl::StatusOr<FileStateStore::Parsed> FileStateStore::ParseStateText(const std::string& text) {
  // Deeper than an admin body may be (32): a stored migration nests a body's
  // values a few levels down (migrations[] → history[] → before → strategy).
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code jec;
  Parsed out;
  out.root = json::parse(text, jec, {}, options);
  if (jec) return absl::InvalidArgumentError(jec.message());
  if (!out.root.is_object() || !out.root.as_object().contains("migrations") ||
      !out.root.as_object().at("migrations").is_array())
    return absl::InvalidArgumentError("expected {\"migrations\": [...]}");
  for (const auto& v : out.root.as_object().at("migrations").as_array()) {
    auto m = MigrationFromStored(v);
    if (!m.ok()) return m.status();
    const std::string id = m->id;
    if (!out.migrations.emplace(id, *std::move(m)).second)
      return absl::InvalidArgumentError(absl::StrCat("migration ", id, " appears twice"));
  }
  return out;
}

absl::StatusOr<std::vector<Migration>> FileStateStore::LoadAll() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Migration> out;
  for (const auto& [id, m] : migrations_) out.push_back(m);
  return out;
}

absl::StatusOr<std::optional<Migration>> FileStateStore::Load(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return std::optional<Migration>();
  return std::optional<Migration>(it->second);
}

absl::Status FileStateStore::Put(const Migration& m, std::uint64_t expected_revision) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = migrations_.find(m.id);
  const std::uint64_t current = it == migrations_.end() ? 0 : it->second.revision;
  if (current != expected_revision)
    return absl::AbortedError(absl::StrCat("migration ", m.id, " changed concurrently (revision ", current, ")"));
  const auto previous = it == migrations_.end() ? std::optional<Migration>() : std::optional<Migration>(it->second);
  migrations_[m.id] = m;
  auto st = WriteLocked();
  if (!st.ok()) {
    if (previous) migrations_[m.id] = *previous;
    else migrations_.erase(m.id);
  }
  return st;
}

absl::Status FileStateStore::Remove(const std::string& id, std::uint64_t expected_revision) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return absl::NotFoundError(absl::StrCat("migration ", id, " not found"));
  if (it->second.revision != expected_revision)
    return absl::AbortedError(absl::StrCat("migration ", id, " changed concurrently"));
  Migration saved = it->second;
  migrations_.erase(it);
  auto st = WriteLocked();
  if (!st.ok()) migrations_[id] = std::move(saved);
  return st;
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> FileStateStore::TryLockExclusive(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  if (locks_.count(name) || shared_locks_.count(name)) return std::unique_ptr<ExclusiveLock>();
  locks_[name] = true;
  return std::unique_ptr<ExclusiveLock>(new FileLock(mu_, locks_, name));
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> FileStateStore::TryLockShared(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  if (locks_.count(name)) return std::unique_ptr<ExclusiveLock>();
  ++shared_locks_[name];
  return std::unique_ptr<ExclusiveLock>(new SharedFileLock(mu_, shared_locks_, name));
}

absl::Status FileStateStore::WriteLocked() {
  json::array all;
  for (const auto& [id, m] : migrations_) all.push_back(MigrationToStored(m));
  const json::value root = json::object{{"version", 1}, {"migrations", std::move(all)}};
  const std::string text = json::serialize(root) + "\n";
  // Never write what Open() would refuse: that file would stop the next
  // start (a name with a raw byte once did). Read the text back with the
  // same parser and compare; on any difference the old file stays.
  if (auto st = CheckRoundTrip(root, text); !st.ok())
    return WithDetails(absl::InternalError(absl::StrCat("state store ", path_, ": refusing to write a state that would not read back (",
                                                        st.message(), "); the file is unchanged")),
                       "nothing was changed; report this request, it should have been refused earlier");

  const std::filesystem::path target(path_);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const std::string tmp = (dir / (target.filename().string() + ".tmp")).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open " + tmp);
  auto st = WriteAll(fd, text, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = Errno("fsync " + tmp);
  ::close(fd);
  if (!st.ok()) return st;
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("rename " + tmp);
  // The rename is durable only once the folder entry is on disk.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno("open " + dir.string());
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Errno("fsync " + dir.string());
  return absl::OkStatus();
}

}  // namespace turnout::control
