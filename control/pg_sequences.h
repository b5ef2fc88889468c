#pragma once
// Sequences follow the rows: after a copy (data movement) or a repair, every
// sequence owned by a copied table's column (serial, identity) is set on the
// target past the source's current value, so the target's next id cannot
// collide with a row that came from the source. Never moved back.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/pg_client.h"

namespace turnout::control {

struct PgSequenceAdvance {
  std::string name;       // quoted (quote_ident on the source)
  std::string value;      // the source's last_value
  bool missing = false;   // not on the target: left as it is
  bool advanced = false;  // set to `value` on the target (it was behind)
};

// The sequences owned by the tables `oids` on `source`, each advanced on
// `target`; empty for no tables.
absl::StatusOr<std::vector<PgSequenceAdvance>> PgAdvanceSequences(const PgSide& source, const PgSide& target,
                                                                  const std::vector<std::string>& oids);

}  // namespace turnout::control
