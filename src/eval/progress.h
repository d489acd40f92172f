// Progress of a long evaluation: the loops call it after each unit of work (one chunk through
// one policy, one passkey trial) so the CLI can draw a bar with an ETA. Empty: no reports.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace kvpack::eval {

// done of total units finished; `what` names the unit just finished (e.g. "chunk 3, q8/q8").
using Progress = std::function<void(int64_t done, int64_t total, std::string_view what)>;

}  // namespace kvpack::eval
