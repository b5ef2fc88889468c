#include "proxy/refusal.h"

#include <cstdint>

namespace turnout::proxy {

std::string RefusalBytes(routing::Protocol protocol, std::string_view sqlstate,
                         std::string_view message) {
  if (protocol == routing::Protocol::kRedis) {
    std::string out = "-ERR ";
    out += message;
    out += "\r\n";
    return out;
  }
  // protocol-message-formats: ErrorResponse = 'E', int32 length, then fields
  // (type byte, C string) ending with a zero byte.
  std::string body;
  auto field = [&body](char type, std::string_view value) {
    body += type;
    body += value;
    body += '\0';
  };
  field('S', "FATAL");
  field('V', "FATAL");
  field('C', sqlstate);
  field('M', message);
  body += '\0';
  const std::uint32_t len = static_cast<std::uint32_t>(body.size() + 4);
  std::string out = "E";
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((len >> shift) & 0xff);
  out += body;
  return out;
}

}  // namespace turnout::proxy
