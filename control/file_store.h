#pragma once
// The embedded state store: one JSON file holding every migration.
// Writes go to a temporary file in the same folder, fsync, rename over the
// old file, fsync the folder: a crash leaves the old or the new file, never a
// torn one. A file that exists but cannot be read or parsed stops startup
// with a clear message and is never overwritten (an operator must look).
// Symmetrically the store never writes a file it could not read back: the
// text is parsed again with the loader and compared before the rename.

#include <boost/json/value.hpp>

#include <map>
#include <mutex>
#include <string>

#include "control/state_store.h"

namespace turnout::control {

class FileStateStore final : public StateStore {
 public:
  // Reads the file (absent is fine: an empty store). Fails on a corrupt file.
  static absl::StatusOr<std::unique_ptr<FileStateStore>> Open(const std::string& path);

  absl::StatusOr<std::vector<Migration>> LoadAll() override;
  absl::StatusOr<std::optional<Migration>> Load(const std::string& id) override;
  absl::Status Put(const Migration& m, std::uint64_t expected_revision) override;
  absl::Status Remove(const std::string& id, std::uint64_t expected_revision) override;
  void Watch(std::function<void(const StoreChange&)>) override {}
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockExclusive(const std::string& name) override;
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockShared(const std::string& name) override;
  bool Healthy() const override { return true; }

  // The loader, shared by Open() and the check before every write.
  struct Parsed {
    boost::json::value root;
    std::map<std::string, Migration> migrations;
  };
  static absl::StatusOr<Parsed> ParseStateText(const std::string& text);

 private:
  // OK when `text` (the serialization of `root`) loads back to `root`.
  static absl::Status CheckRoundTrip(const boost::json::value& root, const std::string& text);
  explicit FileStateStore(std::string path) : path_(std::move(path)) {}
  absl::Status WriteLocked();

  const std::string path_;
  std::mutex mu_;
  std::map<std::string, Migration> migrations_;
  std::map<std::string, bool> locks_;
  std::map<std::string, int> shared_locks_;  // holders of each shared lock
};

}  // namespace turnout::control
