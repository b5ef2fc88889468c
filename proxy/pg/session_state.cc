#include "proxy/pg/session_state.h"

#include <algorithm>

#include "protocol/pg/message_writer.h"

namespace turnout::proxy::pg {

namespace ppg = protocol::pg;

namespace {

// SQL identifier as the server resolves it: unquoted folds to lower case,
// quoted keeps its case without the quotes.
std::string NormalizeIdent(std::string_view s) {
  std::string out;
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    s = s.substr(1, s.size() - 2);
    for (std::size_t i = 0; i < s.size(); ++i) {
      out += s[i];
      if (s[i] == '"' && i + 1 < s.size() && s[i + 1] == '"') ++i;
    }
    return out;
  }
  out.reserve(s.size());
  for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

// Names the server treats as one parameter.
std::string NormalizeParam(std::string_view s) {
  std::string k = NormalizeIdent(s);
  if (k == "time zone") return "timezone";
  if (k == "names") return "client_encoding";
  return k;
}

template <typename V>
void Upsert(std::vector<std::pair<std::string, V>>* v, const std::string& key, V value) {
  for (auto& [k, val] : *v) {
    if (k == key) {
      val = std::move(value);
      return;
    }
  }
  v->emplace_back(key, std::move(value));
}

template <typename V>
void Erase(std::vector<std::pair<std::string, V>>* v, const std::string& key) {
  v->erase(std::remove_if(v->begin(), v->end(), [&](const auto& p) { return p.first == key; }), v->end());
}

}  // namespace

std::string_view SessionOp::tag() const noexcept {
  switch (kind) {
    case Kind::kSet:
    case Kind::kSetLocal:
      return "SET";
    case Kind::kReset:
    case Kind::kResetAll:
      return "RESET";
    case Kind::kListen:
      return "LISTEN";
    case Kind::kUnlisten:
    case Kind::kUnlistenAll:
      return "UNLISTEN";
    case Kind::kPrepare:
      return "PREPARE";
    case Kind::kDeallocate:
      return "DEALLOCATE";
    case Kind::kDeallocateAll:
      return "DEALLOCATE ALL";
    case Kind::kDiscardAll:
      return "DISCARD ALL";
    case Kind::kNoState:
      return "";
  }
  return "";
}

bool SessionOp::transactional() const noexcept {
  switch (kind) {
    case Kind::kPrepare:
    case Kind::kDeallocate:
    case Kind::kDeallocateAll:
    case Kind::kDiscardAll:  // cannot run inside a transaction block at all
      return false;
    default:
      return true;
  }
}

std::optional<SessionOp> SessionOp::From(const ppg::StatementInfo& st) {
  using S = ppg::SessionCommand;
  SessionOp op;
  op.text = std::string(st.text);
  const std::string name = NormalizeIdent(st.object_name);
  if (st.txn == ppg::TxnControl::kSetTransaction) {
    op.kind = Kind::kNoState;  // tag "SET", lasts one transaction
    return op;
  }
  switch (st.session) {
    case S::kSet:
      op.kind = Kind::kSet;
      op.key = NormalizeParam(st.object_name);
      return op;
    case S::kSetLocal:
      op.kind = Kind::kSetLocal;
      op.key = NormalizeParam(st.object_name);
      return op;
    case S::kReset:
      op.kind = name == "all" ? Kind::kResetAll : Kind::kReset;
      op.key = NormalizeParam(st.object_name);
      return op;
    case S::kListen:
      op.kind = Kind::kListen;
      op.key = name;
      return op;
    case S::kUnlisten:
      op.kind = st.object_name == "*" ? Kind::kUnlistenAll : Kind::kUnlisten;
      op.key = name;
      return op;
    case S::kPrepare:
      op.kind = Kind::kPrepare;
      op.key = name;
      return op;
    case S::kDeallocate:
      op.kind = name == "all" ? Kind::kDeallocateAll : Kind::kDeallocate;
      op.key = name;
      return op;
    case S::kDiscard:
      if (name != "all") return std::nullopt;  // PLANS, SEQUENCES, TEMP: nothing replayed
      op.kind = Kind::kDiscardAll;
      return op;
    default:
      return std::nullopt;
  }
}

void SessionState::OnStatement(SessionOp op, std::uint64_t seq) {
  effects_.push_back(Effect{seq, Ack::kCommandComplete, std::move(op), {}, {}});
}

void SessionState::OnParse(std::string_view name, std::string_view query,
                           std::span<const std::uint32_t> param_types, std::uint64_t seq) {
  Effect e{seq, Ack::kParseComplete, {}, std::string(name), {}};
  e.prepared.text = std::string(query);
  e.prepared.param_types.assign(param_types.begin(), param_types.end());
  effects_.push_back(std::move(e));
}

void SessionState::OnCloseStatement(std::string_view name, std::uint64_t seq) {
  effects_.push_back(Effect{seq, Ack::kCloseComplete, {}, std::string(name), {}});
}

SessionState::Effect* SessionState::FindEffect(std::uint64_t seq, Ack ack, std::string_view tag) {
  for (auto& e : effects_) {
    if (e.seq != seq || e.ack != ack) continue;
    if (ack == Ack::kCommandComplete && e.op.tag() != tag) continue;
    return &e;
  }
  return nullptr;
}

void SessionState::OnCommandComplete(std::string_view tag, std::uint64_t seq) {
  if (tag == "COMMIT") {
    // Everything acknowledged so far in this transaction is now durable.
    ApplyPending();
    local_.clear();
    end_ = End::kCommit;
    return;
  }
  if (tag == "ROLLBACK") {
    // Also the tag of ROLLBACK TO SAVEPOINT: decided at ReadyForQuery, by
    // whether the transaction is still open.
    end_ = End::kRollback;
    return;
  }
  if (effects_.empty()) return;
  if (Effect* e = FindEffect(seq, Ack::kCommandComplete, tag)) {
    Acknowledged(*e);
    effects_.erase(effects_.begin() + (e - effects_.data()));
  }
}

void SessionState::OnParseComplete(std::uint64_t seq) {
  if (effects_.empty()) return;
  if (Effect* e = FindEffect(seq, Ack::kParseComplete, {})) {
    Acknowledged(*e);
    effects_.erase(effects_.begin() + (e - effects_.data()));
  }
}

void SessionState::OnCloseComplete(std::uint64_t seq) {
  if (effects_.empty()) return;
  if (Effect* e = FindEffect(seq, Ack::kCloseComplete, {})) {
    Acknowledged(*e);
    effects_.erase(effects_.begin() + (e - effects_.data()));
  }
}

void SessionState::Acknowledged(Effect& e) {
  switch (e.ack) {
    case Ack::kParseComplete:
      // Parse is not transactional: the statement exists from here on.
      Upsert(&prepared_, e.name, std::move(e.prepared));
      return;
    case Ack::kCloseComplete:
      Erase(&prepared_, e.name);
      return;
    case Ack::kCommandComplete:
      if (e.op.kind == SessionOp::Kind::kSetLocal) {
        local_.push_back(std::move(e.op.text));
      } else if (e.op.transactional()) {
        pending_.push_back(std::move(e.op));
      } else {
        Apply(e.op);
      }
      return;
  }
}

void SessionState::Apply(const SessionOp& op) {
  using K = SessionOp::Kind;
  switch (op.kind) {
    case K::kSet:
      Upsert(&settings_, op.key, op.text);
      break;
    case K::kReset:
      Erase(&settings_, op.key);
      break;
    case K::kResetAll:
      settings_.clear();
      break;
    case K::kListen:
      Upsert(&listens_, op.key, op.text);
      break;
    case K::kUnlisten:
      Erase(&listens_, op.key);
      break;
    case K::kUnlistenAll:
      listens_.clear();
      break;
    case K::kPrepare:
      Upsert(&prepared_, op.key, Prepared{true, op.text, {}});
      break;
    case K::kDeallocate:
      Erase(&prepared_, op.key);
      break;
    case K::kDeallocateAll:
      prepared_.clear();
      break;
    case K::kDiscardAll:
      settings_.clear();
      prepared_.clear();
      listens_.clear();
      break;
    case K::kSetLocal:
    case K::kNoState:
      break;
  }
}

void SessionState::ApplyPending() {
  for (const auto& op : pending_) Apply(op);
  pending_.clear();
}

void SessionState::OnReadyForQuery(std::uint64_t last_seq, ppg::TransactionStatus status) {
  // What these requests announced and the server did not acknowledge failed
  // or was skipped after an error.
  if (!effects_.empty()) {
    effects_.erase(std::remove_if(effects_.begin(), effects_.end(),
                                  [&](const Effect& e) { return e.seq <= last_seq; }),
                   effects_.end());
  }
  if (status == ppg::TransactionStatus::kIdle) {
    // The transaction (explicit or the implicit one of a request) is over.
    if (end_ == End::kRollback || (end_ == End::kNone && request_error_)) {
      pending_.clear();
    } else {
      ApplyPending();
    }
    local_.clear();
  }
  request_error_ = false;
  end_ = End::kNone;
}

int SessionState::AppendReplay(std::string* out) const {
  int replies = 0;
  for (const auto& [key, text] : settings_) {
    ppg::AppendQuery(out, text);
    ++replies;
  }
  bool parsed = false;
  for (const auto& [name, p] : prepared_) {
    if (p.sql) {
      ppg::AppendQuery(out, p.text);
      ++replies;
    } else {
      ppg::AppendParse(out, name, p.text, p.param_types);
      parsed = true;
    }
  }
  if (parsed) {
    ppg::AppendSync(out);
    ++replies;
  }
  for (const auto& [channel, text] : listens_) {
    ppg::AppendQuery(out, text);
    ++replies;
  }
  return replies;
}

}  // namespace turnout::proxy::pg
