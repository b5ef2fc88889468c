// canary (DESIGN.md §2): read_percentage of reads go to new, sticky by
// connection, client or key; writes follow write_mode.
//
//   write_mode    writes, txn control         DDL
//   old_only      old                         old
//   new_only      new                         new
//   dual_write    authority + other side as   authority + other side, sync
//                 dual_write (sync|async)
//   cutover p     new iff sticky hash < p     p=0: old; p=1: new; else old +
//                 (same hash as reads)        new dual_write sync
//
// Reads and the cutover split hash the same value, so a client whose writes
// moved to new also reads from new, and raising either percentage only adds
// clients to new. With async dual-write the read plans are fenceable: a
// session with unapplied writes reads from the authoritative side.
// Key stickiness hashes the first key or table; a request with none falls
// back to the connection. A multi-key write is placed by its first key.

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"
#include "routing/policy_rules.h"
#include "routing/stable_hash.h"

namespace turnout::routing {

absl::Status CanarySpec::Validate() const {
  if (auto s = internal::CheckFraction("read_percentage", read_percentage); !s.ok()) return s;
  const WriteModeSpec& w = write_mode;
  if (w.mode == WriteMode::kCutover) {
    if (!w.write_percentage.has_value())
      return absl::InvalidArgumentError(
          "strategy.write_mode.write_percentage: required when mode is cutover");
    if (auto s = internal::CheckFraction("write_mode.write_percentage", *w.write_percentage);
        !s.ok())
      return s;
  } else if (w.write_percentage.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.write_mode.write_percentage: only valid when mode is cutover, mode is ",
        Av(WriteModeName(w.mode))));
  }
  if (w.atomic && w.mode != WriteMode::kDualWrite)
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.write_mode.atomic: only valid when mode is dual_write, mode is ",
        Av(WriteModeName(w.mode))));
  if (w.atomic && w.apply != DualWriteApply::kSync)
    return absl::InvalidArgumentError(
        "strategy.write_mode.atomic: needs apply sync (two-phase commit waits for both sides)");
  return absl::OkStatus();
}

namespace internal {
namespace {

ClassRule Split(double fraction, Stickiness stickiness) {
  ClassRule r;
  if (fraction <= 0.0) {
    r.a = To(Side::kOld);
  } else if (fraction >= 1.0) {
    r.a = To(Side::kNew);
  } else {
    r.selector = Selector::kSplit;
    r.stickiness = stickiness;
    r.threshold = PercentageThreshold(fraction);
    r.a = To(Side::kOld);
    r.b = To(Side::kNew);
  }
  return r;
}

}  // namespace

absl::Status CompileCanary(const CanarySpec& spec, const CompileContext& ctx, Rules& out) {
  const WriteModeSpec& w = spec.write_mode;
  if (w.atomic && ctx.protocol != Protocol::kPostgres)
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.write_mode.atomic: only for postgres routes, this route is ",
        Av(ProtocolName(ctx.protocol))));

  ClassRule write;
  ClassRule ddl;
  const Side auth = AuthoritySide(w.policy);
  switch (w.mode) {
    case WriteMode::kOldOnly:
      write.a = To(Side::kOld);
      ddl = write;
      break;
    case WriteMode::kNewOnly:
      write.a = To(Side::kNew);
      ddl = write;
      break;
    case WriteMode::kDualWrite:
      write.a = WithDualWrite(auth, ToApply(w.apply));
      ddl.a = WithDualWrite(auth, Apply::kSync);
      if (w.atomic) {
        write.a.set(kPlanAtomic);
        ddl.a.set(kPlanAtomic);
      }
      break;
    case WriteMode::kCutover: {
      const double p = w.write_percentage.value_or(0.0);
      write = Split(p, spec.stickiness);
      if (write.selector == Selector::kFixed) {
        ddl = write;
      } else {
        ddl.a = WithDualWrite(Side::kOld, Apply::kSync);
      }
      break;
    }
  }

  ClassRule read = Split(spec.read_percentage, spec.stickiness);
  if (w.mode == WriteMode::kDualWrite && w.apply == DualWriteApply::kAsync) {
    read.a.set_fence_side(auth);
    read.b.set_fence_side(auth);
  }

  // Session and admin requests: the write rule's primary alone.
  ClassRule home = write;
  home.a = Plan(home.a.primary());
  home.b = Plan(home.b.primary());

  out[RequestClass::kRead] = read;
  out[RequestClass::kWrite] = write;
  out[RequestClass::kDdl] = ddl;
  out[RequestClass::kTxnControl] = write;
  out[RequestClass::kSession] = home;
  out[RequestClass::kAdmin] = home;
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
