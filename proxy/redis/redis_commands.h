#pragma once
// The commands the Redis session answers or tracks itself, resolved once
// against the command table, and the texts of the errors it answers with
// (Redis' own wording, from the server source each names). Pure: no I/O.

#include <span>
#include <string>
#include <string_view>

#include "protocol/resp/command_table.h"
#include "proxy/redis/pubsub_frame.h"
#include "routing/request.h"

namespace turnout::proxy::redis {

struct Specials {
  using Info = protocol::resp::CommandInfo;
  const Info* auth = protocol::resp::FindCommand("AUTH");
  const Info* hello = protocol::resp::FindCommand("HELLO");
  const Info* quit = protocol::resp::FindCommand("QUIT");
  const Info* reset = protocol::resp::FindCommand("RESET");
  const Info* select = protocol::resp::FindCommand("SELECT");
  const Info* ping = protocol::resp::FindCommand("PING");
  const Info* multi = protocol::resp::FindCommand("MULTI");
  const Info* exec = protocol::resp::FindCommand("EXEC");
  const Info* discard = protocol::resp::FindCommand("DISCARD");
  const Info* watch = protocol::resp::FindCommand("WATCH");
  const Info* unwatch = protocol::resp::FindCommand("UNWATCH");
  const Info* subscribe = protocol::resp::FindCommand("SUBSCRIBE");
  const Info* unsubscribe = protocol::resp::FindCommand("UNSUBSCRIBE");
  const Info* psubscribe = protocol::resp::FindCommand("PSUBSCRIBE");
  const Info* punsubscribe = protocol::resp::FindCommand("PUNSUBSCRIBE");
  const Info* ssubscribe = protocol::resp::FindCommand("SSUBSCRIBE");
  const Info* sunsubscribe = protocol::resp::FindCommand("SUNSUBSCRIBE");
  const Info* monitor = protocol::resp::FindCommand("MONITOR");
  const Info* sync = protocol::resp::FindCommand("SYNC");
  const Info* psync = protocol::resp::FindCommand("PSYNC");
  const Info* replconf = protocol::resp::FindCommand("REPLCONF");
  const Info* replicaof = protocol::resp::FindCommand("REPLICAOF");
  const Info* slaveof = protocol::resp::FindCommand("SLAVEOF");
  const Info* client = protocol::resp::FindCommand("CLIENT");
  const Info* client_setname = Sub(client, "SETNAME");
  const Info* client_getname = Sub(client, "GETNAME");
  const Info* client_reply = Sub(client, "REPLY");
  const Info* client_tracking = Sub(client, "TRACKING");
  const Info* client_kill = Sub(client, "KILL");

  static const Info* Sub(const Info* parent, std::string_view name) {
    return parent ? protocol::resp::FindSubcommand(*parent, name) : nullptr;
  }
  PubSubKind PubSubOf(const Info* i) const;
};

// Resolved on first use; immutable after.
const Specials& Special();

// What a command missing from the table is taken for under
// `unknown_commands: passthrough`: a write with no known keys whose effect
// is not known (so it is never dual-written or shadowed).
const protocol::resp::CommandInfo& UnknownCommandInfo();

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
routing::RequestClass ClassOf(const protocol::resp::CommandInfo& info);
std::string LowerFullName(const protocol::resp::CommandInfo& info);
// networking.c clientSetName: names are printable ASCII without spaces.
bool ValidClientName(std::string_view name);

// server.c processCommand's texts for an unknown command / subcommand.
std::string UnknownCommandMessage(std::span<const std::string_view> args);
std::string UnknownSubcommandMessage(std::span<const std::string_view> args);

inline constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
inline constexpr std::string_view kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";
inline constexpr std::string_view kBadName =
    "ERR Client names cannot contain spaces, newlines or special characters.";

}  // namespace turnout::proxy::redis
