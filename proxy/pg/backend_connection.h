#pragma once
// One session's connection to one backend (DESIGN.md §3: "each client
// session owns at most one connection per backend, opened lazily"): TCP,
// the SSLRequest dance and TLS per `tls.mode`, the StartupMessage with the
// client's parameters, login with the backend's own credentials (SCRAM-SHA-256,
// md5, cleartext), and the ParameterStatus / BackendKeyData it hands out.
// After Open() the session relays through stream() and in(); the connection
// keeps its receive buffer and decoder for its whole life.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "protocol/io_buffer.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "proxy/asio.h"
#include "proxy/credential_check.h"
#include "proxy/pg/session_state.h"
#include "proxy/stream.h"
#include "routing/config.h"
#include "routing/plan.h"

namespace turnout::proxy::pg {

struct LoginParams {
  std::string user;
  std::string password;  // the backend's; empty when none is configured
  std::string database;
  // Client startup parameters to pass on (application_name, client_encoding,
  // DateStyle, TimeZone, options, ...), in the client's order.
  std::vector<std::pair<std::string, std::string>> options;
  ScramKeyCache* scram_keys = nullptr;  // the process' (ProxyServices); null: derive at each login
};

// Why Open() failed, in a form the session can show the client.
struct OpenFailure {
  std::string error_frame;  // the backend's own ErrorResponse, forwarded as is
  std::string sqlstate = "08006";
  std::string message;      // turnout's text when there is no error_frame
};

class BackendConnection {
 public:
  BackendConnection(const routing::Backend& backend, routing::Side side, std::size_t buffer_bytes,
                    std::size_t max_message_bytes);
  ~BackendConnection();
  BackendConnection(const BackendConnection&) = delete;
  BackendConnection& operator=(const BackendConnection&) = delete;

  // Connects and logs in, all within `timeout`. On failure fills `failure`.
  awaitable<bool> Open(asio::ssl::context* tls, const LoginParams& login, absl::Duration timeout,
                       OpenFailure* failure);
  // Brings the connection from the state it was last synced to (nothing,
  // when fresh) to the session's recorded state (settings, prepared
  // statements, LISTEN). Errors are reported in `failure` (the connection
  // stays usable; a statement that fails here would fail for the client
  // too, e.g. a dropped table behind a prepared statement).
  awaitable<bool> Replay(const SessionState& state, std::string* failure);
  // The connection has the session's state (it was the primary until now).
  void MarkSynced(const SessionState::Snapshot& s) { synced_ = s; }
  const SessionState::Snapshot& synced() const noexcept { return synced_; }

  // Replies the session's reader drops instead of relaying: those of a
  // replay written while the reader owns the socket (counted in
  // ReadyForQuery), with the errors they carried.
  int swallow_replies = 0;
  std::string swallow_errors;

  const routing::Backend& backend() const noexcept { return *backend_; }
  routing::Side side() const noexcept { return side_; }
  bool ready() const noexcept { return ready_; }
  Stream& stream() noexcept { return *stream_; }
  protocol::IoBuffer& in() noexcept { return in_; }
  protocol::pg::FrameDecoder& decoder() noexcept { return decoder_; }

  std::int32_t process_id() const noexcept { return process_id_; }
  std::int32_t secret_key() const noexcept { return secret_key_; }
  // ParameterStatus values as this backend last reported them.
  const std::vector<std::pair<std::string, std::string>>& parameters() const noexcept { return parameters_; }
  std::string_view Parameter(std::string_view name) const noexcept;
  void SetParameter(std::string_view name, std::string_view value);

  // Best effort Terminate, then close.
  awaitable<void> Terminate();
  void Close() noexcept;

  // ---- reuse by another session (proxy/pg/server_pool.h)
  // Logged in, nothing half-read or owed to a reader: the session that
  // used it stopped between the server's messages. (Its pending read was
  // cancelled while no byte was on its way: a TLS stream's engine holds no
  // partial record then. Reset() proves the stream whole before it is
  // parked: a broken one fails its MAC, never passes silently.)
  bool Reusable() const noexcept;
  // Runs `query` (the pool's reset) and takes the server's ParameterStatus
  // on the way; true when it ended idle and without an error.
  awaitable<bool> Reset(std::string_view query);
  // Nothing arrived since it was parked (a server that closed it, or
  // terminated its backend, has said so by now): it may serve a client.
  bool Quiet() noexcept;
  // Serves a session of another configuration snapshot (the same login).
  void Rebind(const routing::Backend& backend, routing::Side side) noexcept;
  // The login it was opened with, as the pool files it (ServerPool::Key);
  // empty when its backend has no pool.
  const std::string& pool_key() const noexcept { return pool_key_; }
  void set_pool_key(std::string key) { pool_key_ = std::move(key); }
  std::chrono::steady_clock::time_point opened_at() const noexcept { return opened_at_; }

 private:
  awaitable<bool> OpenImpl(asio::ssl::context* tls, const LoginParams& login, OpenFailure* failure);
  awaitable<bool> Login(const LoginParams& login, OpenFailure* failure);
  // Reads one whole frame (it must fit the buffer); the view lasts until the
  // next call. The previous frame is consumed first.
  awaitable<std::error_code> ReadFrame(protocol::pg::Frame* frame);
  void DropLastFrame() noexcept;
  awaitable<std::error_code> WriteAll(std::string_view bytes);
  // The server's answers to requests of turnout's own, up to the
  // `replies`-th ReadyForQuery: ParameterStatus taken on the way, error
  // texts appended to `errors` (when given).
  struct Answers {
    std::error_code ec;  // the stream broke
    bool failed = false;  // an ErrorResponse (or a malformed ReadyForQuery)
    protocol::pg::TransactionStatus status = protocol::pg::TransactionStatus::kIdle;  // the last one's
  };
  awaitable<Answers> ReadAnswers(int replies, std::string* errors);

  const routing::Backend* backend_;
  routing::Side side_;
  std::optional<Stream> stream_;
  protocol::IoBuffer in_;
  protocol::pg::FrameDecoder decoder_;
  std::size_t last_frame_size_ = 0;
  bool ready_ = false;
  std::int32_t process_id_ = 0;
  std::int32_t secret_key_ = 0;
  std::vector<std::pair<std::string, std::string>> parameters_;
  SessionState::Snapshot synced_;
  std::chrono::steady_clock::time_point opened_at_ = std::chrono::steady_clock::now();
  std::string pool_key_;
};

}  // namespace turnout::proxy::pg
