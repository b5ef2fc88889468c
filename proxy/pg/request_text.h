#pragma once
// What a captured request says, as text for people: the journal's statement
// and parameters, the request of a shadow sample. Sans I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/pg/session_state.h"

namespace turnout::proxy::pg {

// The SQL of a simple Query, or of an extended batch's statement (from its
// Parse, or the session's prepared statement its Bind names), and the first
// Bind's parameters as text: NULL, text-format values as they are, binary
// ones decoded when their declared type is bool, int2, int4, int8, text or
// varchar, else in hex (\x…). `wire` holds whole frontend messages.
void DescribeRequest(std::string_view wire, const SessionState& state, std::string* sql,
                     std::vector<std::string>* params);

// A binary parameter value as text (see DescribeRequest).
std::string BinaryParamText(std::string_view value, std::uint32_t type_oid);

// A simple Query message for `sql`.
std::string QueryFrame(std::string_view sql);

}  // namespace turnout::proxy::pg
