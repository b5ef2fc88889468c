#include "proxy/redis/redis_commands.h"

namespace turnout::proxy::redis {

namespace resp = protocol::resp;
using routing::RequestClass;

PubSubKind Specials::PubSubOf(const resp::CommandInfo* i) const {
  if (i == subscribe) return PubSubKind::kSubscribe;
  if (i == unsubscribe) return PubSubKind::kUnsubscribe;
  if (i == psubscribe) return PubSubKind::kPSubscribe;
  if (i == punsubscribe) return PubSubKind::kPUnsubscribe;
  if (i == ssubscribe) return PubSubKind::kSSubscribe;
  if (i == sunsubscribe) return PubSubKind::kSUnsubscribe;
  return PubSubKind::kNotPubSub;
}


const Specials& Special() {
  static const Specials s;
  return s;
}

const resp::CommandInfo& UnknownCommandInfo() {
  static const resp::CommandInfo info = [] {
    resp::CommandInfo i;
    i.name = "UNKNOWN";
    i.full_name = "UNKNOWN";
    i.arity = -1;
    i.command_class = resp::CommandClass::kWrite;
    i.is_write = true;
    i.deterministic = false;
    return i;
  }();
  return info;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

RequestClass ClassOf(const resp::CommandInfo& info) {
  switch (info.command_class) {
    case resp::CommandClass::kRead: return RequestClass::kRead;
    case resp::CommandClass::kWrite: return RequestClass::kWrite;
    case resp::CommandClass::kAdmin: return RequestClass::kAdmin;
    // Subscribers attach to the authoritative side (DESIGN.md §4): the
    // session class is the write rule's primary without secondaries.
    case resp::CommandClass::kPubSub: return RequestClass::kSession;
    case resp::CommandClass::kTransaction: return RequestClass::kTxnControl;
    case resp::CommandClass::kConnection: return RequestClass::kSession;
    case resp::CommandClass::kBlocking:
    case resp::CommandClass::kScripting: return info.is_write ? RequestClass::kWrite : RequestClass::kRead;
  }
  return RequestClass::kWrite;
}

// server.c processCommand: "unknown command '%.128s', with args beginning with: %s".
std::string UnknownCommandMessage(std::span<const std::string_view> args) {
  std::string msg = "ERR unknown command '";
  msg.append(args[0].substr(0, 128));
  msg.append("', with args beginning with: ");
  std::size_t len = 0;
  for (std::size_t i = 1; i < args.size() && len < 128; ++i) {
    const std::string_view a = args[i].substr(0, 128 - len);
    msg.push_back('\'');
    msg.append(a);
    msg.append("' ");
    len += a.size() + 3;
  }
  return msg;
}

// server.c processCommand: "unknown subcommand '%.128s'. Try %s HELP."
std::string UnknownSubcommandMessage(std::span<const std::string_view> args) {
  std::string msg = "ERR unknown subcommand '";
  msg.append(args[1].substr(0, 128));
  msg.append("'. Try ");
  for (char c : args[0]) msg.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c);
  msg.append(" HELP.");
  return msg;
}

std::string LowerFullName(const resp::CommandInfo& info) {
  std::string s(info.full_name);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return s;
}

bool ValidClientName(std::string_view name) {
  for (char c : name)
    if (c < '!' || c > '~') return false;
  return true;
}


}  // namespace turnout::proxy::redis
