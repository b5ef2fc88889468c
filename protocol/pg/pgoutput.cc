#include "protocol/pg/pgoutput.h"

#include <charconv>
#include <cstdio>
#include <utility>

namespace turnout::protocol::pg::pgoutput {
namespace {

std::error_code Malformed() noexcept { return make_error_code(CodecError::kMalformed); }

// Int64 fields (LSNs, timestamps) are big-endian like the rest of the wire.
bool ReadU64(PayloadReader& r, std::uint64_t* v) noexcept {
  if (r.remaining() < 8) return false;
  std::uint32_t hi = 0;
  std::uint32_t lo = 0;
  r.ReadU32(&hi);
  r.ReadU32(&lo);
  *v = (std::uint64_t{hi} << 32) | lo;
  return true;
}
bool ReadI64(PayloadReader& r, std::int64_t* v) noexcept {
  std::uint64_t u = 0;
  if (!ReadU64(r, &u)) return false;
  *v = static_cast<std::int64_t>(u);
  return true;
}

void AppendU64(std::string* out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}

// Version 2 streaming: the (sub)transaction's xid leads the row messages
// inside a Stream Start/Stop block (proto.c: "if not valid, we're not
// streaming").
bool ReadStreamXid(PayloadReader& r, bool in_stream, std::uint32_t* xid) noexcept {
  return !in_stream || r.ReadU32(xid);
}

// protocol-logicalrep-message-formats: TupleData. Int16 count, then per
// column a kind byte and, for 't' and 'b', an Int32 length and the bytes.
bool ReadTuple(PayloadReader& r, Tuple* out) {
  std::uint16_t n = 0;
  if (!r.ReadU16(&n)) return false;
  // Every column takes at least its kind byte: bounds the allocation.
  if (n > r.remaining()) return false;
  out->clear();
  out->reserve(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    std::uint8_t kind = 0;
    if (!r.ReadU8(&kind)) return false;
    TupleColumn c{.kind = static_cast<char>(kind), .value = {}};
    switch (kind) {
      case 'n':
      case 'u':
        break;
      case 't':
      case 'b': {
        std::int32_t len = 0;
        if (!r.ReadI32(&len) || len < 0) return false;
        if (!r.ReadText(static_cast<std::size_t>(len), &c.value)) return false;
        break;
      }
      default:
        return false;  // logicalrep_read_tuple: "unrecognized data representation type"
    }
    out->push_back(c);
  }
  return true;
}

// ---------------------------------------------------------------- one decoder per type byte
// Each reads its fields into `out` and returns false when the payload runs
// short or holds a value the server never writes; the caller checks that
// nothing trails.

bool DecodeBegin(PayloadReader& r, bool, LogicalMessage* out) {
  Begin m;
  if (!(ReadU64(r, &m.final_lsn) && ReadI64(r, &m.commit_time) && r.ReadU32(&m.xid))) return false;
  *out = m;
  return true;
}

bool DecodeCommit(PayloadReader& r, bool, LogicalMessage* out) {
  Commit m;
  if (!(r.ReadU8(&m.flags) && ReadU64(r, &m.commit_lsn) && ReadU64(r, &m.end_lsn) &&
        ReadI64(r, &m.commit_time))) {
    return false;
  }
  *out = m;
  return true;
}

bool DecodeOrigin(PayloadReader& r, bool, LogicalMessage* out) {
  Origin m;
  if (!(ReadU64(r, &m.commit_lsn) && r.ReadCString(&m.name))) return false;
  *out = m;
  return true;
}

bool DecodeRelation(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Relation m;
  std::uint8_t identity = 0;
  std::uint16_t n = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&m.oid) && r.ReadCString(&m.nspname) &&
        r.ReadCString(&m.relname) && r.ReadU8(&identity) && r.ReadU16(&n))) {
    return false;
  }
  // relreplident (pg_class.h): default, nothing, full, index.
  if (identity != 'd' && identity != 'n' && identity != 'f' && identity != 'i') return false;
  m.replica_identity = static_cast<char>(identity);
  // A column is at least flags, an empty name, the type OID and typmod.
  constexpr std::size_t kMinColumn = 1 + 1 + 4 + 4;
  if (n > r.remaining() / kMinColumn) return false;
  m.columns.reserve(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    RelationColumn c;
    std::uint8_t flags = 0;
    if (!(r.ReadU8(&flags) && r.ReadCString(&c.name) && r.ReadU32(&c.type_oid) && r.ReadI32(&c.type_modifier))) {
      return false;
    }
    c.key = (flags & 1) != 0;  // LOGICALREP_IS_REPLICA_IDENTITY
    m.columns.push_back(c);
  }
  *out = std::move(m);
  return true;
}

bool DecodeType(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Type m;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&m.oid) && r.ReadCString(&m.nspname) &&
        r.ReadCString(&m.name))) {
    return false;
  }
  *out = m;
  return true;
}

bool DecodeInsert(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Insert m;
  std::uint8_t marker = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&m.relation) && r.ReadU8(&marker))) return false;
  if (marker != 'N' || !ReadTuple(r, &m.row)) return false;
  *out = std::move(m);
  return true;
}

bool DecodeUpdate(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Update m;
  std::uint8_t marker = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&m.relation) && r.ReadU8(&marker))) return false;
  if (marker == 'K' || marker == 'O') {
    m.old_kind = static_cast<char>(marker);
    if (!(ReadTuple(r, &m.old_tuple) && r.ReadU8(&marker))) return false;
  }
  if (marker != 'N' || !ReadTuple(r, &m.row)) return false;
  *out = std::move(m);
  return true;
}

bool DecodeDelete(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Delete m;
  std::uint8_t marker = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&m.relation) && r.ReadU8(&marker))) return false;
  if (marker != 'K' && marker != 'O') return false;
  m.old_kind = static_cast<char>(marker);
  if (!ReadTuple(r, &m.old_tuple)) return false;
  *out = std::move(m);
  return true;
}

bool DecodeTruncate(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Truncate m;
  std::uint32_t n = 0;
  std::uint8_t options = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU32(&n) && r.ReadU8(&options))) return false;
  if (n != r.remaining() / 4) return false;  // the OIDs are all that follows
  m.cascade = (options & 1) != 0;           // TRUNCATE_CASCADE
  m.restart_identity = (options & 2) != 0;  // TRUNCATE_RESTART_SEQS
  m.relations.resize(n);
  for (std::uint32_t& oid : m.relations) r.ReadU32(&oid);
  *out = std::move(m);
  return true;
}

// logicalrep_write_message: the xid (when streaming) comes before the flags,
// so it depends on in_stream alone, never on the transactional bit.
bool DecodeMessage(PayloadReader& r, bool in_stream, LogicalMessage* out) {
  Message m;
  std::uint8_t flags = 0;
  std::uint32_t size = 0;
  if (!(ReadStreamXid(r, in_stream, &m.xid) && r.ReadU8(&flags) && ReadU64(r, &m.lsn) &&
        r.ReadCString(&m.prefix) && r.ReadU32(&size) && r.ReadBytes(size, &m.content))) {
    return false;
  }
  m.transactional = (flags & 1) != 0;  // MESSAGE_TRANSACTIONAL
  *out = m;
  return true;
}

bool DecodeStreamStart(PayloadReader& r, bool, LogicalMessage* out) {
  StreamStart m;
  std::uint8_t first = 0;
  if (!(r.ReadU32(&m.xid) && r.ReadU8(&first)) || first > 1) return false;
  m.first_segment = first == 1;
  *out = m;
  return true;
}

bool DecodeStreamStop(PayloadReader&, bool, LogicalMessage* out) {
  *out = StreamStop{};
  return true;
}

bool DecodeStreamCommit(PayloadReader& r, bool, LogicalMessage* out) {
  StreamCommit m;
  if (!(r.ReadU32(&m.xid) && r.ReadU8(&m.flags) && ReadU64(r, &m.commit_lsn) && ReadU64(r, &m.end_lsn) &&
        ReadI64(r, &m.commit_time))) {
    return false;
  }
  *out = m;
  return true;
}

// Versions 2 and 3 only: version 4's parallel apply appends the abort LSN
// and time, which this codec does not request.
bool DecodeStreamAbort(PayloadReader& r, bool, LogicalMessage* out) {
  StreamAbort m;
  if (!(r.ReadU32(&m.xid) && r.ReadU32(&m.subxid))) return false;
  *out = m;
  return true;
}

bool DecodeBeginPrepare(PayloadReader& r, bool, LogicalMessage* out) {
  BeginPrepare m;
  if (!(ReadU64(r, &m.prepare_lsn) && ReadU64(r, &m.end_lsn) && ReadI64(r, &m.prepare_time) &&
        r.ReadU32(&m.xid) && r.ReadCString(&m.gid))) {
    return false;
  }
  *out = m;
  return true;
}

// Prepare ('P') and Stream Prepare ('p') share one layout.
bool ReadPrepare(PayloadReader& r, bool streamed, LogicalMessage* out) {
  Prepare m;
  m.streamed = streamed;
  if (!(r.ReadU8(&m.flags) && ReadU64(r, &m.prepare_lsn) && ReadU64(r, &m.end_lsn) &&
        ReadI64(r, &m.prepare_time) && r.ReadU32(&m.xid) && r.ReadCString(&m.gid))) {
    return false;
  }
  *out = m;
  return true;
}
bool DecodePrepare(PayloadReader& r, bool, LogicalMessage* out) { return ReadPrepare(r, false, out); }
bool DecodeStreamPrepare(PayloadReader& r, bool, LogicalMessage* out) { return ReadPrepare(r, true, out); }

bool DecodeCommitPrepared(PayloadReader& r, bool, LogicalMessage* out) {
  CommitPrepared m;
  if (!(r.ReadU8(&m.flags) && ReadU64(r, &m.commit_lsn) && ReadU64(r, &m.end_lsn) && ReadI64(r, &m.commit_time) &&
        r.ReadU32(&m.xid) && r.ReadCString(&m.gid))) {
    return false;
  }
  *out = m;
  return true;
}

bool DecodeRollbackPrepared(PayloadReader& r, bool, LogicalMessage* out) {
  RollbackPrepared m;
  if (!(r.ReadU8(&m.flags) && ReadU64(r, &m.prepare_end_lsn) && ReadU64(r, &m.rollback_end_lsn) &&
        ReadI64(r, &m.prepare_time) && ReadI64(r, &m.rollback_time) && r.ReadU32(&m.xid) &&
        r.ReadCString(&m.gid))) {
    return false;
  }
  *out = m;
  return true;
}

using DecodeFn = bool (*)(PayloadReader&, bool in_stream, LogicalMessage*);
struct MessageRow {
  char type;
  DecodeFn decode;
};

// The type bytes of logicalproto.h's LogicalRepMsgType.
constexpr MessageRow kMessages[] = {
    {'B', &DecodeBegin},          {'C', &DecodeCommit},          {'O', &DecodeOrigin},
    {'R', &DecodeRelation},       {'Y', &DecodeType},            {'I', &DecodeInsert},
    {'U', &DecodeUpdate},         {'D', &DecodeDelete},          {'T', &DecodeTruncate},
    {'M', &DecodeMessage},        {'S', &DecodeStreamStart},     {'E', &DecodeStreamStop},
    {'c', &DecodeStreamCommit},   {'A', &DecodeStreamAbort},     {'b', &DecodeBeginPrepare},
    {'P', &DecodePrepare},        {'K', &DecodeCommitPrepared},  {'r', &DecodeRollbackPrepared},
    {'p', &DecodeStreamPrepare},
};

bool IsHexDigit(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// One half of an LSN: 1 to 8 hex digits, nothing else (pg_lsn_in's
// MAXPG_LSNCOMPONENT).
bool ParseLsnHalf(std::string_view s, std::uint32_t* v) noexcept {
  if (s.empty() || s.size() > 8) return false;
  for (char c : s) {
    if (!IsHexDigit(c)) return false;
  }
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, 16);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string FormatLsn(std::uint64_t lsn) {
  // LSN_FORMAT_ARGS: "%X/%X" of the high and low 32 bits.
  char buf[2 * 8 + 2];
  const int n = std::snprintf(buf, sizeof(buf), "%X/%X", static_cast<unsigned>(lsn >> 32),
                              static_cast<unsigned>(lsn & 0xffffffffu));
  return std::string(buf, static_cast<std::size_t>(n));
}

bool ParseLsn(std::string_view text, std::uint64_t* lsn) noexcept {
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  std::uint32_t hi = 0;
  std::uint32_t lo = 0;
  if (!ParseLsnHalf(text.substr(0, slash), &hi) || !ParseLsnHalf(text.substr(slash + 1), &lo)) return false;
  *lsn = (std::uint64_t{hi} << 32) | lo;
  return true;
}

std::error_code DecodeCopyData(Bytes payload, CopyMessage* out) noexcept {
  PayloadReader r(payload);
  std::uint8_t type = 0;
  if (!r.ReadU8(&type)) return Malformed();
  switch (type) {
    case 'w': {  // protocol-replication: XLogData
      XLogData m;
      if (!(ReadU64(r, &m.wal_start) && ReadU64(r, &m.wal_end) && ReadI64(r, &m.send_time))) return Malformed();
      m.data = r.Rest();
      *out = m;
      return {};
    }
    case 'k': {  // protocol-replication: Primary keepalive message
      PrimaryKeepalive m;
      std::uint8_t reply = 0;
      if (!(ReadU64(r, &m.wal_end) && ReadI64(r, &m.send_time) && r.ReadU8(&reply)) || reply > 1 || !r.AtEnd()) {
        return Malformed();
      }
      m.reply_requested = reply == 1;
      *out = m;
      return {};
    }
    default:
      return make_error_code(CodecError::kUnknownMessageType);
  }
}

std::string EncodeStandbyStatusUpdate(std::uint64_t written, std::uint64_t flushed, std::uint64_t applied,
                                      std::int64_t now_us_since_2000, bool reply_requested) {
  // protocol-replication: Standby status update, 1 + 4 * 8 + 1 bytes.
  std::string out;
  out.reserve(34);
  out.push_back('r');
  AppendU64(&out, written);
  AppendU64(&out, flushed);
  AppendU64(&out, applied);
  AppendU64(&out, static_cast<std::uint64_t>(now_us_since_2000));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

std::error_code DecodeLogicalMessage(Bytes data, bool in_stream, LogicalMessage* out) noexcept {
  PayloadReader r(data);
  std::uint8_t type = 0;
  if (!r.ReadU8(&type)) return Malformed();
  for (const MessageRow& row : kMessages) {
    if (row.type != static_cast<char>(type)) continue;
    // Decoded aside so that `out` is untouched on error.
    LogicalMessage m;
    if (!row.decode(r, in_stream, &m) || !r.AtEnd()) return Malformed();
    *out = std::move(m);
    return {};
  }
  return make_error_code(CodecError::kUnknownMessageType);
}

}  // namespace turnout::protocol::pg::pgoutput
