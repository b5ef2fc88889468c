#include "control/file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

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

}  // namespace

absl::StatusOr<std::unique_ptr<FileStateStore>> FileStateStore::Open(const std::string& path) {
  std::unique_ptr<FileStateStore> store(new FileStateStore(path));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return store;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("state store ", path, ": cannot read: ", std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  boost::system::error_code jec;
  json::value root = json::parse(ss.str(), jec);
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("state store ", path, " is corrupt (", why,
                                            "); refusing to start and leaving it untouched"));
  };
  if (jec) return corrupt(jec.message());
  if (!root.is_object() || !root.as_object().contains("migrations") ||
      !root.as_object().at("migrations").is_array())
    return corrupt("expected {\"migrations\": [...]}");
  for (const auto& v : root.as_object().at("migrations").as_array()) {
    auto m = MigrationFromStored(v);
    if (!m.ok()) return corrupt(m.status().message());
    store->migrations_[m->id] = *std::move(m);
  }
  return store;
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
  if (locks_.count(name)) return std::unique_ptr<ExclusiveLock>();
  locks_[name] = true;
  return std::unique_ptr<ExclusiveLock>(new FileLock(mu_, locks_, name));
}

absl::Status FileStateStore::WriteLocked() {
  json::array all;
  for (const auto& [id, m] : migrations_) all.push_back(MigrationToStored(m));
  const std::string text = json::serialize(json::object{{"version", 1}, {"migrations", std::move(all)}}) + "\n";

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
