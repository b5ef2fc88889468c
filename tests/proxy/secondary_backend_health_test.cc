// The back-off both protocols share (proxy/secondary/backend_health.h): a
// window after each failure that doubles, one caller retrying when it ends,
// and a backend forgotten once it has not failed for a while, so a caller
// that never reports success (Postgres) still starts the next outage at
// the first step.
#include "proxy/secondary/backend_health.h"

#include <gtest/gtest.h>

namespace turnout::proxy::secondary {
namespace {

using std::chrono::milliseconds;

TEST(SecondaryBackendHealth, WindowsDoubleUpToTheMaximum) {
  BackendHealth h;
  const auto t0 = BackendHealth::Clock::now();
  h.ReportFailure("b", t0);
  EXPECT_TRUE(h.IsDown("b", t0 + milliseconds(249)));
  EXPECT_FALSE(h.IsDown("b", t0 + milliseconds(250)));
  auto t = t0;
  for (int i = 0; i < 8; ++i) h.ReportFailure("b", t);  // 500 ms ... capped at 5 s
  EXPECT_TRUE(h.IsDown("b", t + BackendHealth::kMaxBackoff - milliseconds(1)));
  EXPECT_FALSE(h.IsDown("b", t + BackendHealth::kMaxBackoff));
  EXPECT_FALSE(h.IsDown("other", t));
}

TEST(SecondaryBackendHealth, AQuietBackendIsForgottenAndStartsOverAtTheFirstStep) {
  BackendHealth h;
  const auto t0 = BackendHealth::Clock::now();
  for (int i = 0; i < 6; ++i) h.ReportFailure("b", t0);  // back-off at 5 s
  const auto later = t0 + 2 * BackendHealth::kMaxBackoff + milliseconds(1);
  EXPECT_TRUE(h.MayTry("b", later));
  h.ReportFailure("b", later);
  EXPECT_FALSE(h.IsDown("b", later + BackendHealth::kFirstBackoff));
}

TEST(SecondaryBackendHealth, OneCallerRetriesWhenTheWindowEnds) {
  BackendHealth h;
  const auto t0 = BackendHealth::Clock::now();
  h.ReportFailure("b", t0);
  const auto t1 = t0 + BackendHealth::kFirstBackoff;
  EXPECT_TRUE(h.MayTry("b", t1));
  EXPECT_FALSE(h.MayTry("b", t1));
  h.ReportSuccess("b");
  EXPECT_TRUE(h.MayTry("b", t1));
}

}  // namespace
}  // namespace turnout::proxy::secondary
