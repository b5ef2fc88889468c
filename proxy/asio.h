#pragma once
// Asio vocabulary of the data plane. Every operation completes with
// `as_tuple(use_awaitable)`, so a coroutine reads `auto [ec, n] = co_await …`
// and errors are values, never exceptions.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace turnout::proxy {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;

inline constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
using Socket = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<tcp::socket>;
using Acceptor = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<tcp::acceptor>;
using Timer = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::steady_timer>;
using Resolver = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<tcp::resolver>;

}  // namespace turnout::proxy
