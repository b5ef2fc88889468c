// A table verification's range logic (control/pg_verify.h): key ranges cut
// and bisected, keyless buckets, the "lsn" and "recheck" consistency modes,
// and settling. The SQL helpers are in pg_verify_sql.cc, the report in
// pg_verify_report.cc.
#include "control/pg_verify.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "control/pg_verify_sql.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using pg_verify::Column;
using pg_verify::Digest;
using pg_verify::ExecBoth;
using pg_verify::kDigestSums;
using pg_verify::Key;
using pg_verify::Range;
using pg_verify::ReadColumns;
using pg_verify::Shape;

using Kind = PgRowDifference::Kind;

// Cut at a UTF-8 character boundary, so the report stays valid JSON text.
std::string Truncated(const std::string& s, std::size_t limit) {
  if (s.size() <= limit) return s;
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "…";
}

class TableVerifier {
 public:
  TableVerifier(const PgSide& old_side, const PgSide& new_side, const PgVerifyOptions& o, PgTableVerify& out)
      : old_(old_side), new_(new_side), o_(o), out_(out) {}

  absl::Status Run() {
    if (auto st = Describe(); !st.ok() || !out_.error_new.empty()) return st;
    lsn_ = static_cast<bool>(o_.wait_new_applied_past);
    out_.mode = lsn_ ? "lsn" : o_.recheck_delay > absl::ZeroDuration() ? "recheck" : "single pass";
    if (s_.key.empty()) return RunKeyless();
    return RunKeyed();
  }

 private:
  absl::Status Describe() {
    s_.table = QuoteQualified(out_.table);
    auto on_new = PgExec(new_, "select to_regclass($1) is not null", {s_.table}, "find table");
    if (!on_new.ok()) return on_new.status();
    if (PgValue(*on_new, 0, 0) != "t") {
      out_.error_new = "does not exist on new";
      return absl::OkStatus();
    }
    auto oc = ReadColumns(old_, s_.table);
    if (!oc.ok()) return oc.status();
    auto nc = ReadColumns(new_, s_.table);
    if (!nc.ok()) return nc.status();
    for (const auto& c : *oc) {
      const bool shared = std::any_of(nc->begin(), nc->end(), [&](const Column& n) { return n.name == c.name; });
      if (shared) s_.columns.push_back(c);
      else out_.columns_only_old.push_back(c.name);
    }
    for (const auto& n : *nc)
      if (std::none_of(oc->begin(), oc->end(), [&](const Column& c) { return c.name == n.name; }))
        out_.columns_only_new.push_back(n.name);
    if (s_.columns.empty()) {
      out_.error_new = "no column in common with old";
      return absl::OkStatus();
    }
    auto pk = PgExec(old_,
                     "select a.attname from pg_index i "
                     "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                     "where i.indrelid = to_regclass($1) and i.indisprimary "
                     "order by array_position(i.indkey::int2[], a.attnum)",
                     {s_.table}, "read primary key");
    if (!pk.ok()) return pk.status();
    for (int i = 0; i < PQntuples(pk->get()); ++i) {
      const std::string name = PgValue(*pk, i, 0);
      auto it = std::find_if(s_.columns.begin(), s_.columns.end(), [&](const Column& c) { return c.name == name; });
      // A key column missing on new: compare as a keyless table.
      if (it == s_.columns.end()) {
        s_.key.clear();
        break;
      }
      s_.key.push_back(*it);
      // Both servers must cut the same ranges: a key column collated alike
      // on both keeps its collation (and its index); otherwise ranges are
      // compared in "C" order on both, which no index serves.
      // From here a key column's `collation` is the one its ranges are
      // compared in: empty for its own.
      const auto new_col = std::find_if(nc->begin(), nc->end(), [&](const Column& c) { return c.name == name; });
      s_.key.back().collation = it->collation.empty() || it->collation == new_col->collation ? "" : "C";
    }
    std::vector<std::string> cols, expr, order, text;
    for (const auto& c : s_.columns) cols.push_back(c.quoted);
    out_.row_columns = cols;
    s_.row_text = absl::StrCat("row(", absl::StrJoin(cols, ", "), ")::text");
    // Qualified: in ORDER BY a bare name would mean the output column of
    // the same name (the key as text), and sort as text.
    for (const auto& k : s_.key) {
      const std::string q = "turnout_t." + k.quoted;
      const std::string e = k.collation.empty() ? q : q + " collate \"C\"";
      expr.push_back(e);
      order.push_back(e);
      text.push_back(q + "::text");
      out_.primary_key.push_back(k.name);
      out_.key_types.push_back(k.type);
    }
    s_.key_expr = "(" + absl::StrJoin(expr, ", ") + ")";
    s_.key_order = absl::StrJoin(order, ", ");
    s_.key_text = absl::StrJoin(text, ", ");
    return absl::OkStatus();
  }

  // `key_expr op ($n::type, …)`, its values appended to `params`.
  std::string Compare(const char* op, const Key& k, std::vector<std::string>& params) const {
    std::vector<std::string> values;
    for (std::size_t i = 0; i < k.size(); ++i) {
      params.push_back(k[i]);
      values.push_back(absl::StrCat("$", params.size(), "::", s_.key[i].type));
    }
    return absl::StrCat(s_.key_expr, " ", op, " (", absl::StrJoin(values, ", "), ")");
  }
  std::string Where(const Range& r, std::vector<std::string>& params) const {
    std::vector<std::string> parts;
    if (r.lower) parts.push_back(Compare(">", *r.lower, params));
    if (r.upper) parts.push_back(Compare("<=", *r.upper, params));
    return parts.empty() ? "true" : absl::StrJoin(parts, " and ");
  }

  static Key KeyAt(const PgResult& r, int row, std::size_t n) {
    Key k;
    for (std::size_t i = 0; i < n; ++i) k.push_back(PgValue(r, row, static_cast<int>(i)));
    return k;
  }

  // The digests of `r` on old and on new.
  absl::StatusOr<std::pair<Digest, Digest>> DigestBoth(const Range& r) {
    std::vector<std::string> params;
    const std::string sql = absl::StrCat("select ", kDigestSums, " from (select md5(", s_.row_text, ") h from ", s_.table,
                                         " turnout_t where ", Where(r, params), ") s");
    auto res = ExecBoth(old_, new_, sql, params, "digest of " + out_.table);
    if (!res.ok()) return res.status();
    auto digest = [](const PgResult& d) {
      return Digest{std::atoll(PQgetvalue(d.get(), 0, 0)), PgValue(d, 0, 1), PgValue(d, 0, 2)};
    };
    return std::make_pair(digest(res->first), digest(res->second));
  }

  // The key `chunk_rows` rows past `lower` on old, if old has that many.
  absl::StatusOr<std::optional<Key>> NextBoundary(const std::optional<Key>& lower) {
    std::vector<std::string> params;
    const std::string sql =
        absl::StrCat("select ", s_.key_text, " from ", s_.table, " turnout_t where ",
                     Where(Range{lower, std::nullopt}, params),
                     " order by ", s_.key_order, " limit 1 offset ", o_.chunk_rows - 1);
    auto res = PgExec(old_, sql, params, "key range of " + out_.table);
    if (!res.ok()) return res.status();
    if (PQntuples(res->get()) == 0) return std::optional<Key>();
    return std::optional<Key>(KeyAt(*res, 0, s_.key.size()));
  }

  // Keys every `step` rows of `s` inside `r`, in order.
  absl::StatusOr<std::vector<Key>> SplitPoints(const PgSide& s, const Range& r, std::int64_t step) {
    std::vector<std::string> params, aliased;
    for (std::size_t i = 0; i < s_.key.size(); ++i)
      aliased.push_back(absl::StrCat("turnout_t.", s_.key[i].quoted, "::text as k", i));
    std::vector<std::string> outer;
    for (std::size_t i = 0; i < s_.key.size(); ++i) outer.push_back(absl::StrCat("k", i));
    const std::string sql = absl::StrCat("select ", absl::StrJoin(outer, ", "), " from (select ",
                                         absl::StrJoin(aliased, ", "), ", row_number() over (order by ", s_.key_order,
                                         ") rn from ", s_.table, " turnout_t where ", Where(r, params),
                                         ") s where rn % ", step,
                                         " = 0 order by rn");
    auto res = PgExec(s, sql, params, "split a key range of " + out_.table);
    if (!res.ok()) return res.status();
    std::vector<Key> out;
    for (int i = 0; i < PQntuples(res->get()); ++i) out.push_back(KeyAt(*res, i, s_.key.size()));
    return out;
  }

  // A row's md5 and version on one side (both empty: absent).
  struct Version {
    std::string h, v;
  };
  // key -> (md5, version) of the rows of a result of `RowSql`; a key seen
  // twice (no unique index on that side) sets `duplicate`.
  std::map<Key, Version> RowsOf(const PgResult& res, bool& duplicate) const {
    std::map<Key, Version> out;
    const int n = static_cast<int>(s_.key.size());
    for (int i = 0; i < PQntuples(res.get()); ++i)
      duplicate |= !out.emplace(KeyAt(res, i, s_.key.size()), Version{PgValue(res, i, n), PgValue(res, i, n + 1)}).second;
    return out;
  }
  // Key, md5 and version (xmin and ctid: a version changes whenever the row
  // is written) of the rows `where` selects.
  std::string RowSql(const std::string& where) const {
    return absl::StrCat("select ", s_.key_text, ", md5(", s_.row_text, "), xmin::text || ctid::text from ", s_.table,
                        " turnout_t where ", where);
  }

  // A differing row as last read: old's and new's md5 and version.
  struct Seen {
    Version old_row, new_row;
    Kind kind() const { return old_row.h.empty() ? Kind::kOnlyNew : new_row.h.empty() ? Kind::kOnlyOld : Kind::kChanged; }
  };

  // What one pass found.
  struct Found {
    std::map<Key, Seen> rows;  // at most max_keys
    std::int64_t total = 0;    // all of them
    std::vector<std::pair<Range, std::string>> unexplained;
    void Add(Key k, Seen seen, std::size_t cap) {
      ++total;
      if (rows.size() < cap) rows.emplace(std::move(k), std::move(seen));
    }
  };

  std::string Describe(const Range& r) const {
    auto b = [](const std::optional<Key>& k, const char* open) {
      return k ? "(" + absl::StrJoin(*k, ", ") + ")" : std::string(open);
    };
    return absl::StrCat("key range ", b(r.lower, "(start"), " .. ", b(r.upper, "end)"));
  }

  absl::Status Leaf(const Range& r, Found& f) {
    std::vector<std::string> params;
    const std::string sql = RowSql(Where(r, params));
    auto res = ExecBoth(old_, new_, sql, params, "rows of " + out_.table);
    if (!res.ok()) return res.status();
    bool duplicate = false;
    const auto o = RowsOf(res->first, duplicate);
    const auto n = RowsOf(res->second, duplicate);
    const std::int64_t before = f.total;
    auto oi = o.begin();
    auto ni = n.begin();
    while (oi != o.end() || ni != n.end()) {
      if (ni == n.end() || (oi != o.end() && oi->first < ni->first)) {
        f.Add(oi->first, Seen{oi->second, {}}, o_.max_keys);
        ++oi;
      } else if (oi == o.end() || ni->first < oi->first) {
        f.Add(ni->first, Seen{{}, ni->second}, o_.max_keys);
        ++ni;
      } else {
        if (oi->second.h != ni->second.h) f.Add(oi->first, Seen{oi->second, ni->second}, o_.max_keys);
        ++oi;
        ++ni;
      }
    }
    if (f.total == before)
      f.unexplained.emplace_back(r, absl::StrCat(Describe(r), duplicate ? ": a key repeats on one side"
                                                                       : ": digests differed, rows did not (a write in flight?)"));
    return absl::OkStatus();
  }

  // `r` differs (digests `od` and `nd`): cut it until its ranges are small,
  // then compare rows.
  absl::Status Bisect(const Range& r, const Digest& od, const Digest& nd, int depth, Found& f) {
    const std::int64_t n = std::max(od.rows, nd.rows);
    if (n <= o_.leaf_rows || depth >= 8) return Leaf(r, f);
    constexpr std::int64_t kFanout = 16;
    const std::int64_t step = (n + kFanout - 1) / kFanout;
    auto points = SplitPoints(od.rows >= nd.rows ? old_ : new_, r, step);
    if (!points.ok()) return points.status();
    // The last point may be the range's own upper bound.
    if (!points->empty() && r.upper && points->back() == *r.upper) points->pop_back();
    if (points->empty()) return Leaf(r, f);
    std::optional<Key> lower = r.lower;
    for (std::size_t i = 0; i <= points->size(); ++i) {
      const Range sub{lower, i < points->size() ? std::optional<Key>((*points)[i]) : r.upper};
      auto d = DigestBoth(sub);
      if (!d.ok()) return d.status();
      if (!(d->first == d->second))
        if (auto st = Bisect(sub, d->first, d->second, depth + 1, f); !st.ok()) return st;
      lower = sub.upper;
    }
    return absl::OkStatus();
  }

  // "lsn" mode: a snapshot on old, its position L, the wait for new to apply
  // past L, and a snapshot on new (taken by the next statement there).
  // False when not in "lsn" mode, or when it just fell back to "recheck".
  absl::StatusOr<bool> OpenSnapshots() {
    if (!lsn_) return false;
    constexpr const char* kBegin = "begin isolation level repeatable read read only";
    if (auto st = PgExec(old_, kBegin); !st.ok()) return st.status();
    // The snapshot is taken when this statement starts; a commit it sees
    // wrote its record before, so the insert position read now is past it
    // (pg_current_wal_lsn, the write position, may still be behind it).
    auto l = PgExec(old_, "select pg_current_wal_insert_lsn()::text", {}, "snapshot position");
    if (!l.ok()) return l.status();
    const std::string lsn = PgValue(*l, 0, 0);
    if (auto st = o_.wait_new_applied_past(lsn); !st.ok()) {
      if (auto rb = PgExec(old_, "rollback"); !rb.ok()) return rb.status();
      lsn_ = false;
      out_.mode = "recheck";
      out_.consistency_note = absl::StrCat(st.message(), ": the rest of the table was compared by rechecking");
      return false;
    }
    if (auto st = PgExec(new_, kBegin); !st.ok()) return st.status();
    return true;
  }
  // Before a recheck: the delay, and where a stream carries the writes
  // (the LSN mode fell back because it lagged), a second chance for it to
  // apply what old holds now: a row still in flight in a stream that lags
  // more than the delay would otherwise stay different through the recheck
  // and be reported. Past the wait bound the recheck reads as it is.
  void RecheckDelay() {
    absl::SleepFor(o_.recheck_delay);
    if (!o_.wait_new_applied_past) return;
    auto l = PgExec(old_, "select pg_current_wal_insert_lsn()::text", {}, "current position");
    if (l.ok()) (void)o_.wait_new_applied_past(PgValue(*l, 0, 0));
  }

  absl::Status CloseSnapshots(bool open) {
    if (!open) return absl::OkStatus();
    for (const PgSide* side : {&old_, &new_})
      if (auto st = PgExec(*side, "commit"); !st.ok()) return st.status();
    return absl::OkStatus();
  }

  // key -> what both sides hold now, for `keys` (absent on both: missing).
  absl::Status ReadKeys(const std::map<Key, Seen>& keys, std::map<Key, Seen>& out) {
    std::vector<std::string> casts, columns;
    for (std::size_t i = 0; i < s_.key.size(); ++i) {
      casts.push_back(absl::StrCat("(e->>", i, ")::", s_.key[i].type));
      columns.push_back(s_.key[i].quoted);
    }
    const std::string sql = RowSql(absl::StrCat("(", absl::StrJoin(columns, ", "), ") in (select ",
                                                absl::StrJoin(casts, ", "), " from jsonb_array_elements($1::jsonb) e)"));
    constexpr std::size_t kBatch = 1000;
    for (auto it = keys.begin(); it != keys.end();) {
      json::array batch;
      for (; it != keys.end() && batch.size() < kBatch; ++it) {
        json::array k;
        for (const auto& v : it->first) k.emplace_back(v);
        batch.push_back(std::move(k));
      }
      auto res = ExecBoth(old_, new_, sql, {json::serialize(batch)}, "rows of " + out_.table);
      if (!res.ok()) return res.status();
      bool duplicate = false;
      for (auto& [k, v] : RowsOf(res->first, duplicate)) out[k].old_row = std::move(v);
      for (auto& [k, v] : RowsOf(res->second, duplicate)) out[k].new_row = std::move(v);
    }
    return absl::OkStatus();
  }

  // The rows of the first pass, read again until each is equal (dropped),
  // unchanged on both sides since the last read and still different (kept),
  // or still changing after the last round (rows_unsettled). Ranges no row
  // explained are kept if they still differ at the first reread.
  absl::Status Settle(Found& f) {
    if (!lsn_ && o_.recheck_delay <= absl::ZeroDuration()) return absl::OkStatus();  // single pass
    if (f.rows.empty() && f.unexplained.empty()) return absl::OkStatus();
    const std::int64_t untracked = f.total - static_cast<std::int64_t>(f.rows.size());
    std::map<Key, Seen> pending = std::move(f.rows), confirmed;
    const int rounds = std::max(1, o_.settle_rounds);
    for (int round = 0; round < rounds && (!pending.empty() || (round == 0 && !f.unexplained.empty())); ++round) {
      const bool was_lsn = lsn_;
      if (!lsn_) RecheckDelay();
      if (round == 0 && o_.before_recheck) o_.before_recheck();
      auto open = OpenSnapshots();
      if (!open.ok()) return open.status();
      // Fell back just now: a recheck reads only after its delay.
      if (was_lsn && !lsn_) RecheckDelay();
      std::map<Key, Seen> now;
      if (auto st = ReadKeys(pending, now); !st.ok()) return st;
      if (round == 0) {
        std::vector<std::pair<Range, std::string>> still;
        for (auto& u : f.unexplained) {
          auto d = DigestBoth(u.first);
          if (!d.ok()) return d.status();
          if (!(d->first == d->second)) still.push_back(std::move(u));
        }
        f.unexplained = std::move(still);
      }
      if (auto st = CloseSnapshots(*open); !st.ok()) return st;
      std::map<Key, Seen> next;
      for (auto& [k, before] : pending) {
        Seen& cur = now[k];
        if (cur.old_row.h == cur.new_row.h) continue;  // equal now: it was in flight
        if (cur.old_row.v == before.old_row.v && cur.new_row.v == before.new_row.v) confirmed.emplace(k, std::move(cur));
        else next.emplace(k, std::move(cur));
      }
      pending = std::move(next);
    }
    out_.rows_unsettled = static_cast<std::int64_t>(pending.size());
    f.rows = std::move(confirmed);
    f.total = static_cast<std::int64_t>(f.rows.size()) + untracked;
    return absl::OkStatus();
  }

  absl::Status RunKeyed() {
    Found found;
    std::optional<Key> lower;
    for (;;) {
      auto upper = NextBoundary(lower);
      if (!upper.ok()) return upper.status();
      const Range r{lower, *upper};
      auto open = OpenSnapshots();
      if (!open.ok()) return open.status();
      auto d = DigestBoth(r);
      if (!d.ok()) return d.status();
      ++out_.chunks;
      out_.old_rows += d->first.rows;
      out_.new_rows += d->second.rows;
      if (!(d->first == d->second)) {
        ++out_.chunks_differing;
        if (auto st = Bisect(r, d->first, d->second, 0, found); !st.ok()) return st;
      }
      if (auto st = CloseSnapshots(*open); !st.ok()) return st;
      if (o_.after_chunk)
        if (auto st = o_.after_chunk(std::max(d->first.rows, d->second.rows)); !st.ok()) return st;
      if (!*upper) break;
      lower = *upper;
    }
    if (auto st = Settle(found); !st.ok()) return st;
    out_.differences_total = found.total;
    for (auto& u : found.unexplained) out_.unexplained.push_back(std::move(u.second));
    for (auto& [k, seen] : found.rows) {
      PgRowDifference d;
      d.kind = seen.kind();
      d.key = k;
      out_.differences.push_back(std::move(d));
    }
    if (o_.describe_columns) {
      std::size_t described = 0;
      for (auto& d : out_.differences) {
        if (described++ >= o_.max_reported) break;
        if (d.kind != Kind::kChanged) continue;
        if (auto st = DescribeRow(d); !st.ok()) return st;
      }
    }
    return absl::OkStatus();
  }

  // The columns of a changed row that differ, as both sides hold it now.
  absl::Status DescribeRow(PgRowDifference& d) {
    std::vector<std::string> params, cols, match;
    for (const auto& c : s_.columns) cols.push_back(c.quoted + "::text");
    for (std::size_t i = 0; i < s_.key.size(); ++i) {
      params.push_back(d.key[i]);
      match.push_back(absl::StrCat(s_.key[i].quoted, " = $", i + 1, "::", s_.key[i].type));
    }
    const std::string sql = absl::StrCat("select ", absl::StrJoin(cols, ", "), " from ", s_.table, " where ",
                                         absl::StrJoin(match, " and "), " limit 1");
    auto o = PgExec(old_, sql, params, "row of " + out_.table);
    if (!o.ok()) return o.status();
    auto n = PgExec(new_, sql, params, "row of " + out_.table);
    if (!n.ok()) return n.status();
    if (PQntuples(o->get()) == 0 || PQntuples(n->get()) == 0) return absl::OkStatus();
    auto value = [&](const PgResult& r, int c) -> std::optional<std::string> {
      if (PQgetisnull(r.get(), 0, c)) return std::nullopt;
      return PgValue(r, 0, c);
    };
    for (std::size_t c = 0; c < s_.columns.size(); ++c) {
      const auto a = value(*o, static_cast<int>(c)), b = value(*n, static_cast<int>(c));
      if (a == b) continue;
      if (d.columns_differing++ >= o_.max_columns) continue;
      d.columns.push_back({s_.columns[c].name, a ? Truncated(*a, o_.max_value_chars) : "NULL",
                           b ? Truncated(*b, o_.max_value_chars) : "NULL"});
    }
    return absl::OkStatus();
  }

  // Keyless: bucket -> digest, by the md5's first byte.
  static std::map<std::string, Digest> Buckets(const PgResult& res) {
    std::map<std::string, Digest> out;
    for (int i = 0; i < PQntuples(res.get()); ++i)
      out[PgValue(res, i, 0)] = Digest{std::atoll(PQgetvalue(res.get(), i, 1)), PgValue(res, i, 2), PgValue(res, i, 3)};
    return out;
  }

  static std::map<std::string, std::pair<std::int64_t, std::string>> BucketRows(const PgResult& res) {
    std::map<std::string, std::pair<std::int64_t, std::string>> out;
    for (int i = 0; i < PQntuples(res.get()); ++i)
      out[PgValue(res, i, 0)] = {std::atoll(PQgetvalue(res.get(), i, 1)), PgValue(res, i, 2)};
    return out;
  }

  // md5 -> difference (count > 0: more copies on `kind`'s side).
  using Multiset = std::map<std::string, PgRowDifference>;

  absl::StatusOr<std::vector<std::string>> DifferingBuckets(bool count_rows) {
    const std::string sql =
        absl::StrCat("select substr(h, 1, 2), ", kDigestSums, " from (select md5(", s_.row_text, ") h from ", s_.table,
                     ") s group by 1");
    auto res = ExecBoth(old_, new_, sql, {}, "digest of " + out_.table);
    if (!res.ok()) return res.status();
    const auto o = Buckets(res->first), n = Buckets(res->second);
    std::set<std::string> names;
    for (const auto& [b, d] : o) names.insert(b);
    for (const auto& [b, d] : n) names.insert(b);
    std::vector<std::string> out;
    for (const auto& b : names) {
      const auto oi = o.find(b), ni = n.find(b);
      const Digest od = oi == o.end() ? Digest{} : oi->second, nd = ni == n.end() ? Digest{} : ni->second;
      if (count_rows) {
        out_.old_rows += od.rows;
        out_.new_rows += nd.rows;
        ++out_.chunks;
      }
      if (!(od == nd)) out.push_back(b);
    }
    return out;
  }

  absl::Status CompareBuckets(const std::vector<std::string>& buckets, Multiset& out) {
    // md5 -> (copies, row text) for one bucket.
    const std::string sql = absl::StrCat("select h, count(*), min(r) from (select r, md5(r) h from (select ", s_.row_text,
                                         " r from ", s_.table, ") a) s where substr(h, 1, 2) = $1 group by h");
    for (const auto& b : buckets) {
      auto res = ExecBoth(old_, new_, sql, {b}, "rows of " + out_.table);
      if (!res.ok()) return res.status();
      const auto o = BucketRows(res->first), n = BucketRows(res->second);
      std::set<std::string> hashes;
      for (const auto& [h, v] : o) hashes.insert(h);
      for (const auto& [h, v] : n) hashes.insert(h);
      for (const auto& h : hashes) {
        const auto oi = o.find(h), ni = n.find(h);
        const std::int64_t oc = oi == o.end() ? 0 : oi->second.first, nc = ni == n.end() ? 0 : ni->second.first;
        if (oc == nc) continue;
        PgRowDifference d;
        d.kind = oc > nc ? Kind::kOnlyOld : Kind::kOnlyNew;
        d.count = oc > nc ? oc - nc : nc - oc;
        d.row = Truncated(oc > nc ? oi->second.second : ni->second.second, o_.max_value_chars * 4);
        d.row_md5 = h;
        out.emplace(h, std::move(d));
      }
    }
    return absl::OkStatus();
  }

  // One comparison of the whole table (in "lsn" mode at a snapshot pair).
  absl::Status KeylessPass(bool count_rows, Multiset& found) {
    auto open = OpenSnapshots();
    if (!open.ok()) return open.status();
    auto buckets = DifferingBuckets(count_rows);
    if (!buckets.ok()) return buckets.status();
    if (count_rows) out_.chunks_differing = static_cast<std::int64_t>(buckets->size());
    if (auto st = CompareBuckets(*buckets, found); !st.ok()) return st;
    return CloseSnapshots(*open);
  }

  absl::Status RunKeyless() {
    Multiset found;
    if (auto st = KeylessPass(true, found); !st.ok()) return st;
    if (o_.after_chunk)
      if (auto st = o_.after_chunk(std::max(out_.old_rows, out_.new_rows)); !st.ok()) return st;
    if (!found.empty() && (lsn_ || o_.recheck_delay > absl::ZeroDuration())) {
      if (!lsn_) RecheckDelay();
      if (o_.before_recheck) o_.before_recheck();
      Multiset second;
      if (auto st = KeylessPass(false, second); !st.ok()) return st;
      Multiset both;
      for (auto& [h, d] : second) {
        auto it = found.find(h);
        if (it == found.end() || it->second.kind != d.kind) continue;
        d.count = std::min(d.count, it->second.count);
        both.emplace(h, std::move(d));
      }
      found = std::move(both);
    }
    for (auto& [h, d] : found) {
      out_.differences_total += d.count;
      if (out_.differences.size() < o_.max_keys) out_.differences.push_back(std::move(d));
    }
    return absl::OkStatus();
  }

  const PgSide& old_;
  const PgSide& new_;
  const PgVerifyOptions& o_;
  PgTableVerify& out_;
  Shape s_;
  bool lsn_ = false;  // "lsn" mode, until a wait for the stream runs out
};
}  // namespace

std::string QuoteQualified(const std::string& table) {
  const auto dot = table.find('.');
  if (dot == std::string::npos) return PgQuoteIdent(table);
  return PgQuoteIdent(table.substr(0, dot)) + "." + PgQuoteIdent(table.substr(dot + 1));
}

absl::Status PrepareVerifySession(const PgSide& s) { return PgFixOutputSettings(s); }

std::function<absl::Status(const std::string&)> StreamPositionWait(const PgSide& old_side, const PgSide& new_side,
                                                                   std::string slot, absl::Duration bound) {
  return [old_side, new_side, slot = std::move(slot), bound](const std::string& lsn) -> absl::Status {
    const absl::Time until = absl::Now() + bound;
    for (;;) {
      auto applied = PgExec(new_side,
                            "select coalesce((select lsn >= $1::pg_lsn from _turnout.stream_position where slot = $2), "
                            "false)",
                            {lsn, slot}, "read the change stream's position");
      if (!applied.ok()) return applied.status();
      if (PgValue(*applied, 0, 0) == "t") return absl::OkStatus();
      auto confirmed = PgExec(old_side,
                              "select coalesce((select confirmed_flush_lsn >= $1::pg_lsn from pg_replication_slots "
                              "where slot_name = $2), false)",
                              {lsn, slot}, "read the change stream's slot");
      if (!confirmed.ok()) return confirmed.status();
      if (PgValue(*confirmed, 0, 0) == "t") return absl::OkStatus();
      if (absl::Now() >= until)
        return absl::DeadlineExceededError(absl::StrCat("the change stream (slot ", slot, ") did not apply past ", lsn,
                                                        " within ", absl::FormatDuration(bound)));
      absl::SleepFor(absl::Milliseconds(20));
    }
  };
}

absl::StatusOr<PgTableVerify> VerifyPgTable(const PgSide& old_side, const PgSide& new_side, const std::string& table,
                                            const PgVerifyOptions& options) {
  PgTableVerify out;
  out.table = table;
  PgVerifyOptions o = options;
  o.chunk_rows = std::max<std::int64_t>(o.chunk_rows, 1);
  o.leaf_rows = std::max<std::int64_t>(o.leaf_rows, 1);
  TableVerifier v(old_side, new_side, o, out);
  if (auto st = v.Run(); !st.ok()) {
    // A snapshot left open by the failure: the connections serve the next table.
    for (const PgSide* side : {&old_side, &new_side})
      if (!PgConnectionLost(side->conn) && PQtransactionStatus(side->conn) != PQTRANS_IDLE)
        (void)PgExec(*side, "rollback");
    return st;
  }
  out.equal = out.error_new.empty() && out.differences_total == 0 && out.unexplained.empty() &&
              out.columns_only_old.empty() && out.columns_only_new.empty();
  return out;
}

}  // namespace turnout::control
