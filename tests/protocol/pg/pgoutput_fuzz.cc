// libFuzzer target for the pgoutput codec. The first byte picks the read
// size; the rest is (a) decoded whole as one pgoutput message, in and out of
// a stream block, and as one CopyData payload, and (b) fed in chunks of that
// size through a backend FrameDecoder (bounded buffer, like the change
// stream's session): every CopyData frame goes through DecodeCopyData, every
// XLogData's data through DecodeLogicalMessage with in_stream tracked from
// Stream Start / Stream Stop. Decoded views must lie inside the input and
// decoded LSNs must survive FormatLsn / ParseLsn.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/pgoutput.h"

namespace {

using namespace turnout::protocol::pg;
using namespace turnout::protocol::pg::pgoutput;

// Allocations stay bounded: frames above this are skipped by length.
constexpr std::size_t kBufferCapacity = 64 * 1024;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckInside(std::string_view v, Bytes input) {
  if (v.empty()) return;
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  Check(p >= input.data() && p + v.size() <= input.data() + input.size());
}

void CheckLsn(std::uint64_t lsn) {
  std::uint64_t back = 0;
  Check(ParseLsn(FormatLsn(lsn), &back) && back == lsn);
}

void CheckTuple(const Tuple& t, Bytes input) {
  for (const TupleColumn& c : t) CheckInside(c.value, input);
}

// Decodes one pgoutput message and checks what it points at.
void DecodeOne(Bytes data, bool* in_stream) {
  LogicalMessage m;
  if (DecodeLogicalMessage(data, *in_stream, &m)) return;
  if (std::holds_alternative<StreamStart>(m)) *in_stream = true;
  if (std::holds_alternative<StreamStop>(m)) *in_stream = false;
  if (const auto* r = std::get_if<Relation>(&m)) {
    CheckInside(r->nspname, data);
    CheckInside(r->relname, data);
    for (const RelationColumn& c : r->columns) CheckInside(c.name, data);
  } else if (const auto* i = std::get_if<Insert>(&m)) {
    CheckTuple(i->row, data);
  } else if (const auto* u = std::get_if<Update>(&m)) {
    CheckTuple(u->old_tuple, data);
    CheckTuple(u->row, data);
  } else if (const auto* d = std::get_if<Delete>(&m)) {
    CheckTuple(d->old_tuple, data);
  } else if (const auto* msg = std::get_if<Message>(&m)) {
    CheckInside(msg->prefix, data);
    CheckInside(AsText(msg->content), data);
    CheckLsn(msg->lsn);
  } else if (const auto* c = std::get_if<Commit>(&m)) {
    CheckLsn(c->commit_lsn);
    CheckLsn(c->end_lsn);
  }
}

void DecodeCopy(Bytes payload, bool* in_stream) {
  CopyMessage cm;
  if (DecodeCopyData(payload, &cm)) return;
  if (const auto* x = std::get_if<XLogData>(&cm)) {
    CheckInside(AsText(x->data), payload);
    CheckLsn(x->wal_end);
    DecodeOne(x->data, in_stream);
  }
}

// Feeds `input` in chunks through a backend decoder the way a session's
// bounded buffer would, skipping oversized frames by their remaining length.
void Drive(std::string_view input, std::size_t chunk) {
  FrameDecoder decoder(Direction::kBackend, FrameLimits{.max_message_size = 1u << 20});
  std::string buffer;
  buffer.reserve(kBufferCapacity);
  bool in_stream = false;
  std::size_t pos = 0;
  std::size_t skip = 0;
  while (pos < input.size()) {
    std::string_view in = input.substr(pos, chunk);
    pos += in.size();
    if (skip > 0) {
      const std::size_t n = std::min(skip, in.size());
      skip -= n;
      in.remove_prefix(n);
    }
    buffer.append(in);
    while (true) {
      const FrameResult r = decoder.Decode(AsBytes(buffer));
      if (r.failed()) return;
      if (r.need_more()) {
        if (r.bytes_needed > kBufferCapacity) {
          skip = r.bytes_needed - buffer.size();
          buffer.clear();
        }
        break;
      }
      if (r.value.type == 'd') {
        CopyData cd;
        if (!Decode(r.value.payload, &cd)) DecodeCopy(cd.data, &in_stream);
      }
      buffer.erase(0, r.value.total_size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const Bytes input(data + 1, size - 1);
  for (bool in_stream : {false, true}) DecodeOne(input, &in_stream);
  bool in_stream = false;
  DecodeCopy(input, &in_stream);
  std::uint64_t lsn = 0;
  if (ParseLsn(AsText(input), &lsn)) CheckLsn(lsn);
  Drive(AsText(input), chunk);
  return 0;
}
