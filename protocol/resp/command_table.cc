#include "protocol/resp/command_table.h"

#include <algorithm>

namespace turnout::protocol::resp {
namespace {

#include "protocol/resp/command_table_data.inc"

constexpr char ToUpper(char c) noexcept {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// Compares an upper-case table name with a name in any case, without
// allocating: <0, 0, >0 like strcmp on the upper-cased forms.
int CompareUpper(std::string_view upper, std::string_view any) noexcept {
  std::size_t n = std::min(upper.size(), any.size());
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char a = static_cast<unsigned char>(upper[i]);
    unsigned char b = static_cast<unsigned char>(ToUpper(any[i]));
    if (a != b) return a < b ? -1 : 1;
  }
  if (upper.size() == any.size()) return 0;
  return upper.size() < any.size() ? -1 : 1;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ToUpper(a[i]) != ToUpper(b[i])) return false;
  }
  return true;
}

const CommandInfo* Search(std::span<const CommandInfo> table, std::string_view name) noexcept {
  // Command names are at most ~20 bytes; anything longer is unknown.
  if (name.empty() || name.size() > 64) return nullptr;
  std::size_t lo = 0;
  std::size_t hi = table.size();
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    int c = CompareUpper(table[mid].name, name);
    if (c == 0) return &table[mid];
    if (c < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return nullptr;
}

// util.c string2ll semantics for numkeys, as getKeysUsingKeySpecs uses.
bool ParseNumkeys(std::string_view s, long long& out) noexcept {
  if (s.empty() || s.size() > 20) return false;
  if (s == "0") {
    out = 0;
    return true;
  }
  std::size_t i = 0;
  bool negative = s[0] == '-';
  if (negative) ++i;
  if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned long long d = static_cast<unsigned long long>(s[i] - '0');
    if (v > (~0ULL - d) / 10) return false;
    v = v * 10 + d;
  }
  if (v > (1ULL << 62)) return false;  // far beyond any argc; avoids overflow below
  out = negative ? -static_cast<long long>(v) : static_cast<long long>(v);
  return true;
}

// db.c sortGetKeys: the sorted key, and the key after the last STORE, while
// skipping the arguments of LIMIT (2), GET and BY (1).
void SortKeys(std::span<const std::string_view> args, KeyIndices& out) {
  out.push_back(1);
  std::size_t store = 0;
  for (std::size_t i = 2; i < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "limit")) {
      i += 2;
    } else if (EqualsIgnoreCase(args[i], "store") && i + 1 < args.size()) {
      store = i + 1;
    } else if (EqualsIgnoreCase(args[i], "get") || EqualsIgnoreCase(args[i], "by")) {
      i += 1;
    }
  }
  if (store != 0) out.push_back(static_cast<std::uint32_t>(store));
}

// db.c migrateGetKeys: argv[3], or with an empty argv[3] the keys after KEYS.
bool MigrateKeys(std::span<const std::string_view> args, KeyIndices& out) {
  std::size_t first = 3;
  std::size_t num = 1;
  if (args.size() > 6) {
    for (std::size_t i = 6; i < args.size(); ++i) {
      if (EqualsIgnoreCase(args[i], "keys")) {
        if (!args[3].empty()) return false;
        first = i + 1;
        num = args.size() - first;
        break;
      }
    }
  }
  for (std::size_t i = first; i < first + num && i < args.size(); ++i) {
    out.push_back(static_cast<std::uint32_t>(i));
  }
  return true;
}

}  // namespace

std::string_view CommandClassName(CommandClass c) noexcept {
  switch (c) {
    case CommandClass::kRead: return "read";
    case CommandClass::kWrite: return "write";
    case CommandClass::kAdmin: return "admin";
    case CommandClass::kPubSub: return "pubsub";
    case CommandClass::kTransaction: return "transaction";
    case CommandClass::kConnection: return "connection";
    case CommandClass::kBlocking: return "blocking";
    case CommandClass::kScripting: return "scripting";
  }
  return "unknown";
}

std::span<const CommandInfo> AllCommands() noexcept { return kCommands; }

const CommandInfo* FindCommand(std::string_view name) noexcept { return Search(kCommands, name); }

const CommandInfo* FindSubcommand(const CommandInfo& parent, std::string_view sub) noexcept {
  return Search(parent.subcommands, sub);
}

const CommandInfo* LookupCommand(std::span<const std::string_view> args) noexcept {
  if (args.empty()) return nullptr;
  const CommandInfo* info = FindCommand(args[0]);
  if (info == nullptr || !info->has_subcommands() || args.size() < 2) return info;
  return FindSubcommand(*info, args[1]);
}

bool ExtractKeys(const CommandInfo& info, std::span<const std::string_view> args,
                 KeyIndices& out) noexcept {
  out.clear();
  if (info.full_name == "SORT") {
    if (args.size() < 2) return false;
    SortKeys(args, out);
    return true;
  }
  if (info.full_name == "MIGRATE") {
    if (args.size() < 6) return false;
    return MigrateKeys(args, out);
  }
  // db.c getKeysUsingKeySpecs (Redis 7.0).
  const long long argc = static_cast<long long>(args.size());
  for (const KeySpec& spec : info.key_specs) {
    if ((spec.flags & key_flag::kNotKey) != 0) continue;  // shard channels
    long long first = 0;
    if (spec.begin == KeySpec::Begin::kIndex) {
      first = spec.index;
    } else if (spec.begin == KeySpec::Begin::kKeyword) {
      long long start = spec.startfrom > 0 ? spec.startfrom : argc + spec.startfrom;
      long long end = spec.startfrom > 0 ? argc - 1 : 0;
      for (long long i = start; i != end; i = start <= end ? i + 1 : i - 1) {
        if (i >= argc || i < 1) break;
        if (EqualsIgnoreCase(args[static_cast<std::size_t>(i)], spec.keyword)) {
          first = i + 1;
          break;
        }
      }
      if (first == 0) continue;  // keyword absent: this spec has no keys
    } else {
      continue;
    }

    long long last = 0;
    long long step = 1;
    if (spec.find == KeySpec::Find::kRange) {
      step = spec.keystep;
      if (spec.lastkey >= 0) {
        last = first + spec.lastkey;
      } else if (spec.limit == 0) {
        last = argc + spec.lastkey;
      } else {
        last = first + ((argc - first) / spec.limit + spec.lastkey);
      }
    } else if (spec.find == KeySpec::Find::kKeynum) {
      long long idx = first + spec.keynumidx;
      long long numkeys = 0;
      if (idx >= argc || !ParseNumkeys(args[static_cast<std::size_t>(idx)], numkeys) ||
          numkeys < 0) {
        out.clear();
        return false;
      }
      first += spec.firstkey;
      last = first + numkeys - 1;
      step = spec.keystep;
      if (numkeys == 0) continue;
    } else {
      continue;
    }
    // Out of bounds indicates a syntax error the server will report.
    if (last >= argc || last < first || first >= argc || step <= 0) {
      out.clear();
      return false;
    }
    for (long long i = first; i <= last; i += step) out.push_back(static_cast<std::uint32_t>(i));
  }
  return true;
}

bool IsBlockingInvocation(const CommandInfo& info, std::span<const std::string_view> args) noexcept {
  if (info.command_class == CommandClass::kBlocking) return true;
  if (info.full_name != "XREAD" && info.full_name != "XREADGROUP") return false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "STREAMS")) break;
    if (EqualsIgnoreCase(args[i], "BLOCK")) return true;
  }
  return false;
}

}  // namespace turnout::protocol::resp
