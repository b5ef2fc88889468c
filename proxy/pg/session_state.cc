#include "proxy/pg/session_state.h"

#include <algorithm>

#include "protocol/pg/message_writer.h"

namespace turnout::proxy::pg {

namespace ppg = protocol::pg;

namespace {

}  // namespace

std::string NormalizeIdentifier(std::string_view s) {
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

namespace {

// Names the server treats as one parameter.
std::string NormalizeParam(std::string_view s) {
  std::string k = NormalizeIdentifier(s);
  if (k == "time zone") return "timezone";
  if (k == "names") return "client_encoding";
  return k;
}

// A normalised name as SQL: plain when it reads back the same, else quoted.
std::string QuoteName(const std::string& name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char c : name)
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.');
  if (plain) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
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
  const std::string name = NormalizeIdentifier(st.object_name);
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
      Upsert(&current_.prepared, e.name, std::move(e.prepared));
      return;
    case Ack::kCloseComplete:
      Erase(&current_.prepared, e.name);
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
      Upsert(&current_.settings, op.key, op.text);
      break;
    case K::kReset:
      Erase(&current_.settings, op.key);
      break;
    case K::kResetAll:
      current_.settings.clear();
      break;
    case K::kListen:
      Upsert(&current_.listens, op.key, op.text);
      break;
    case K::kUnlisten:
      Erase(&current_.listens, op.key);
      break;
    case K::kUnlistenAll:
      current_.listens.clear();
      break;
    case K::kPrepare:
      Upsert(&current_.prepared, op.key, Prepared{true, op.text, {}});
      break;
    case K::kDeallocate:
      Erase(&current_.prepared, op.key);
      break;
    case K::kDeallocateAll:
      current_.prepared.clear();
      break;
    case K::kDiscardAll:
      current_.settings.clear();
      current_.prepared.clear();
      current_.listens.clear();
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

int SessionState::AppendReplay(std::string* out, const Snapshot* from) const {
  static const Snapshot kEmpty;
  const Snapshot& have = from ? *from : kEmpty;
  auto find = [](const auto& v, const std::string& key) -> const auto* {
    for (const auto& p : v)
      if (p.first == key) return &p.second;
    return static_cast<decltype(&v.front().second)>(nullptr);
  };
  int replies = 0;
  std::string sql;
  for (const auto& [key, text] : have.settings) {
    if (find(current_.settings, key)) continue;
    sql = "RESET " + QuoteName(key);
    ppg::AppendQuery(out, sql);
    ++replies;
  }
  for (const auto& [key, text] : current_.settings) {
    const std::string* had = find(have.settings, key);
    if (had && *had == text) continue;
    ppg::AppendQuery(out, text);
    ++replies;
  }
  bool extended = false;
  for (const auto& [name, p] : have.prepared) {
    const Prepared* now = find(current_.prepared, name);
    if (now && *now == p) continue;
    // Gone, or redefined under the same name: close the old one first.
    ppg::AppendClose(out, ppg::Target::kStatement, name);
    extended = true;
  }
  for (const auto& [name, p] : current_.prepared) {
    const Prepared* had = find(have.prepared, name);
    if (had && *had == p) continue;
    if (p.sql) {
      if (extended) {
        ppg::AppendSync(out);
        ++replies;
        extended = false;
      }
      ppg::AppendQuery(out, p.text);
      ++replies;
    } else {
      ppg::AppendParse(out, name, p.text, p.param_types);
      extended = true;
    }
  }
  if (extended) {
    ppg::AppendSync(out);
    ++replies;
  }
  for (const auto& [channel, text] : have.listens) {
    if (find(current_.listens, channel)) continue;
    sql = "UNLISTEN " + QuoteName(channel);
    ppg::AppendQuery(out, sql);
    ++replies;
  }
  for (const auto& [channel, text] : current_.listens) {
    if (find(have.listens, channel)) continue;
    ppg::AppendQuery(out, text);
    ++replies;
  }
  return replies;
}

}  // namespace turnout::proxy::pg
