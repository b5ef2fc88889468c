// Boost.JSON ships no compiled library on Debian: its implementation is
// compiled here, once for the whole program.
#include <boost/json/src.hpp>
