#include "proxy/pg/request_text.h"

#include <span>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/messages.h"

namespace turnout::proxy::pg {

namespace ppg = protocol::pg;

// psycopg binds integers in binary: shown as numbers.
std::string BinaryParamText(std::string_view v, std::uint32_t type_oid) {
  auto be = [&](std::size_t n) {
    std::uint64_t x = 0;
    for (std::size_t i = 0; i < n; ++i) x = (x << 8) | static_cast<unsigned char>(v[i]);
    return x;
  };
  switch (type_oid) {
    case 16:  // bool
      if (v.size() == 1) return v[0] ? "true" : "false";
      break;
    case 21:  // int2
      if (v.size() == 2) return std::to_string(static_cast<std::int16_t>(be(2)));
      break;
    case 23:  // int4
      if (v.size() == 4) return std::to_string(static_cast<std::int32_t>(be(4)));
      break;
    case 20:  // int8
      if (v.size() == 8) return std::to_string(static_cast<std::int64_t>(be(8)));
      break;
    case 25:    // text
    case 1043:  // varchar
      return std::string(v);
    default:
      break;
  }
  return absl::StrCat("\\x", absl::BytesToHexString(absl::string_view(v.data(), v.size())));
}

void DescribeRequest(std::string_view wire, const SessionState& state, std::string* sql,
                     std::vector<std::string>* params) {
  ppg::FrameDecoder decoder(ppg::Direction::kFrontend);
  decoder.set_phase(ppg::FrameDecoder::Phase::kRegular);
  auto bytes = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size());
  std::vector<std::uint32_t> types;
  while (!bytes.empty()) {
    auto r = decoder.Decode(bytes);
    if (!r.ok()) break;
    const ppg::Frame& f = r.value;
    if (f.type == 'Q') {
      ppg::Query q;
      if (!ppg::Decode(f.payload, &q)) sql->assign(q.sql);
    } else if (f.type == 'P' && sql->empty()) {
      ppg::Parse p;
      if (!ppg::Decode(f.payload, &p)) {
        sql->assign(p.query);
        types.assign(p.param_types.begin(), p.param_types.end());
      }
    } else if (f.type == 'B' && params->empty()) {
      ppg::Bind b;
      if (!ppg::Decode(f.payload, &b)) {
        if (sql->empty() && !b.statement.empty()) {
          for (const auto& [name, prepared] : state.prepared()) {
            if (name != b.statement) continue;
            sql->assign(prepared.text);
            types = prepared.param_types;
          }
        }
        for (std::size_t i = 0; i < b.params.size(); ++i) {
          if (!b.params[i]) {
            params->emplace_back("NULL");
          } else if (b.ParamFormat(i) == 0) {
            params->emplace_back(*b.params[i]);
          } else {
            params->push_back(BinaryParamText(*b.params[i], i < types.size() ? types[i] : 0));
          }
        }
      }
    }
    bytes = bytes.subspan(f.total_size);
  }
}

std::string QueryFrame(std::string_view sql) {
  std::string out;
  ppg::AppendQuery(&out, sql);
  return out;
}

}  // namespace turnout::proxy::pg
