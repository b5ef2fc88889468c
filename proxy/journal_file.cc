#include "proxy/journal_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace turnout::proxy {
namespace {

// Writes all of `text`, retrying short writes and EINTR; errno on failure.
bool WriteAll(int fd, std::string_view text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JournalFile>> JournalFile::Open(std::string path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("journal ", path, ": cannot open: ", std::strerror(errno)));
  return std::unique_ptr<JournalFile>(new JournalFile(std::move(path), fd));
}

JournalFile::~JournalFile() {
  if (fd_ >= 0) ::close(fd_);
}

void JournalFile::Load(absl::FunctionRef<void(std::string_view line)> line) const {
  std::ifstream in(path_);
  std::string text;
  while (in && std::getline(in, text)) line(text);
}

absl::Status JournalFile::Append(std::string_view lines) {
  if (!WriteAll(fd_, lines))
    return absl::InternalError(absl::StrCat("journal ", path_, ": write: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status JournalFile::Sync() {
  // fdatasync: the data and the size that reads it back; the journal needs
  // no other metadata (mtime) to be durable.
  if (::fdatasync(fd_) != 0)
    return absl::InternalError(absl::StrCat("journal ", path_, ": fsync: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status JournalFile::Rewrite(std::string_view text) {
  const std::string tmp = path_ + ".compact";
  // Opened for appending: after the rename this descriptor is the journal's.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("journal ", tmp, ": cannot open: ", std::strerror(errno)));
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("journal ", tmp, ": ", what, ": ", std::strerror(err)));
  };
  if (!WriteAll(fd, text)) return fail("write");
  if (::fsync(fd) != 0) return fail("fsync");
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return fail("rename");
  ::close(fd_);
  fd_ = fd;
  // Make the rename durable. Past the rename the new file is the journal
  // whatever this returns, so a failure here is not one of the rewrite.
  const auto slash = path_.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  if (const int dfd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<routing::Journal>> OpenJournalFile(std::string path, routing::Journal::Options options) {
  auto file = JournalFile::Open(std::move(path));
  if (!file.ok()) return file.status();
  return routing::Journal::Open(*std::move(file), options);
}

}  // namespace turnout::proxy
