// libFuzzer target over the size and count parsers every flag goes through: parse_bytes
// (--budget, --working-set, --overhead), parse_count / parse_counts / parse_context (-c,
// --context, -d, --lengths) and the planner's parse_budget (sizes and device names). Any input
// must parse within the documented ranges or throw kvpack::Error naming it; what parses prints
// back (format_count) to the same count.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/terminal.h"
#include "base/units.h"
#include "kvpack/plan.h"

namespace {

template <typename F>
void quietly(F&& f) {
  try {
    f();
  } catch (const kvpack::Error& e) {
    KVPACK_ASSERT(!e.message().empty(), "an error without a message");
    (void)kvpack::terminal_safe(e.message());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  quietly([&] {
    const uint64_t b = kvpack::parse_bytes(text);
    KVPACK_ASSERT(b < (uint64_t{1} << 63), "{} bytes", b);
  });
  quietly([&] {
    const int64_t n = kvpack::parse_count(text);
    KVPACK_ASSERT(n >= 0 && n < (int64_t{1} << 62), "count {}", n);
    KVPACK_ASSERT(kvpack::parse_count(kvpack::format_count(n)) == n, "{} does not print back", n);
  });
  quietly([&] {
    const int64_t n = kvpack::parse_context(text, "-c");
    KVPACK_ASSERT(n >= 1 && n <= kvpack::kMaxContextTokens, "context {}", n);
  });
  quietly([&] {
    const std::vector<std::string> lists = {text, text};
    for (int64_t n : kvpack::parse_contexts(lists, "--context", 0)) {
      KVPACK_ASSERT(n >= 0 && n <= kvpack::kMaxContextTokens, "context {}", n);
    }
  });
  quietly([&] {
    const kvpack::plan::Budget b = kvpack::plan::parse_budget(text);
    KVPACK_ASSERT(b.bytes > 0 && !b.label.empty(), "budget of {} bytes", b.bytes);
  });
  return 0;
}
