#pragma once
// Appends RESP replies (to clients) and commands (to servers) to a
// caller-owned string. Forms follow RESP3.md; `resp3` selects between the
// RESP2 and RESP3 encodings where they differ (null, map, push, double ...),
// as the client negotiated with HELLO.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace turnout::protocol::resp {

void AppendSimpleString(std::string& out, std::string_view s);
// `message` without the leading '-', e.g. "ERR unknown command"; CR and LF
// are replaced by spaces so the line stays one line (as addReplyError does).
void AppendError(std::string& out, std::string_view message);
void AppendInteger(std::string& out, std::int64_t v);
void AppendBulkString(std::string& out, std::string_view s);
// RESP3 "_", RESP2 "$-1" (null bulk) or, with `array` set, "*-1".
void AppendNull(std::string& out, bool resp3, bool array = false);
void AppendArrayHeader(std::string& out, std::size_t count);
void AppendSetHeader(std::string& out, std::size_t count, bool resp3);
// RESP3 "%n"; RESP2 an array of 2n (key, value, ...) as Redis does.
void AppendMapHeader(std::string& out, std::size_t pairs, bool resp3);
// RESP3 ">n"; RESP2 a plain array (pub/sub messages before RESP3).
void AppendPushHeader(std::string& out, std::size_t count, bool resp3);
// RESP3 "#t"/"#f"; RESP2 ":1"/":0".
void AppendBoolean(std::string& out, bool v, bool resp3);
// RESP3 ","; RESP2 a bulk string of the same text.
void AppendDouble(std::string& out, double v, bool resp3);

// A command as an array of bulk strings (the only request form every server
// and proxy accepts): AUTH, SELECT, HELLO, DUMP, RESTORE ...
void AppendCommand(std::string& out, std::span<const std::string_view> args);
void AppendCommand(std::string& out, std::initializer_list<std::string_view> args);

}  // namespace turnout::protocol::resp
