#include "proxy/disconnect.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace turnout::proxy {

bool IsExpectedDisconnect(const std::error_code& ec) {
  namespace error = boost::asio::error;
  // Asio reports boost::system codes; compared through their std mapping.
  auto is = [&ec](auto value) { return ec == std::error_code(boost::system::error_code(value)); };
  return is(error::eof) || is(error::connection_reset) || is(error::broken_pipe) ||
         is(error::operation_aborted) || is(error::connection_aborted) || is(error::not_connected) ||
         is(error::bad_descriptor) || is(boost::asio::ssl::error::stream_truncated);
}

}  // namespace turnout::proxy
