#pragma once
// The system Abseil (Debian's 20220623) is built with
// ABSL_OPTION_USE_STD_STRING_VIEW 0: absl::string_view is its own type and
// absl::StrCat, heterogeneous hash-set lookups and friends do not take a
// std::string_view. routing/ speaks std::string_view in its API and converts
// at the Abseil boundary with this, which is free.

#include <string_view>

#include "absl/strings/string_view.h"

namespace turnout::routing {

inline absl::string_view Av(std::string_view s) noexcept { return {s.data(), s.size()}; }

}  // namespace turnout::routing
