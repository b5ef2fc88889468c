#include "control/pg_change_stream.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/pg_backfill.h"
#include "control/pg_change_apply.h"
#include "control/pg_client.h"
#include "control/pg_replication.h"
#include "protocol/pg/pgoutput.h"

namespace turnout::control {
namespace pgo = protocol::pg::pgoutput;
namespace ppg = protocol::pg;
namespace {

using Clock = std::chrono::steady_clock;

// Source transactions or statement bytes grouped into one transaction on new
// at most; a group is committed earlier whenever the stream pauses.
constexpr std::size_t kGroupTransactions = 1000;
constexpr std::size_t kGroupBytes = 4u << 20;
constexpr auto kReportEvery = std::chrono::seconds(1);
// How often the slot hears what new committed. Each confirmation makes the
// walsender update (and may make it save) the slot; under sync dual-write a
// group commits per client commit. The applier's stored position, not the
// slot, says where a restarted stream resumes, so a later confirmation only
// keeps WAL a little longer.
constexpr auto kConfirmEvery = std::chrono::milliseconds(100);
// WAL behind the stream beyond which it counts as lagging in time even with
// nothing received yet (other databases' WAL stays below it between reports).
constexpr std::int64_t kFarBehind = 1 << 20;

// The event triggers that put DDL into the WAL at its place (see the
// header): ddl_command_end for what creates or alters, sql_drop for DROP
// (ddl_command_end does not list dropped objects). Temporary objects and
// replication's own commands (publications, subscriptions) stay out; a query
// string is sent once per transaction, however many DDL statements it holds
// (the applier runs all of them).
//
// A table created after the slot joins every publication that moves every
// table (kEveryTableComment), in the creating transaction, so its rows
// follow the CREATE in the stream; one without a primary key gets REPLICA
// IDENTITY FULL first, or its UPDATEs and DELETEs on old would be refused
// once published. A failure there (an unlogged table, a missing privilege)
// is a warning, never the client's error: the table is then not streamed.
constexpr const char* kEveryTableComment = "turnout: every table";
constexpr const char* kDdlTriggerSql = R"sql(
create or replace function public.turnout_emit_ddl() returns event_trigger language plpgsql as $turnout$
declare
  created record;
  pub record;
begin
  if tg_tag like '% PUBLICATION' or tg_tag like '% SUBSCRIPTION' or tg_tag like '% EVENT TRIGGER' then
    return;
  end if;
  if tg_event = 'sql_drop' then
    if not exists (select 1 from pg_event_trigger_dropped_objects() d where not d.is_temporary) then
      return;
    end if;
  elsif not exists (select 1 from pg_event_trigger_ddl_commands() c
                    where c.schema_name is null or c.schema_name not like 'pg\_temp%') then
    return;
  end if;
  if current_setting('turnout.ddl_emitted', true) is distinct from md5(current_query()) then
    perform pg_logical_emit_message(true, 'turnout.ddl', current_query());
    perform set_config('turnout.ddl_emitted', md5(current_query()), true);
  end if;
  if tg_event <> 'ddl_command_end' then
    return;
  end if;
  for created in
    select c.objid, c.object_identity from pg_event_trigger_ddl_commands() c join pg_class r on r.oid = c.objid
    where c.command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') and c.object_type = 'table'
      and r.relkind in ('r', 'p') and r.relpersistence = 'p' and c.schema_name <> '_turnout'
  loop
    begin
      if not exists (select 1 from pg_index i where i.indrelid = created.objid and i.indisprimary) then
        execute format('alter table %s replica identity full', created.object_identity);
      end if;
      for pub in select p.pubname from pg_publication p
                 where obj_description(p.oid, 'pg_publication') = 'turnout: every table' loop
        execute format('alter publication %I add table %s', pub.pubname, created.object_identity);
      end loop;
    exception when others then
      raise warning 'turnout: table % is not streamed: %', created.object_identity, sqlerrm;
    end;
  end loop;
end $turnout$;
do $turnout$ begin
  if not exists (select 1 from pg_event_trigger where evtname = 'turnout_ddl') then
    create event trigger turnout_ddl on ddl_command_end execute function public.turnout_emit_ddl();
  end if;
  if not exists (select 1 from pg_event_trigger where evtname = 'turnout_ddl_drop') then
    create event trigger turnout_ddl_drop on sql_drop execute function public.turnout_emit_ddl();
  end if;
end $turnout$;
)sql";

using Owned = PgOwnedSide;

absl::StatusOr<Owned> Connect(const routing::Backend& b, const char* name) {
  return PgConnectSide(b, name, "turnout-change-stream");
}

std::uint64_t Fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Drops the slot unless a walsender still holds it (a connection of a dead
// runner lingers until the server notices): retried for a few seconds.
absl::Status DropSlot(const PgSide& old, const std::string& slot) {
  for (int attempt = 0;; ++attempt) {
    auto r = PgExec(old,
                    "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                    "where slot_name = $1 and not active",
                    {slot}, "drop slot " + slot);
    if (!r.ok()) return r.status();
    auto left = PgExec(old, "select 1 from pg_replication_slots where slot_name = $1", {slot}, "find slot " + slot);
    if (!left.ok()) return left.status();
    if (PQntuples(left->get()) == 0) return absl::OkStatus();
    if (attempt == 40) return absl::UnavailableError(absl::StrCat("old: slot ", slot, " is still in use"));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// The catch-up mark: a non-transactional logical message on old. Every
// transaction that committed before it is decoded before it, so once the
// stream delivers it and the group is committed, new has everything old had
// when the mark was written.
constexpr std::string_view kCaughtUpPrefix = "turnout.caught_up";

// This process among the sidecars, in its fences: its pid and a random
// number ([0-9a-f-], safe in a literal).
const std::string& FenceOrigin() {
  static const std::string origin = [] {
    std::random_device rd;
    const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    char buf[48];
    std::snprintf(buf, sizeof buf, "%d-%016llx", static_cast<int>(getpid()), static_cast<unsigned long long>(r));
    return std::string(buf);
  }();
  return origin;
}

// Whether a fence's content names `slot`; `*here`: written by this process.
bool FenceFor(std::string_view content, std::string_view slot, bool* here) {
  *here = false;
  if (content == slot) return true;
  if (content.size() <= slot.size() || content.substr(0, slot.size()) != slot || content[slot.size()] != ' ')
    return false;
  *here = content.substr(slot.size() + 1) == FenceOrigin();
  return true;
}

absl::Status EmitCaughtUpMark(const PgSide& old, const std::string& slot) {
  auto r = PgExec(old, "select pg_logical_emit_message(false, $1, $2)", {std::string(kCaughtUpPrefix), slot},
                  "write the catch-up mark");
  return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace

// A non-transactional message is not flushed by itself (PostgreSQL 15),
// and the walsender decodes only flushed WAL: a transaction with an xid
// (txid_current()) and synchronous_commit on flushes it at commit. Two
// statements in one implicit transaction (a fence is on the path of every
// sync commit); the setting stays on the connection, which only fences and
// samples. (A transactional message would need no xid of its own, but
// arrives as a transaction new must commit before the fence counts: a
// round trip to new more per sync commit, 0.38-0.55x instead of
// 0.54-0.66x passthrough at pgbench -c 8.)
std::string StreamFenceStatement(const std::string& slot, bool from_here) {
  return absl::StrCat("select pg_logical_emit_message(false, '", std::string(kFencePrefix), "', '", slot,
                      from_here ? " " : "", from_here ? FenceOrigin() : "", "')::text, txid_current()");
}

std::string StreamFenceSql(const std::string& slot, bool from_here) {
  return absl::StrCat("set synchronous_commit = on; ", StreamFenceStatement(slot, from_here));
}

std::string StreamSampleSql() { return "select pg_current_wal_insert_lsn()::text as turnout_sample"; }

bool SampleResultLsn(const PGresult* r, std::uint64_t* lsn) {
  return PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
         std::string_view(PQfname(r, 0)) == "turnout_sample" && pgo::ParseLsn(PQgetvalue(r, 0, 0), lsn);
}

bool FenceResultLsn(const PGresult* r, std::uint64_t* lsn) {
  return PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
         std::string_view(PQfname(r, 0)) == "pg_logical_emit_message" && pgo::ParseLsn(PQgetvalue(r, 0, 0), lsn);
}

absl::StatusOr<std::uint64_t> EmitStreamFence(const routing::Backend& source, const std::string& slot) {
  auto side = PgConnectSide(source, "old", "turnout-cutover");
  if (!side.ok()) return side.status();
  if (PQsendQuery(side->get(), StreamFenceSql(slot).c_str()) != 1)
    return PgFailed(*side, nullptr, "fence the stream");
  std::uint64_t lsn = 0;
  absl::Status failed;
  while (PGresult* raw = PQgetResult(side->get())) {
    PgResult r(raw);
    if (PQresultStatus(raw) == PGRES_FATAL_ERROR && failed.ok()) failed = PgFailed(*side, raw, "fence the stream");
    (void)FenceResultLsn(raw, &lsn);
  }
  if (!failed.ok()) return failed;
  if (lsn == 0) return absl::InternalError("old: fence: unreadable position");
  return lsn;
}

namespace {

// One attempt: (copy, then) stream until finished, stopped or an error.
class StreamRun {
 public:
  // `back`: the stream from new to old after a cutover (no copy: it starts
  // where PrepareStreamBack left it); `source_b` is then new.
  StreamRun(const routing::Backend& source_b, const routing::Backend& target_b, const std::vector<std::string>& scope,
            const DataSpec& spec, const StreamOptions& options, RouteProgress& progress, BackfillContext& ctx,
            bool back = false)
      : source_b_(source_b), target_b_(target_b), scope_(scope), spec_(spec), options_(options), progress_(progress),
        ctx_(ctx), back_(back), source_name_(back ? "new" : "old"), target_name_(back ? "old" : "new"),
        names_(back ? StreamBackNamesFor(options.migration_id, progress.route)
                    : StreamNamesFor(options.migration_id, progress.route)) {}

  absl::Status Run() {
    auto source = Connect(source_b_, source_name_);
    if (!source.ok()) return source.status();
    source_ = *std::move(source);
    auto target = Connect(target_b_, target_name_);
    if (!target.ok()) return target.status();
    target_ = *std::move(target);
    // The stream back always marks and flushes each group; the forward one
    // marks from a cutover's fence on, and flushes at its announcements
    // (ChangeApplier::Marks, ChangeApplier::Durability).
    applier_.emplace(target_, names_.slot, spec_.rule,
                     back_ ? ChangeApplier::Marks::kAlways : ChangeApplier::Marks::kFromCutover,
                     back_ ? ChangeApplier::Durability::kEachGroup : ChangeApplier::Durability::kAtAnnouncements);
    auto stored = applier_->Open();
    if (!stored.ok()) return stored.status();

    progress_.stream.slot = names_.slot;
    std::uint64_t from = *stored;
    // Past the copy (streaming, or caught up once): resume from new's
    // position, unless new has none or old lost the slot.
    const bool copied = progress_.stream.phase == "streaming" || progress_.stream.phase == "caught_up";
    if (copied && from == 0) ctx_.Log(absl::StrCat("slot ", names_.slot, ": no stored position on new; copying again"));
    if (copied && from != 0) {
      auto repl = ReplicationConnection::Open(source_b_);
      if (!repl.ok()) return repl.status();
      repl_.emplace(*std::move(repl));
      if (auto st = repl_->Start(names_.slot, names_.publication, from); !st.ok()) {
        auto exists = PgExec(source_, "select 1 from pg_replication_slots where slot_name = $1", {names_.slot});
        if (exists.ok() && PQntuples(exists->get()) == 0) {
          ctx_.Log(absl::StrCat("slot ", names_.slot, " is gone from old; copying again"));
          repl_.reset();
        } else if (absl::StrContains(st.message(), "is active for PID")) {
          // The walsender of this stream's previous connection (the first
          // catch-up, or a lost one) has not exited yet: try again shortly.
          return absl::UnavailableError(st.message());
        } else {
          return st;
        }
      }
    }
    if (!repl_ && back_) {
      return absl::FailedPreconditionError(absl::StrCat("slot ", names_.slot, " on new has no stored position on old",
                                                        " (the cutover that flipped writes to new prepares it)"));
    }
    if (!repl_) {
      auto st = CopyUnderSlot(&from);
      if (!st.ok()) return st;
    }
    return Stream(from);
  }

 private:
  // Publication, DDL trigger, a new slot, the copy under its snapshot.
  absl::Status CopyUnderSlot(std::uint64_t* from) {
    auto tables = PostgresTablesToMove(source_b_, target_b_, scope_, progress_);
    if (!tables.ok()) return tables.status();
    if (auto st = DropSlot(source_, names_.slot); !st.ok()) return st;
    const std::string pub = PgIdentifier(source_.get(), names_.publication);
    if (auto r = PgExec(source_, "drop publication if exists " + pub); !r.ok()) return r.status();
    const std::string create =
        tables->empty() ? "create publication " + pub
                        : absl::StrCat("create publication ", pub, " for table ", absl::StrJoin(*tables, ", "));
    if (auto r = PgExec(source_, create, {}, "create publication " + names_.publication); !r.ok()) return r.status();
    // Moving every table includes those created later (the DDL trigger).
    if (scope_.empty()) {
      auto r = PgExec(source_, absl::StrCat("comment on publication ", pub, " is '", kEveryTableComment, "'"), {},
                      "mark publication " + names_.publication);
      if (!r.ok()) return r.status();
    }
    if (auto r = PgExecScript(source_, kDdlTriggerSql, "install the DDL event triggers"); !r.ok()) {
      if (PQstatus(source_.get()) != CONNECTION_OK) return r.status();
      AddNote(progress_, absl::StrCat("DDL is not streamed (", r.status().message(), ")"));
    }
    auto repl = ReplicationConnection::Open(source_b_);
    if (!repl.ok()) return repl.status();
    repl_.emplace(*std::move(repl));
    auto slot = repl_->CreateSlot(names_.slot);
    if (!slot.ok()) return slot.status();
    ctx_.Log(absl::StrCat("slot ", names_.slot, " created at ", pgo::FormatLsn(slot->consistent_point),
                          "; copying under its snapshot"));
    progress_.stream.phase = "copy";
    progress_.checkpoint = nullptr;  // a new snapshot: every table again
    progress_.copied = progress_.written = 0;
    if (auto st = ctx_.Checkpoint(progress_); !st.ok()) return st;

    DataSpec copy = spec_;
    copy.mode = DataSpec::Mode::kSnapshot;
    if (auto st = CopyPostgres(source_b_, target_b_, scope_, copy, progress_, ctx_, slot->snapshot); !st.ok()) return st;
    if (auto st = applier_->StorePosition(slot->consistent_point); !st.ok()) return st;
    *from = slot->consistent_point;
    progress_.stream.phase = "streaming";
    progress_.stream.applied_lsn = pgo::FormatLsn(*from);
    progress_.ratio = 0.99;
    if (auto st = ctx_.Checkpoint(progress_); !st.ok()) return st;
    return repl_->Start(names_.slot, names_.publication, *from);
  }

  // `reached`: a fence or keepalive position received at a transaction
  // boundary (everything before it is in the group), or 0; `announce`: it
  // passes a fence of another process (ChangeApplier::Commit). The group
  // is sent; new's answer is taken by Applied() later.
  absl::Status CommitGroup(std::uint64_t reached = 0, bool announce = false) {
    if (applier_->pending_transactions() == 0) return absl::OkStatus();
    return applier_->Commit(reached, announce);
  }

  absl::Status ConfirmNowAndThen() {
    const auto now = Clock::now();
    if (now < next_confirm_) return absl::OkStatus();
    next_confirm_ = now + kConfirmEvery;
    return repl_->Confirm(applier_->durable());
  }

  // Takes new's answers; once it committed further, sessions waiting for
  // new to have their commits are told (routing/stream_positions.h), in
  // this process at once, and the slot may forget what is durable.
  absl::Status Applied() {
    if (!decoded_.empty()) {
      if (options_.on_commits) options_.on_commits(decoded_);
      decoded_.clear();
    }
    if (auto st = applier_->Poll(); !st.ok()) return st;
    if (applier_->reached() <= reached_) return absl::OkStatus();
    reached_ = applier_->reached();
    Heartbeat();
    return ConfirmNowAndThen();
  }

  // Each decoded transaction's xid and end, for this process's sync
  // commits that wait for exactly theirs (told at the next Applied()).
  void NoteDecoded(const pgo::LogicalMessage& m) {
    if (!options_.on_commits) return;
    if (const auto* b = std::get_if<pgo::Begin>(&m)) decoding_xid_ = b->xid;
    else if (const auto* c = std::get_if<pgo::Commit>(&m)) decoded_.push_back({decoding_xid_, c->end_lsn});
  }

  void Heartbeat() {
    if (options_.on_applied) options_.on_applied(reached_);
  }

  // Everything sent is committed (a stop, the end of the stream).
  absl::Status Drain() {
    if (auto st = applier_->Drain(); !st.ok()) return st;
    return Applied();
  }

  absl::Status Stream(std::uint64_t from) {
    ctx_.Log(absl::StrCat("slot ", names_.slot, ": streaming from ", pgo::FormatLsn(from)));
    reached_ = from;
    // A keepalive's or fence's position with nothing pending before it;
    // the last fence's; the last given to the applier without a group.
    std::uint64_t idle_end = 0, fence_end = 0, reach_sent = 0;
    bool mark_sent = false, mark_seen = false;
    auto next_report = Clock::now();
    const std::int64_t txns_before = progress_.stream.transactions, rows_before = progress_.stream.rows;
    for (;;) {
      if (auto st = Applied(); !st.ok()) return st;
      // Something to send now: a group (while fewer than the applier's
      // limit are in flight) or a position to announce. Otherwise wait for
      // old's next message or, while groups are in flight, new's answer.
      const bool boundary = applier_->AtTransactionBoundary();
      const bool ready = boundary && ((applier_->pending_transactions() > 0 && applier_->can_send()) ||
                                      (applier_->pending_transactions() == 0 && idle_end > reach_sent));
      auto data = repl_->Next(ready ? std::chrono::milliseconds(0) : std::chrono::milliseconds(100),
                              applier_->in_flight() > 0 ? applier_->socket() : -1);
      if (!data.ok()) return data.status();
      if (data->size == 0) {
        // Nothing more buffered (or new answered): what arrived is sent now.
        if (applier_->AtTransactionBoundary()) {
          if (applier_->pending_transactions() > 0) {
            if (applier_->can_send()) {
              if (auto st = CommitGroup(idle_end, fence_end > applier_->announced()); !st.ok()) return st;
              reach_sent = idle_end;
            }
          } else if (idle_end > reach_sent) {
            // Other sidecars hear of their fence at once (their sessions
            // wait for it); of a keepalive's position, or this process's
            // fence, only with the heartbeat (nobody there waits for it:
            // a sample that needs the stream to move writes a fence).
            if (auto st = applier_->Reach(idle_end, /*announce=*/fence_end > applier_->announced()); !st.ok())
              return st;
            reach_sent = idle_end;
          }
        }
      } else {
        pgo::CopyMessage copy;
        const ppg::Bytes bytes(reinterpret_cast<const std::uint8_t*>(data->bytes.get()),
                               static_cast<std::size_t>(data->size));
        if (auto ec = pgo::DecodeCopyData(bytes, &copy))
          return absl::InternalError(absl::StrCat("old: undecodable replication message: ", ec.message()));
        if (const auto* x = std::get_if<pgo::XLogData>(&copy)) {
          pgo::LogicalMessage m;
          if (auto ec = pgo::DecodeLogicalMessage(x->data, /*in_stream=*/false, &m))
            return absl::InternalError(absl::StrCat("old: undecodable pgoutput message: ", ec.message()));
          if (const auto* msg = std::get_if<pgo::Message>(&m); msg != nullptr && !msg->transactional) {
            const std::string_view content = ppg::AsText(msg->content);
            if (msg->prefix == kCaughtUpPrefix && content == names_.slot) mark_seen = mark_sent;
            // A fence (kFencePrefix): everything before it was received
            // (and is sent at the next pause). One of this process's
            // feeder reaches its sessions through on_applied alone.
            bool here = false;
            if (msg->prefix == kFencePrefix && FenceFor(content, names_.slot, &here) &&
                applier_->AtTransactionBoundary()) {
              idle_end = std::max(idle_end, msg->lsn);
              if (!here) fence_end = idle_end;
              // A cutover's fence (the slot alone; a feeder's names its
              // process): a stream back may follow, so what is applied
              // from here on must not travel back.
              if (content == names_.slot && applier_->MarkFromNowOn())
                ctx_.Log(absl::StrCat("slot ", names_.slot, ": a cutover's fence at ", pgo::FormatLsn(msg->lsn),
                                      "; new's transactions are marked from here on"));
            }
          }
          NoteDecoded(m);
          if (auto st = applier_->Take(m); !st.ok()) return st;
          if (applier_->AtTransactionBoundary() && (applier_->pending_transactions() >= kGroupTransactions ||
                                                    applier_->pending_bytes() >= kGroupBytes)) {
            if (auto st = CommitGroup(); !st.ok()) return st;
          }
        } else if (const auto* k = std::get_if<pgo::PrimaryKeepalive>(&copy)) {
          // Everything before a keepalive was sent before it.
          if (applier_->AtTransactionBoundary()) idle_end = std::max(idle_end, k->wal_end);
          if (k->reply_requested)
            if (auto st = repl_->Confirm(applier_->durable()); !st.ok()) return st;
        }
      }
      if (Clock::now() < next_report) continue;
      next_report = Clock::now() + kReportEvery;
      if (!ctx_.ShouldContinue()) {
        if (applier_->AtTransactionBoundary())
          if (auto st = CommitGroup(idle_end, fence_end > applier_->announced()); !st.ok()) return st;
        if (auto st = Drain(); !st.ok()) return st;
        Report(txns_before, rows_before);
        (void)ctx_.Checkpoint(progress_);
        return StoppedAtBatchBoundary();
      }
      if (!mark_sent && options_.finish_requested && options_.finish_requested()) {
        if (auto st = EmitCaughtUpMark(source_, names_.slot); !st.ok()) return st;
        mark_sent = true;
        ctx_.Log(absl::StrCat("slot ", names_.slot, ": catching up with old to finish"));
      }
      const bool idle = applier_->AtTransactionBoundary() && applier_->pending_transactions() == 0;
      if (mark_seen && idle)
        if (auto st = Drain(); !st.ok()) return st;
      const bool caught_up = mark_seen && idle && applier_->in_flight() == 0;
      if (caught_up) progress_.stream.phase = "caught_up";
      // Idle: ask where the server's decoding is, so the slot (and the lag)
      // moves past WAL that holds nothing for this stream.
      if (idle && applier_->in_flight() == 0)
        if (auto st = repl_->Confirm(applier_->durable(), /*reply_requested=*/true); !st.ok()) return st;
      Report(txns_before, rows_before);
      // The heartbeat that keeps waiting sessions' stream live (here, and
      // through new after what was sent).
      Heartbeat();
      if (auto st = applier_->Announce(reached_); !st.ok()) return st;
      if (caught_up) {
        // On new's disk before the stream ends (its slot may go next).
        if (auto st = applier_->MakeDurable(); !st.ok()) return st;
        // The stream's rows carry old's ids; new's sequences never moved.
        if (auto st = AdvancePostgresSequences(source_b_, target_b_, scope_, progress_); !st.ok()) return st;
      }
      if (auto st = ctx_.Checkpoint(progress_); !st.ok()) return st;
      if (caught_up) return absl::OkStatus();
    }
  }

  // The figures of progress.stream. The lag is measured against old's
  // current WAL position: a logical walsender's XLogData carries the
  // record's own position, not the end of WAL.
  void Report(std::int64_t txns_before, std::int64_t rows_before) {
    StreamProgress& s = progress_.stream;
    s.applied_lsn = pgo::FormatLsn(reached_);
    s.transactions = txns_before + applier_->transactions();
    s.rows = rows_before + applier_->rows();
    auto r = PgExec(source_,
                    "select pg_current_wal_lsn()::text, coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint "
                    "from pg_replication_slots where slot_name = $1",
                    {names_.slot});
    std::uint64_t current = 0;
    if (r.ok() && PQntuples(r->get()) == 1 && pgo::ParseLsn(PgValue(*r, 0, 0), &current)) {
      s.retained_wal_bytes = std::atoll(PgValue(*r, 0, 1).c_str());
      s.lag_bytes = current > reached_ ? static_cast<std::int64_t>(current - reached_) : 0;
    }
    // How long ago the oldest change new lacks committed on old: the oldest
    // transaction received and not applied, else (far behind, nothing
    // received yet) the age of the last one applied.
    std::int64_t since = applier_->oldest_pending_commit_time();
    if (since == 0 && s.lag_bytes > kFarBehind) since = applier_->applied_commit_time();
    s.lag_seconds = since > 0 ? std::max<double>(0, static_cast<double>(PgEpochMicrosNow() - since) / 1e6) : 0;
    progress_.error.clear();
  }

  const routing::Backend& source_b_;
  const routing::Backend& target_b_;
  const std::vector<std::string>& scope_;
  const DataSpec& spec_;
  const StreamOptions& options_;
  RouteProgress& progress_;
  BackfillContext& ctx_;
  const bool back_;
  const char* source_name_;
  const char* target_name_;
  const StreamNames names_;
  Owned source_;
  Owned target_;
  std::optional<ChangeApplier> applier_;
  std::optional<ReplicationConnection> repl_;
  // Everything of old before it is committed on new (what sessions and
  // the record hear); the slot is confirmed only to applier_->durable().
  std::uint64_t reached_ = 0;
  std::uint32_t decoding_xid_ = 0;  // of the transaction being decoded
  std::vector<routing::StreamPosition::DecodedCommit> decoded_;  // not yet told (NoteDecoded)
  Clock::time_point next_confirm_{};  // ConfirmNowAndThen
};

}  // namespace

StreamNames StreamNamesFor(const std::string& migration_id, const std::string& route) {
  std::string folded;
  for (char c : migration_id) {
    if (folded.size() == 32) break;
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    folded += keep ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_';
  }
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(Fnv1a(route, Fnv1a(std::string(1, '\0'), Fnv1a(migration_id)))));
  std::string name = absl::StrCat(kStreamNamePrefix, folded, "_", std::string(hash, 12));
  return {name, name};
}

StreamNames StreamBackNamesFor(const std::string& migration_id, const std::string& route) {
  StreamNames forward = StreamNamesFor(migration_id, route);
  const std::string name = forward.slot + "_back";
  return {name, name};
}

absl::StatusOr<std::uint64_t> PrepareStreamBack(const routing::Backend& old_backend,
                                                const routing::Backend& new_backend, const std::string& migration_id,
                                                const std::string& route) {
  const StreamNames forward = StreamNamesFor(migration_id, route);
  const StreamNames back = StreamBackNamesFor(migration_id, route);
  auto old = Connect(old_backend, "old");
  if (!old.ok()) return old.status();
  // The tables the forward stream carries, and whether it carries every table.
  auto tables = PgExec(*old,
                       "select format('%I.%I', schemaname, tablename) from pg_publication_tables where pubname = $1 "
                       "order by 1",
                       {forward.publication}, "list the published tables");
  if (!tables.ok()) return tables.status();
  auto every = PgExec(*old, "select obj_description(oid, 'pg_publication') from pg_publication where pubname = $1",
                      {forward.publication}, "read publication " + forward.publication);
  if (!every.ok()) return every.status();
  const bool every_table = PQntuples(every->get()) == 1 && PgValue(*every, 0, 0) == kEveryTableComment;
  std::vector<std::string> list;
  for (int i = 0; i < PQntuples(tables->get()); ++i) list.push_back(PgValue(*tables, i, 0));

  auto target = Connect(new_backend, "new");
  if (!target.ok()) return target.status();
  const std::string pub = PgIdentifier(target->get(), back.publication);
  if (auto r = PgExec(*target, "drop publication if exists " + pub); !r.ok()) return r.status();
  const std::string create = list.empty() ? "create publication " + pub
                                          : absl::StrCat("create publication ", pub, " for table ", absl::StrJoin(list, ", "));
  if (auto r = PgExec(*target, create, {}, "create publication " + back.publication); !r.ok()) return r.status();
  if (every_table) {
    auto r = PgExec(*target, absl::StrCat("comment on publication ", pub, " is '", kEveryTableComment, "'"), {},
                    "mark publication " + back.publication);
    if (!r.ok()) return r.status();
  }
  // Without the triggers new's DDL does not travel back; the rows still do.
  (void)PgExecScript(*target, kDdlTriggerSql, "install the DDL event triggers on new");

  if (auto st = DropSlot(*target, back.slot); !st.ok()) return st;
  auto repl = ReplicationConnection::Open(new_backend);
  if (!repl.ok()) return repl.status();
  auto slot = repl->CreateSlot(back.slot);
  if (!slot.ok()) return slot.status();

  // Old starts there: its applier resumes from this position.
  ChangeApplier applier(*old, back.slot, ConflictRule::kNone);
  if (auto opened = applier.Open(); !opened.ok()) return opened.status();
  if (auto st = applier.StorePosition(slot->consistent_point); !st.ok()) return st;
  return slot->consistent_point;
}

absl::Status StreamPostgresBack(const routing::Backend& old_backend, const routing::Backend& new_backend,
                                const StreamOptions& options, RouteProgress& progress, BackfillContext& ctx) {
  const std::vector<std::string> every_table;
  const DataSpec spec;
  progress.stream.phase = "streaming";  // it starts where PrepareStreamBack left it
  for (int failures = 0;;) {
    StreamRun run(new_backend, old_backend, every_table, spec, options, progress, ctx, /*back=*/true);
    absl::Status st = run.Run();
    if (st.ok() || IsStoppedAtBatchBoundary(st) || st.code() != absl::StatusCode::kUnavailable) return st;
    ++failures;
    progress.error = std::string(st.message());
    ctx.Log(absl::StrCat("change stream back to old: ", st.message(), "; retrying from the stored position"));
    (void)ctx.Checkpoint(progress);  // the record shows why it is not applying
    ctx.Sleep(std::chrono::seconds(std::min(failures, 10)));
    if (!ctx.ShouldContinue()) return StoppedAtBatchBoundary();
  }
}

absl::StatusOr<std::vector<std::string>> StreamPrerequisitesMissing(const routing::Backend& source) {
  auto old = Connect(source, "old");
  if (!old.ok()) return old.status();
  auto r = PgExec(*old,
                  "select current_setting('wal_level'), current_setting('max_replication_slots')::int, "
                  "(select count(*) from pg_replication_slots)::int, current_setting('max_wal_senders')::int, "
                  "(select rolreplication or rolsuper from pg_roles where rolname = current_user)",
                  {}, "read replication settings");
  if (!r.ok()) return r.status();
  std::vector<std::string> missing;
  if (PgValue(*r, 0, 0) != "logical")
    missing.push_back(absl::StrCat("wal_level is ", PgValue(*r, 0, 0), ", needs logical (a restart of old)"));
  if (std::atoi(PgValue(*r, 0, 1).c_str()) <= std::atoi(PgValue(*r, 0, 2).c_str()))
    missing.push_back(absl::StrCat("max_replication_slots (", PgValue(*r, 0, 1), ") has no free slot"));
  if (std::atoi(PgValue(*r, 0, 3).c_str()) < 1) missing.push_back("max_wal_senders is 0");
  if (PgValue(*r, 0, 4) != "t") missing.push_back(absl::StrCat("role ", source.user, " lacks REPLICATION"));
  return missing;
}

absl::Status StreamPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                            const std::vector<std::string>& scope_tables, const DataSpec& spec,
                            const StreamOptions& options, RouteProgress& progress, BackfillContext& ctx) {
  // A lost connection (old or new restarted, a network blip) is retried
  // from new's stored position, 1 s, 2 s, … up to 10 s apart.
  for (int failures = 0;;) {
    StreamRun run(old_backend, new_backend, scope_tables, spec, options, progress, ctx);
    absl::Status st = run.Run();
    if (st.ok() || IsStoppedAtBatchBoundary(st) || st.code() != absl::StatusCode::kUnavailable) return st;
    ++failures;
    progress.error = std::string(st.message());
    ctx.Log(absl::StrCat("change stream: ", st.message(), "; retrying from the stored position"));
    (void)ctx.Checkpoint(progress);
    ctx.Sleep(std::chrono::seconds(std::min(failures, 10)));
    if (!ctx.ShouldContinue()) return StoppedAtBatchBoundary();
  }
}

absl::StatusOr<StaleStreams> DropStaleStreams(const routing::Backend& source, const std::set<std::string>& keep) {
  auto old = Connect(source, "old");
  if (!old.ok()) return old.status();
  StaleStreams out;
  std::vector<std::string>& dropped = out.dropped;
  auto slots = PgExec(*old,
                      "select slot_name, active from pg_replication_slots "
                      "where slot_name like 'turnout\\_%' and database = current_database()",
                      {}, "list slots");
  if (!slots.ok()) return slots.status();
  int left = 0;
  for (int i = 0; i < PQntuples(slots->get()); ++i) {
    const std::string name = PgValue(*slots, i, 0);
    if (keep.count(name)) {
      ++left;
      continue;
    }
    if (PgValue(*slots, i, 1) == "t") {
      ++left;
      ++out.in_use;
      continue;
    }
    auto r = PgExec(*old, "select pg_drop_replication_slot($1)", {name}, "drop slot " + name);
    if (r.ok()) dropped.push_back("slot " + name);
    else ++left, ++out.in_use;
  }
  auto pubs = PgExec(*old, "select pubname from pg_publication where pubname like 'turnout\\_%'", {}, "list publications");
  if (!pubs.ok()) return pubs.status();
  for (int i = 0; i < PQntuples(pubs->get()); ++i) {
    const std::string name = PgValue(*pubs, i, 0);
    if (keep.count(name)) continue;
    if (PgExec(*old, "drop publication if exists " + PgIdentifier(old->get(), name)).ok())
      dropped.push_back("publication " + name);
  }
  if (left == 0) {
    auto trig = PgExec(*old, "select 1 from pg_event_trigger where evtname = 'turnout_ddl'");
    if (trig.ok() && PQntuples(trig->get()) == 1 &&
        PgExecScript(*old, "drop event trigger if exists turnout_ddl; drop event trigger if exists turnout_ddl_drop; "
                           "drop function if exists public.turnout_emit_ddl()", "drop the DDL event triggers")
            .ok())
      dropped.push_back("event triggers turnout_ddl");
  }
  return out;
}

}  // namespace turnout::control
