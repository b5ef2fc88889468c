#pragma once
// Sans-I/O pieces of the Redis session's secondary work (DESIGN.md §2, §4):
// the replies a dual-write or shadow request compares, how they are compared
// and rendered for the journal and the shadow samples, the DUMP/PTTL →
// RESTORE copy of keys touched by non-deterministic writes, and the key
// rewrite of shadow writes under a scratch prefix. No sockets, no clocks:
// the session (redis_session.cc) and its secondary channels
// (secondary_channel.h) do the I/O.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/command_table.h"
#include "proxy/session.h"

namespace turnout::proxy::redis {

// One reply frame as seen by a comparison: its bytes up to a cap (replies
// larger than the buffer arrive in pieces), its total length and a hash of
// every byte, so two large replies still compare byte for byte.
class CapturedReply {
 public:
  static constexpr std::uint64_t kHashSeed = 0xcbf29ce484222325ull;  // FNV-1a 64

  void Append(std::string_view chunk, std::size_t cap);
  // The whole frame in one piece.
  void Set(std::string_view frame, std::size_t cap) {
    Clear();
    Append(frame, cap);
  }
  void Clear();

  bool present() const noexcept { return length_ != 0; }
  bool truncated() const noexcept { return bytes_.size() < length_; }
  // '-' or '!' (RESP3 blob error); attributes are not looked through.
  bool is_error() const noexcept { return first_ == '-' || first_ == '!'; }
  char first_byte() const noexcept { return first_; }
  std::size_t length() const noexcept { return length_; }
  std::uint64_t hash() const noexcept { return hash_; }
  // The complete frame when !truncated(), else its first bytes.
  const std::string& bytes() const noexcept { return bytes_; }

 private:
  std::string bytes_;
  std::size_t length_ = 0;
  std::uint64_t hash_ = kHashSeed;
  char first_ = 0;
};

// How two replies to the same request compare.
enum class CompareMode : std::uint8_t {
  kFull,          // value, type, length; errors as errors
  kUnordered,     // as kFull, the top-level array as a multiset (COMMAND
                  // tip nondeterministic_output_order: SMEMBERS, HKEYS ...)
  kOutcomeOnly,   // error or not, and the reply type (shadow writes on
                  // scratch keys, whose values cannot match)
};

// nullopt when the replies agree. Byte-equal replies agree at once; others
// are decoded and compared with protocol::resp::CompareReplies (sets and
// maps without order). A reply on one side only being an error is kError.
// Truncated replies that differ in bytes are a kValue mismatch (kLength
// when their lengths differ) unless the mode is kUnordered, where a
// truncated pair is not judged (nullopt).
std::optional<RouteRuntime::ShadowMismatch> CompareCaptured(const CapturedReply& primary,
                                                           const CapturedReply& secondary,
                                                           CompareMode mode);

// EXEC of a block that was applied on both sides: the secondary ran only
// the block's deterministic writes, which were at `positions` (0-based) of
// the primary's block, then `copies` RESTORE/DEL commands. Compares those
// writes' elements (and that no copy failed); nullopt when they agree.
std::optional<RouteRuntime::ShadowMismatch> CompareExec(const CapturedReply& primary,
                                                       const CapturedReply& secondary,
                                                       std::span<const std::uint32_t> positions,
                                                       std::size_t copies = 0);

// A SELECT queued inside MULTI: its 0-based index among the commands the
// primary queued, and the database it names (-1: not a valid index, so it
// fails at EXEC and changes nothing).
struct BlockSelect {
  std::uint32_t index = 0;
  int db = -1;
};

// The database a connection is in once EXEC answered `exec_reply` for a
// block whose SELECTs were `selects`, having been in `db_before`. EXEC runs
// the queued commands in order and a SELECT switches the connection as it
// runs (redis multi.c execCommand), so the last SELECT whose element is not
// an error wins; a WATCH abort (nil) or EXECABORT (error) changes nothing.
// `streamed`: only the tail of a reply too large for the buffer is at hand;
// such a reply is always a committed array (an abort is one short frame),
// so every valid SELECT is taken as applied.
int DbAfterExec(std::string_view exec_reply, std::span<const BlockSelect> selects, int db_before,
                bool streamed = false);

// "SET user:1 \"two words\"": arguments separated by spaces, quoted (with
// C-style escapes) when they hold spaces, quotes or non-printable bytes, as
// redis-cli prints them; at most `max_bytes` (then "...").
std::string RenderArgs(std::span<const std::string_view> args, std::size_t max_bytes = 4096);
// A RESP command frame rendered as RenderArgs; the escaped raw bytes when it
// does not parse.
std::string RenderCommandFrame(std::string_view frame, std::size_t max_bytes = 4096);
// A reply as redis-cli shows it on one line: "OK", "(integer) 3", "(nil)",
// "(error) ERR ...", "\"bar\"", "[1) \"a\", 2) \"b\"]"; a truncated capture
// ends with "... (<n> bytes)".
std::string RenderReply(const CapturedReply& reply, std::size_t max_bytes = 4096);
std::string RenderReply(std::string_view frame, std::size_t max_bytes = 4096);

// The command that makes `key` on the other side what DUMP/PTTL read on the
// authoritative side (DESIGN.md §4): RESTORE key ttl payload REPLACE, or DEL
// key when DUMP answered nil. False (with `error`) when the replies are not
// a DUMP bulk string / nil and a PTTL integer.
bool AppendCopyCommand(std::string_view key, std::string_view dump_frame, std::string_view pttl_frame,
                       std::string& wire, std::string& error);

// Shadow writes (shadow_traffic with shadow_writes, DESIGN.md §2): the
// command with every key argument prefixed, when every key can be found
// (key specs complete, at least one key, not SORT/SORT_RO with BY/GET
// patterns or MIGRATE, whose other arguments name keys too). nullopt: the
// write is not shadowed at all.
std::optional<std::string> RewriteKeysUnderPrefix(const protocol::resp::CommandInfo& info,
                                                  std::span<const std::string_view> args,
                                                  std::string_view prefix);

// The keys of a command, as owned strings (journal entries, copies).
std::vector<std::string> KeysOf(const protocol::resp::CommandInfo& info, std::span<const std::string_view> args);

// Args of a command frame (views into `frame`), for journal entries made
// after the client's buffer has moved on. Empty when it does not parse.
std::vector<std::string_view> ArgsOfFrame(std::string_view frame);

}  // namespace turnout::proxy::redis
