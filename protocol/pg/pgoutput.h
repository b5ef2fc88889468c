#pragma once
// The logical replication stream of a `replication=database` connection,
// sans-I/O: the CopyData payloads of START_REPLICATION (protocol-replication:
// XLogData 'w', primary keepalive 'k', standby status update 'r') and the
// `pgoutput` messages inside XLogData (protocol-logicalrep-message-formats),
// protocol versions 1 to 3: Begin, Commit, Origin, Relation, Type, Insert,
// Update, Delete, Truncate, Message, the streaming messages of version 2
// (Stream Start/Stop/Commit/Abort) and the two-phase ones of version 3
// (Begin Prepare, Prepare, Commit Prepared, Rollback Prepared, Stream Prepare).
//
// Decoders never throw and never read past the bytes they are given: a short
// or inconsistent payload is CodecError::kMalformed, an unknown message type
// kUnknownMessageType. Every string_view and Bytes in a decoded value points
// into the decoder's input: the caller keeps that buffer alive while it uses
// the value.
//
// Version 2's in-progress transactions ("streaming 'on'") put an xid in
// front of Relation, Type, Insert, Update, Delete, Truncate and Message
// between Stream Start and Stream Stop; the caller says whether it is inside
// such a block (`in_stream`), exactly as the server's pgoutput writes them.
// That xid is the one of the (sub)transaction that made the change
// (pgoutput_change: change->txn->xid), not always Stream Start's top-level
// xid: a Stream Abort whose subxid differs from its xid discards only the
// changes tagged with that subxid. Message carries it whenever in_stream
// (it precedes the flags, whatever the transactional bit).

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "protocol/pg/codec_error.h"
#include "protocol/pg/wire.h"

namespace turnout::protocol::pg::pgoutput {

// An LSN as the server prints it ("16/B374D848") and back.
std::string FormatLsn(std::uint64_t lsn);
// False for anything but two hex numbers of up to 8 digits around one '/'.
bool ParseLsn(std::string_view text, std::uint64_t* lsn) noexcept;

// ---------------------------------------------------------------- CopyData wrappers

// 'w': WAL data; `data` is one pgoutput message.
struct XLogData {
  std::uint64_t wal_start = 0;
  std::uint64_t wal_end = 0;
  std::int64_t send_time = 0;  // microseconds since 2000-01-01
  Bytes data;
};

// 'k': the server's keepalive; reply_requested asks for a status update now.
struct PrimaryKeepalive {
  std::uint64_t wal_end = 0;
  std::int64_t send_time = 0;
  bool reply_requested = false;
};

using CopyMessage = std::variant<XLogData, PrimaryKeepalive>;

// Decodes one CopyData payload received from the server.
std::error_code DecodeCopyData(Bytes payload, CopyMessage* out) noexcept;

// 'r': the payload of the standby status update sent back in CopyData
// (34 bytes). `flushed` is what the server may forget: confirmed_flush_lsn.
std::string EncodeStandbyStatusUpdate(std::uint64_t written, std::uint64_t flushed, std::uint64_t applied,
                                      std::int64_t now_us_since_2000, bool reply_requested);

// ---------------------------------------------------------------- pgoutput messages

// One column of a TupleData: 'n' null, 'u' unchanged TOASTed value (not
// sent), 't' text, 'b' binary.
struct TupleColumn {
  char kind = 'n';
  std::string_view value;  // 't' and 'b' only
};
using Tuple = std::vector<TupleColumn>;

struct Begin {
  std::uint64_t final_lsn = 0;  // the commit's LSN
  std::int64_t commit_time = 0;
  std::uint32_t xid = 0;
};

struct Commit {
  std::uint8_t flags = 0;
  std::uint64_t commit_lsn = 0;
  std::uint64_t end_lsn = 0;  // where the next transaction starts: the position to confirm
  std::int64_t commit_time = 0;
};

struct Origin {
  std::uint64_t commit_lsn = 0;
  std::string_view name;
};

struct RelationColumn {
  bool key = false;  // part of the replica identity (flags bit 1)
  std::string_view name;
  std::uint32_t type_oid = 0;
  std::int32_t type_modifier = -1;
};

struct Relation {
  std::uint32_t xid = 0;  // in_stream only
  std::uint32_t oid = 0;
  std::string_view nspname;  // empty for pg_catalog (proto.c logicalrep_write_namespace)
  std::string_view relname;
  char replica_identity = 'd';  // 'd' default (primary key), 'n' nothing, 'f' full, 'i' index
  std::vector<RelationColumn> columns;
};

struct Type {
  std::uint32_t xid = 0;
  std::uint32_t oid = 0;
  std::string_view nspname;  // empty for pg_catalog
  std::string_view name;
};

struct Insert {
  std::uint32_t xid = 0;
  std::uint32_t relation = 0;
  Tuple row;
};

// The old row is present as `old_key` ('K': replica identity columns only,
// the others null) or `old_row` ('O': REPLICA IDENTITY FULL), or neither
// when the key did not change.
struct Update {
  std::uint32_t xid = 0;
  std::uint32_t relation = 0;
  char old_kind = 0;  // 0, 'K' or 'O'
  Tuple old_tuple;
  Tuple row;
};

struct Delete {
  std::uint32_t xid = 0;
  std::uint32_t relation = 0;
  char old_kind = 'K';  // 'K' or 'O'
  Tuple old_tuple;
};

struct Truncate {
  std::uint32_t xid = 0;
  bool cascade = false;           // option bit 1
  bool restart_identity = false;  // option bit 2
  std::vector<std::uint32_t> relations;
};

// pg_logical_emit_message(); only sent with the `messages` option.
struct Message {
  std::uint32_t xid = 0;
  bool transactional = false;
  std::uint64_t lsn = 0;
  std::string_view prefix;
  Bytes content;
};

struct StreamStart {
  std::uint32_t xid = 0;
  bool first_segment = false;
};
struct StreamStop {};
struct StreamCommit {
  std::uint32_t xid = 0;
  std::uint8_t flags = 0;
  std::uint64_t commit_lsn = 0;
  std::uint64_t end_lsn = 0;
  std::int64_t commit_time = 0;
};
struct StreamAbort {
  std::uint32_t xid = 0;
  std::uint32_t subxid = 0;
};

// Version 3 (two_phase): a prepared transaction's decoding.
struct BeginPrepare {
  std::uint64_t prepare_lsn = 0;
  std::uint64_t end_lsn = 0;
  std::int64_t prepare_time = 0;
  std::uint32_t xid = 0;
  std::string_view gid;
};
struct Prepare {  // also Stream Prepare ('p')
  bool streamed = false;
  std::uint8_t flags = 0;
  std::uint64_t prepare_lsn = 0;
  std::uint64_t end_lsn = 0;
  std::int64_t prepare_time = 0;
  std::uint32_t xid = 0;
  std::string_view gid;
};
struct CommitPrepared {
  std::uint8_t flags = 0;
  std::uint64_t commit_lsn = 0;
  std::uint64_t end_lsn = 0;
  std::int64_t commit_time = 0;
  std::uint32_t xid = 0;
  std::string_view gid;
};
struct RollbackPrepared {
  std::uint8_t flags = 0;
  std::uint64_t prepare_end_lsn = 0;
  std::uint64_t rollback_end_lsn = 0;
  std::int64_t prepare_time = 0;
  std::int64_t rollback_time = 0;
  std::uint32_t xid = 0;
  std::string_view gid;
};

using LogicalMessage =
    std::variant<Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate, Message, StreamStart,
                 StreamStop, StreamCommit, StreamAbort, BeginPrepare, Prepare, CommitPrepared, RollbackPrepared>;

// Decodes one pgoutput message (XLogData::data). `in_stream`: between
// Stream Start and Stream Stop, where row messages carry an xid first.
std::error_code DecodeLogicalMessage(Bytes data, bool in_stream, LogicalMessage* out) noexcept;

}  // namespace turnout::protocol::pg::pgoutput
