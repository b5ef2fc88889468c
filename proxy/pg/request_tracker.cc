#include "proxy/pg/request_tracker.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "protocol/pg/wire.h"

namespace turnout::proxy::pg {

namespace ppg = protocol::pg;

routing::RequestClass ToRequestClass(ppg::StatementClass c) noexcept {
  switch (c) {
    case ppg::StatementClass::kRead: return routing::RequestClass::kRead;
    case ppg::StatementClass::kWrite: return routing::RequestClass::kWrite;
    case ppg::StatementClass::kDdl: return routing::RequestClass::kDdl;
    case ppg::StatementClass::kTxnControl: return routing::RequestClass::kTxnControl;
    case ppg::StatementClass::kSession: return routing::RequestClass::kSession;
    case ppg::StatementClass::kAdmin: return routing::RequestClass::kAdmin;
    case ppg::StatementClass::kUnknown: return routing::RequestClass::kWrite;  // unknown means write
  }
  return routing::RequestClass::kWrite;
}

namespace {
routing::DdlRisk ToDdlRisk(ppg::DdlRisk r) noexcept { return static_cast<routing::DdlRisk>(r); }
}  // namespace

std::optional<routing::Side> DebugUseCommand(std::string_view sql) {
  if (sql.size() > 64) return std::nullopt;
  absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(sql.data(), sql.size()));
  if (!t.empty() && t.back() == ';') t.remove_suffix(1);
  t = absl::StripAsciiWhitespace(t);
  if (absl::EqualsIgnoreCase(t, "turnout debug use new")) return routing::Side::kNew;
  if (absl::EqualsIgnoreCase(t, "turnout debug use old")) return routing::Side::kOld;
  return std::nullopt;
}

bool RequestTracker::IsTempTable(const ppg::TableRef& t) const {
  // pg_temp is the session's temporary schema; pg_temp_N its real name.
  if (!t.schema.empty())
    return absl::StartsWithIgnoreCase(absl::string_view(t.schema.data(), t.schema.size()), "pg_temp");
  for (const std::string& name : temp_tables_)
    if (t.NameEquals(name)) return true;
  return false;
}

ppg::DdlRisk RequestTracker::RoutingRisk(const ppg::StatementInfo& st) const {
  if (st.statement_class != ppg::StatementClass::kDdl || st.ddl_risk != ppg::DdlRisk::kHigh) return st.ddl_risk;
  if (!st.tables.empty()) {
    for (const auto& t : st.tables)
      if (!IsTempTable(t)) return ppg::DdlRisk::kHigh;
    return ppg::DdlRisk::kMedium;  // temporary objects only
  }
  // DROP ROLE / FUNCTION / DATABASE / SCHEMA / TYPE / SEQUENCE ... without
  // CASCADE removes no rows: the server refuses it where a table depends on
  // the object. DROP OWNED drops the role's tables. Likewise ALTER ... RENAME
  // / DROP of such objects (functions, types, sequences, roles ...), except
  // a schema or a database: renaming those moves the migration's tables or
  // its backends' login target.
  if (st.cascade) return ppg::DdlRisk::kHigh;
  absl::string_view text(st.text.data(), st.text.size());
  const bool drop = absl::StartsWithIgnoreCase(text, "drop");
  if (!drop && !absl::StartsWithIgnoreCase(text, "alter")) return ppg::DdlRisk::kHigh;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(text.substr(drop ? 4 : 5));
  if (drop && absl::StartsWithIgnoreCase(rest, "owned")) return ppg::DdlRisk::kHigh;
  if (!drop && (absl::StartsWithIgnoreCase(rest, "schema") || absl::StartsWithIgnoreCase(rest, "database")))
    return ppg::DdlRisk::kHigh;
  return ppg::DdlRisk::kMedium;
}

void RequestTracker::NoteTempTables(std::uint64_t seq) {
  for (const auto& st : classification_.statements) {
    if (st.statement_class == ppg::StatementClass::kSession && st.session == ppg::SessionCommand::kDiscard) {
      absl::string_view what(st.object_name.data(), st.object_name.size());
      if (absl::EqualsIgnoreCase(what, "all") || absl::StartsWithIgnoreCase(what, "temp")) temp_tables_.clear();
      continue;
    }
    if (st.statement_class != ppg::StatementClass::kDdl || st.tables.empty()) continue;
    absl::string_view command(st.command.data(), st.command.size());
    if (st.temporary && absl::EqualsIgnoreCase(command, "create")) {
      pending_temp_.emplace_back(seq, st.tables[0].Normalized());
    } else if (absl::EqualsIgnoreCase(command, "drop")) {
      // Once dropped, the name may come back as a permanent table.
      for (const auto& t : st.tables)
        std::erase_if(temp_tables_, [&](const std::string& name) { return t.NameEquals(name); });
    }
  }
}

RequestTracker::Verdict RequestTracker::Refuse() {
  if (!unsynced_) {
    refusing_ = Refusing::kWholeBatch;
    return Verdict::kDiscard;
  }
  refusing_ = Refusing::kRestOfBatch;
  TouchRequest();
  return Verdict::kRefuseInBatch;
}

void RequestTracker::Classify(std::string_view sql, StatementMeta* meta) {
  classifier_.Classify(sql, &classification_);
  meta->statement_class = classification_.statement_class;
  meta->ddl_risk = ppg::DdlRisk::kNone;
  for (const auto& st : classification_.statements) {
    const ppg::DdlRisk r = RoutingRisk(st);
    if (r > meta->ddl_risk) meta->ddl_risk = r;
  }
  meta->copy_from = false;
  meta->commit =
      classification_.statements.size() == 1 && classification_.statements[0].txn == ppg::TxnControl::kCommit;
  meta->dml = false;
  if (classification_.statements.size() == 1 && !classification_.lex_error) {
    const std::string_view cmd = classification_.statements[0].command;
    for (std::string_view word : {"insert", "update", "delete", "merge"})
      if (absl::EqualsIgnoreCase(absl::string_view(cmd.data(), cmd.size()), absl::string_view(word.data(), word.size())))
        meta->dml = true;
  }
  meta->op.reset();
  meta->table_count = 0;
  for (const auto& st : classification_.statements) {
    if (st.session != ppg::SessionCommand::kNone || st.txn == ppg::TxnControl::kSetTransaction) {
      // Extended-protocol statements are single statements; a simple Query
      // announces its own ops (see OnClientFrame).
      if (classification_.statements.size() == 1) meta->op = SessionOp::From(st);
    }
    if (st.statement_class == ppg::StatementClass::kWrite && st.command.size() == 4 &&
        absl::EqualsIgnoreCase(absl::string_view(st.command.data(), st.command.size()), "copy"))
      meta->copy_from = true;
    for (const auto& t : st.tables) {
      if (meta->table_count == kMaxTargets) break;
      if (meta->tables.size() <= meta->table_count) meta->tables.emplace_back();
      std::string& slot = meta->tables[meta->table_count++];
      slot.clear();
      t.AppendNormalized(&slot);
    }
  }
}

std::span<const std::string_view> RequestTracker::TargetsOf(const StatementMeta& meta) {
  for (std::size_t i = 0; i < meta.table_count; ++i) target_views_[i] = meta.tables[i];
  return {target_views_.data(), meta.table_count};
}

RequestTracker::StatementMeta* RequestTracker::PortalStatement(std::string_view portal) {
  if (portal.empty()) return unnamed_portal_;
  auto it = portals_.find(portal);
  return it == portals_.end() ? nullptr : it->second;
}

void RequestTracker::TouchRequest() {
  if (open_started_) return;
  open_started_ = true;
  open_classified_ = false;
  if (open_seq_ >= response_seq_ && open_seq_ - response_seq_ >= records_.size() && records_.size() < kRecordRing)
    GrowRecords();
  Record& r = RecordOf(open_seq_);
  r.seq = open_seq_;
  r.start = Clock::now();
  r.cls = routing::RequestClass::kSession;  // until a statement says otherwise
  r.side = side_;
}

void RequestTracker::GrowRecords() {
  std::vector<Record> grown(records_.size() * 2);
  // The records of requests not yet answered keep their sequence numbers.
  for (const Record& r : records_)
    if (r.seq != std::numeric_limits<std::uint64_t>::max() && r.seq >= response_seq_)
      grown[r.seq & (grown.size() - 1)] = r;
  records_ = std::move(grown);
}

void RequestTracker::StartRequest(routing::RequestClass cls) {
  TouchRequest();
  if (!open_classified_) {
    open_classified_ = true;
    RecordOf(open_seq_).cls = cls;
    return;
  }
  RaiseRequestClass(cls);
}

void RequestTracker::RaiseRequestClass(routing::RequestClass cls) {
  Record& r = RecordOf(open_seq_);
  // Order of strength as the classifier's: read < session < txn < write < admin < ddl.
  auto rank = [](routing::RequestClass c) {
    switch (c) {
      case routing::RequestClass::kRead: return 0;
      case routing::RequestClass::kSession: return 1;
      case routing::RequestClass::kTxnControl: return 2;
      case routing::RequestClass::kWrite: return 3;
      case routing::RequestClass::kAdmin: return 4;
      case routing::RequestClass::kDdl: return 5;
    }
    return 3;
  };
  if (rank(cls) > rank(r.cls)) r.cls = cls;
}

void RequestTracker::CloseRequest() {
  TouchRequest();
  open_started_ = false;
  ++open_seq_;
  unsynced_ = false;
  if (InFlight() == 1) hooks_->InFlight(true);
}

RequestTracker::Verdict RequestTracker::AskRoute(char type, routing::RequestClass cls, const StatementMeta& meta,
                                                 bool batch_start) {
  pending_.type = type;
  request_.cls = cls;
  request_.risk = ToDdlRisk(meta.ddl_risk);
  request_.tables = TargetsOf(meta);
  request_.type = type;
  request_.batch_start = batch_start;
  request_.commit = meta.commit;
  request_.dml = meta.dml;
  return Verdict::kRoute;
}

RequestTracker::Verdict RequestTracker::Routed(bool refused) {
  const char type = std::exchange(pending_.type, 0);
  if (refused) {
    if (type == 'Q') return Verdict::kRefuse;
    return Refuse();
  }
  switch (type) {
    case 'Q': return AcceptQuery();
    case 'P': return AcceptParse();
    case 'B': return AcceptBind();
    case 'E': return AcceptExecute();
    default: return Verdict::kProtocolError;  // no frame was waiting for routing: the caller's bug
  }
}

RequestTracker::Verdict RequestTracker::AcceptQuery() {
  NoteTempTables(open_seq_);
  // Each statement of a multi-statement Query announces its own change.
  for (const auto& st : classification_.statements) {
    if (st.session == ppg::SessionCommand::kNone && st.txn != ppg::TxnControl::kSetTransaction) continue;
    if (auto op = SessionOp::From(st)) {
      if (op->kind == SessionOp::Kind::kPrepare) sql_prepared_[op->key] = st.prepared_class;
      state_.OnStatement(std::move(*op), open_seq_);
    }
  }
  StartRequest(pending_.cls);
  CloseRequest();
  return Verdict::kForward;
}

RequestTracker::Verdict RequestTracker::AcceptParse() {
  const ppg::Parse& p = pending_.parse;
  StatementMeta* meta = &unnamed_statement_;
  if (!p.statement.empty()) meta = &statements_[std::string(p.statement)];
  // The class computed for routing is the statement's from now on
  // (swapped, so both keep their capacity).
  std::swap(*meta, parse_meta_);
  NoteTempTables(open_seq_);
  if (!p.statement.empty()) state_.OnParse(p.statement, p.query, p.param_types, open_seq_);
  StartRequest(ToRequestClass(meta->statement_class));
  unsynced_ = true;
  return Verdict::kForward;
}

RequestTracker::Verdict RequestTracker::AcceptBind() {
  const std::string_view portal = pending_.portal;
  StatementMeta* meta = pending_.meta;
  if (portal.empty()) {
    unnamed_portal_ = meta;
  } else if (auto it = portals_.find(portal); it != portals_.end()) {
    it->second = meta;
  } else {
    portals_.emplace(std::string(portal), meta);
  }
  TouchRequest();
  unsynced_ = true;
  return Verdict::kForward;
}

RequestTracker::Verdict RequestTracker::AcceptExecute() {
  if (StatementMeta* meta = pending_.meta) {
    if (meta->op) state_.OnStatement(*meta->op, open_seq_);
    if (meta->copy_from && !copy_from_pending_) {
      copy_from_pending_ = true;
      copy_from_seq_ = open_seq_;
      conditional_syncs_ = 0;
    }
  }
  StartRequest(pending_.cls);
  unsynced_ = true;
  return Verdict::kForward;
}

RequestTracker::Verdict RequestTracker::OnClientFrame(const ppg::Frame& f) {
  if (refusing_ != Refusing::kNo) {
    // As the server after an error in extended mode: skip to the Sync
    // (postgres.c, ignore_till_sync); only Terminate is still heard.
    if (f.type == 'X') return Verdict::kTerminate;
    if (f.type != 'S') return Verdict::kDiscard;
    const Refusing was = std::exchange(refusing_, Refusing::kNo);
    if (was == Refusing::kWholeBatch) return Verdict::kRefuse;
    // kRestOfBatch: the server fails the batch; its Sync closes it as usual.
  }
  switch (f.type) {
    case 'Q': {
      ppg::Query q;
      if (ppg::Decode(f.payload, &q)) return Verdict::kProtocolError;
      if (debug_hooks_ && q.sql.size() < 64 && DebugUseCommand(q.sql)) return Verdict::kDebugUse;
      Classify(q.sql, &query_meta_);
      auto cls = ToRequestClass(query_meta_.statement_class);
      if (classification_.statements.size() == 1 &&
          classification_.statements[0].session == ppg::SessionCommand::kExecute) {
        auto it = sql_prepared_.find(NormalizeIdentifier(classification_.statements[0].object_name));
        if (it != sql_prepared_.end()) cls = ToRequestClass(it->second);
      }
      pending_.cls = cls;
      return AskRoute('Q', cls, query_meta_, /*batch_start=*/true);
    }
    case 'P': {
      if (ppg::Decode(f.payload, &pending_.parse)) return Verdict::kProtocolError;
      Classify(pending_.parse.query, &parse_meta_);
      // The first message of a batch: the batch goes where its statement does.
      if (!unsynced_)
        return AskRoute('P', ToRequestClass(parse_meta_.statement_class), parse_meta_, /*batch_start=*/true);
      return AcceptParse();
    }
    case 'B': {
      // Only the names are needed: read them without decoding the values.
      ppg::PayloadReader r(f.payload);
      std::string_view portal, statement;
      if (!r.ReadCString(&portal) || !r.ReadCString(&statement)) return Verdict::kProtocolError;
      StatementMeta* meta = &unnamed_statement_;
      if (!statement.empty()) {
        auto it = statements_.find(statement);
        meta = it == statements_.end() ? nullptr : &it->second;
      }
      pending_.portal = portal;
      pending_.meta = meta;
      if (!unsynced_ && meta != nullptr)
        return AskRoute('B', ToRequestClass(meta->statement_class), *meta, /*batch_start=*/true);
      return AcceptBind();
    }
    case 'E': {
      ppg::Execute e;
      if (ppg::Decode(f.payload, &e)) return Verdict::kProtocolError;
      StatementMeta* meta = PortalStatement(e.portal);
      pending_.meta = meta;
      pending_.cls = meta ? ToRequestClass(meta->statement_class) : routing::RequestClass::kWrite;
      // An extended batch is routed as a unit, at its first message; an
      // Execute later in it tells the session what else the batch does.
      if (meta) return AskRoute('E', pending_.cls, *meta, /*batch_start=*/!unsynced_);
      return AcceptExecute();
    }
    case 'C': {
      ppg::Close c;
      if (ppg::Decode(f.payload, &c)) return Verdict::kProtocolError;
      if (c.target == ppg::Target::kStatement) {
        if (!c.name.empty()) {
          state_.OnCloseStatement(c.name, open_seq_);
          auto it = statements_.find(c.name);
          if (it != statements_.end()) {
            // Portals made from it stay valid on the server; they only
            // lose their routing class here.
            if (unnamed_portal_ == &it->second) unnamed_portal_ = nullptr;
            for (auto& [name, meta] : portals_)
              if (meta == &it->second) meta = nullptr;
            statements_.erase(it);
          }
        }
      } else if (c.name.empty()) {
        unnamed_portal_ = nullptr;
      } else if (auto it = portals_.find(c.name); it != portals_.end()) {
        portals_.erase(it);
      }
      TouchRequest();
      unsynced_ = true;
      return Verdict::kForward;
    }
    case 'D':
    case 'H':
      TouchRequest();
      unsynced_ = true;
      return Verdict::kForward;
    case 'S':
      // The server ignores Sync in copy-in mode (copyfromparse.c); so do we.
      if (copy_in_) return Verdict::kForward;
      if (copy_from_pending_) ++conditional_syncs_;
      CloseRequest();
      return Verdict::kForward;
    case 'F':  // FunctionCall: a request of its own, answered by ReadyForQuery
      StartRequest(routing::RequestClass::kWrite);
      CloseRequest();
      return Verdict::kForward;
    case 'd':
      return Verdict::kForward;
    case 'c':
    case 'f':
      copy_in_ = false;  // the server leaves copy-in with this message
      return Verdict::kForward;
    case 'X':
      return Verdict::kTerminate;
    default:  // 'p' outside authentication
      return Verdict::kProtocolError;
  }
}

void RequestTracker::OnLargeClientFrame(const ppg::FrameHeader& h, ppg::Bytes prefix) {
  // A message larger than the buffer is streamed through; only what its
  // first bytes say is known. A statement we cannot read whole is routed as
  // a write (unknown means write) and cannot be replayed.
  ppg::PayloadReader r(prefix.subspan(std::min(prefix.size(), h.header_size)));
  switch (h.type) {
    case 'Q':
      StartRequest(routing::RequestClass::kWrite);
      CloseRequest();
      break;
    case 'P': {
      std::string_view name;
      StatementMeta* meta = &unnamed_statement_;
      if (r.ReadCString(&name) && !name.empty()) {
        meta = &statements_[std::string(name)];
      }
      *meta = StatementMeta{};
      meta->statement_class = ppg::StatementClass::kUnknown;
      StartRequest(routing::RequestClass::kWrite);
      unsynced_ = true;
      break;
    }
    case 'B': {
      std::string_view portal, statement;
      StatementMeta* meta = nullptr;
      if (r.ReadCString(&portal) && r.ReadCString(&statement)) {
        if (statement.empty()) {
          meta = &unnamed_statement_;
        } else if (auto it = statements_.find(statement); it != statements_.end()) {
          meta = &it->second;
        }
        if (portal.empty()) {
          unnamed_portal_ = meta;
        } else {
          portals_[std::string(portal)] = meta;
        }
      }
      TouchRequest();
      unsynced_ = true;
      break;
    }
    case 'F':
      StartRequest(routing::RequestClass::kWrite);
      CloseRequest();
      break;
    case 'd':
      break;
    default:
      StartRequest(routing::RequestClass::kWrite);
      unsynced_ = true;
      break;
  }
}

void RequestTracker::OnCopyIn() {
  copy_in_ = true;
  if (copy_from_pending_) {
    // The Syncs the client sent after that Execute reached the server in
    // copy-in mode and were ignored: their requests merge into the copy's.
    ignored_syncs_ += conditional_syncs_;
    conditional_syncs_ = 0;
    copy_from_pending_ = false;
  }
}

void RequestTracker::OnReadyForQuery(ppg::TransactionStatus status) {
  txn_status_ = status;
  ended_by_ = std::exchange(last_word_, Ended::kOther);
  const std::uint64_t last = ResponseSeq();
  state_.OnReadyForQuery(last, status);
  const Record& r = RecordOf(response_seq_);
  if (r.seq == response_seq_) {
    hooks_->Answered(r, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - r.start));
  }
  response_seq_ = last + 1;
  ignored_syncs_ = 0;
  // Temporary tables of the requests answered now exist, unless they failed.
  std::erase_if(pending_temp_, [&](auto& entry) {
    if (entry.first > last) return false;
    if (!request_failed_ && temp_tables_.size() < kMaxTempTables) temp_tables_.push_back(std::move(entry.second));
    return true;
  });
  request_failed_ = false;
  if (copy_from_pending_ && response_seq_ > copy_from_seq_) {
    copy_from_pending_ = false;  // that COPY never started (an error came first)
    conditional_syncs_ = 0;
  }
  if (response_seq_ > open_seq_) response_seq_ = open_seq_;  // a server answering more than asked
  if (InFlight() == 0) hooks_->InFlight(false);
}

bool RequestTracker::OnBackendFrame(const ppg::Frame& f) {
  switch (f.type) {
    case 'Z': {
      ppg::ReadyForQuery z;
      if (!ppg::Decode(f.payload, &z)) OnReadyForQuery(z.status);
      return true;
    }
    case 'C': {
      ppg::PayloadReader r(f.payload);
      std::string_view tag;
      last_word_ = Ended::kOther;
      if (r.ReadCString(&tag)) {
        state_.OnCommandComplete(tag, ResponseSeq());
        if (tag == "COMMIT") last_word_ = Ended::kCommit;
        else if (tag == "ROLLBACK") last_word_ = Ended::kRollback;
      }
      if (copy_in_) copy_in_ = false;
      return true;
    }
    case 'E':
      state_.OnError();
      copy_in_ = false;
      request_failed_ = true;
      last_word_ = Ended::kOther;
      return true;
    case '1':
      state_.OnParseComplete(ResponseSeq());
      return true;
    case '3':
      state_.OnCloseComplete(ResponseSeq());
      return true;
    case 'G':
    case 'W':
      OnCopyIn();
      return true;
    case 'S': {
      ppg::ParameterStatus ps;
      if (!ppg::Decode(f.payload, &ps)) {
        if (ps.name == "standard_conforming_strings") classifier_.set_standard_conforming_strings(ps.value == "on");
      }
      return true;
    }
    case 'K':
    case 'R':
      return false;  // login messages never reach a client mid-session
    default:
      return true;
  }
}

}  // namespace turnout::proxy::pg
