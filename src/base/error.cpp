#include "base/error.h"

#include <cstdio>
#include <cstdlib>

namespace kvpack::detail {

void assert_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "kvpack: internal error: %s:%d: assertion `%s` failed%s%s\n", file, line,
               expr, msg.empty() ? "" : ": ", msg.c_str());
  std::abort();
}

}  // namespace kvpack::detail
