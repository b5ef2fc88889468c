#pragma once
// The Redis 7.0 command table: for every command and subcommand its arity,
// one turnout class, Redis' flags, key positions (the legacy first/last/step
// triple and the 7.0 key specs) and whether its effect or reply can differ
// between two servers holding the same data.
//
// The data is generated from a live 7.0 server (COMMAND, COMMAND DOCS) by
// gen_command_table.py into command_table_data.inc; the judgement calls
// (class, is_write, deterministic) are listed at the top of that script.
// Lookups are case-insensitive, allocation-free binary searches over
// constexpr arrays sorted by upper-case name.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace turnout::protocol::resp {

// The single class routing keys on; flags carry the rest.
enum class CommandClass : std::uint8_t {
  kRead,         // readonly data commands (GET, SMEMBERS, DBSIZE, OBJECT ENCODING)
  kWrite,        // data writes, PUBLISH/SPUBLISH (DESIGN §4)
  kAdmin,        // server management and introspection (CONFIG, INFO, DEBUG)
  kPubSub,       // SUBSCRIBE family and PUBSUB introspection
  kTransaction,  // MULTI EXEC DISCARD WATCH UNWATCH
  kConnection,   // AUTH HELLO SELECT PING CLIENT SETNAME ...
  kBlocking,     // always blocks: BLPOP BRPOP BLMOVE BZPOPMIN WAIT ...
  kScripting,    // EVAL* FCALL* SCRIPT FUNCTION (see is_write)
};
std::string_view CommandClassName(CommandClass c) noexcept;

// Redis command flags (COMMAND INFO, server.h CMD_*) and two tips.
namespace cmd_flag {
inline constexpr std::uint32_t kWrite = 1u << 0;
inline constexpr std::uint32_t kReadonly = 1u << 1;
inline constexpr std::uint32_t kDenyoom = 1u << 2;
inline constexpr std::uint32_t kModule = 1u << 3;
inline constexpr std::uint32_t kAdmin = 1u << 4;
inline constexpr std::uint32_t kPubsub = 1u << 5;
inline constexpr std::uint32_t kNoscript = 1u << 6;
inline constexpr std::uint32_t kBlocking = 1u << 7;
inline constexpr std::uint32_t kLoading = 1u << 8;
inline constexpr std::uint32_t kStale = 1u << 9;
inline constexpr std::uint32_t kSkipMonitor = 1u << 10;
inline constexpr std::uint32_t kSkipSlowlog = 1u << 11;
inline constexpr std::uint32_t kAsking = 1u << 12;
inline constexpr std::uint32_t kFast = 1u << 13;
inline constexpr std::uint32_t kNoAuth = 1u << 14;
inline constexpr std::uint32_t kMayReplicate = 1u << 15;
inline constexpr std::uint32_t kNoMandatoryKeys = 1u << 16;
inline constexpr std::uint32_t kNoAsyncLoading = 1u << 17;
inline constexpr std::uint32_t kNoMulti = 1u << 18;
inline constexpr std::uint32_t kMovablekeys = 1u << 19;
inline constexpr std::uint32_t kAllowBusy = 1u << 20;
// Tip: the reply differs between calls or servers (RANDOMKEY, SCAN, TIME).
inline constexpr std::uint32_t kNondeterministicOutput = 1u << 21;
// Tip: the reply's order is undefined (SMEMBERS, HGETALL, KEYS): compare
// it as a set (CompareOptions::unordered).
inline constexpr std::uint32_t kNondeterministicOutputOrder = 1u << 22;
}  // namespace cmd_flag

// Key spec flags (COMMAND INFO key specs, server.h CMD_KEY_*).
namespace key_flag {
inline constexpr std::uint16_t kRo = 1u << 0;
inline constexpr std::uint16_t kRw = 1u << 1;
inline constexpr std::uint16_t kOw = 1u << 2;
inline constexpr std::uint16_t kRm = 1u << 3;
inline constexpr std::uint16_t kAccess = 1u << 4;
inline constexpr std::uint16_t kUpdate = 1u << 5;
inline constexpr std::uint16_t kInsert = 1u << 6;
inline constexpr std::uint16_t kDelete = 1u << 7;
inline constexpr std::uint16_t kNotKey = 1u << 8;
inline constexpr std::uint16_t kIncomplete = 1u << 9;
inline constexpr std::uint16_t kVariableFlags = 1u << 10;
}  // namespace key_flag

// One key spec (https://redis.io/docs/reference/key-specs/).
struct KeySpec {
  enum class Begin : std::uint8_t { kIndex, kKeyword, kUnknown };
  enum class Find : std::uint8_t { kRange, kKeynum, kUnknown };
  std::uint16_t flags = 0;
  Begin begin = Begin::kUnknown;
  int index = 0;                 // kIndex
  std::string_view keyword;      // kKeyword
  int startfrom = 0;             // kKeyword; negative counts from the end
  Find find = Find::kUnknown;
  int lastkey = 0;               // kRange; negative counts from the end
  int limit = 0;                 // kRange with lastkey < 0: 1/limit of the rest
  int keynumidx = 0;             // kKeynum, relative to the begin index
  int firstkey = 0;              // kKeynum, relative to the begin index
  int keystep = 1;               // kRange, kKeynum
};

struct CommandInfo {
  std::string_view name;       // upper case; a subcommand's own name ("SETNAME")
  std::string_view full_name;  // "GET", "CLIENT|SETNAME" (Redis' spelling, upper case)
  std::string_view group;      // COMMAND DOCS group: "string", "server", "connection" ...
  int arity = 0;               // Redis arity: N exact, -N at least N (name included)
  CommandClass command_class = CommandClass::kAdmin;
  std::uint32_t flags = 0;     // cmd_flag bits
  int first_key = 0;           // legacy COMMAND INFO triple
  int last_key = 0;
  int key_step = 0;
  bool is_write = false;       // routing sends it to the write side(s)
  bool deterministic = true;   // same effect and reply on two equal servers
  std::span<const KeySpec> key_specs;
  std::span<const CommandInfo> subcommands;  // sorted by name

  bool has(std::uint32_t flag) const noexcept { return (flags & flag) != 0; }
  bool has_subcommands() const noexcept { return !subcommands.empty(); }
};

// The whole table, sorted by name (for tests and diagnostics).
std::span<const CommandInfo> AllCommands() noexcept;

// Case-insensitive lookup of a top-level command; nullptr if unknown.
const CommandInfo* FindCommand(std::string_view name) noexcept;
// Case-insensitive lookup of `sub` among `parent`'s subcommands.
const CommandInfo* FindSubcommand(const CommandInfo& parent, std::string_view sub) noexcept;
// Resolves args[0] (and args[1] for containers such as CLIENT, CONFIG,
// OBJECT, XINFO): the subcommand's info, or the container's when only the
// name was given (Redis then answers with an arity error), or nullptr for an
// unknown command or subcommand.
const CommandInfo* LookupCommand(std::span<const std::string_view> args) noexcept;

// Redis' arity rule (server.c processCommand): exact when positive, at
// least -arity when negative.
inline bool ArityOk(const CommandInfo& info, std::size_t argc) noexcept {
  return info.arity >= 0 ? argc == static_cast<std::size_t>(info.arity)
                         : argc >= static_cast<std::size_t>(-info.arity);
}

using KeyIndices = absl::InlinedVector<std::uint32_t, 8>;

// Appends to `out` (after clearing it) the indices into `args` (args[0] is
// the command name; for a subcommand args[1] its name) of the key
// arguments, as COMMAND GETKEYS would report them in Redis 7.0: key specs,
// skipping NOT_KEY ones (shard channels), plus the getkeys procedures for
// SORT ... STORE and MIGRATE ... KEYS. Malformed arguments (a bad numkeys,
// too few arguments) give no keys; the server reports the error. Returns
// false when the arguments are malformed for the key specs.
bool ExtractKeys(const CommandInfo& info, std::span<const std::string_view> args,
                 KeyIndices& out) noexcept;

// XREAD and XREADGROUP block only when given BLOCK (t_stream.c xreadCommand);
// true for those with BLOCK and for every command of class kBlocking.
bool IsBlockingInvocation(const CommandInfo& info, std::span<const std::string_view> args) noexcept;

}  // namespace turnout::protocol::resp
