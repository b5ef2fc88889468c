// libFuzzer target for the binary COPY trimmer. The first byte picks the
// columns to trim (a bit each, up to 8 columns, the count from its top
// three bits); the rest is fed whole and again in two pieces cut where the
// second byte says: both must give the same bytes and the same verdict, and
// a trimmer that accepts never grows a stream (trimming only removes bytes).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pg/binary_copy_trim.h"

namespace {

using turnout::protocol::pg::BinaryCopyTrimmer;

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t columns = (data[0] >> 5) + 1;
  std::vector<bool> trim(columns);
  for (std::size_t i = 0; i < columns; ++i) trim[i] = ((data[0] >> i) & 1) != 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t cut = input.empty() ? 0 : data[1] % (input.size() + 1);

  BinaryCopyTrimmer whole(trim);
  std::string whole_out;
  const bool whole_ok = !whole.Feed(input, &whole_out);

  BinaryCopyTrimmer pieces(trim);
  std::string pieces_out;
  bool pieces_ok = !pieces.Feed(input.substr(0, cut), &pieces_out);
  if (pieces_ok) pieces_ok = !pieces.Feed(input.substr(cut), &pieces_out);

  Check(whole_ok == pieces_ok);
  Check(whole.Finished() == pieces.Finished());
  if (whole_ok) {
    Check(whole_out == pieces_out);
    Check(whole_out.size() <= input.size());
  }
  return 0;
}
