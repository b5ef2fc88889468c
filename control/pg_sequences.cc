#include "control/pg_sequences.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace turnout::control {

absl::StatusOr<std::vector<PgSequenceAdvance>> PgAdvanceSequences(const PgSide& source, const PgSide& target,
                                                                  const std::vector<std::string>& oids) {
  std::vector<PgSequenceAdvance> out;
  if (oids.empty()) return out;
  // Owned: pg_depend's automatic ('a', serial) or internal ('i', identity)
  // dependency of the sequence on the table.
  auto seqs = PgExec(source,
                     "select distinct quote_ident(sn.nspname) || '.' || quote_ident(s.relname), ps.last_value "
                     "from pg_class s join pg_namespace sn on sn.oid = s.relnamespace "
                     "join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = s.oid "
                     " and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i') "
                     "join pg_sequences ps on ps.schemaname = sn.nspname and ps.sequencename = s.relname "
                     "where s.relkind = 'S' and d.refobjid = any($1::oid[]) and ps.last_value is not null "
                     "and ps.increment_by > 0",
                     {PgArray(oids)}, "read sequences");
  if (!seqs.ok()) return seqs.status();
  for (int i = 0; i < PQntuples(seqs->get()); ++i) {
    PgSequenceAdvance a{PgValue(*seqs, i, 0), PgValue(*seqs, i, 1)};
    auto exists = PgExec(target, "select to_regclass($1) is not null", {a.name}, "find sequence " + a.name);
    if (!exists.ok()) return exists.status();
    a.missing = PgValue(*exists, 0, 0) != "t";
    if (!a.missing) {
      // One statement reads and sets, so a concurrent nextval on the target
      // cannot slip between a read and the setval.
      auto set = PgExec(target,
                        absl::StrCat("select setval($1::regclass, $2::bigint, true) from ", a.name,
                                     " where not is_called or last_value < $2::bigint"),
                        {a.name, a.value}, "advance sequence " + a.name);
      if (!set.ok()) return set.status();
      a.advanced = PQntuples(set->get()) == 1;
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace turnout::control
