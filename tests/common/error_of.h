// The message of the kvpack::Error a call throws, for tests of what an error names.
#pragma once

#include <functional>
#include <string>

#include "base/error.h"

namespace kvpack::testing {

// The message of the kvpack::Error that f throws; "" when f returns.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();  // whole: what() stops at a NUL
  }
  return "";
}

}  // namespace kvpack::testing
