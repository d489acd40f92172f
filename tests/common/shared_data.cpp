#include "shared_data.h"

#include <cstdlib>

namespace kvpack::testing {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("KVPACK_SHARED"); env != nullptr && *env != '\0') return env;
  return KVPACK_SHARED_DEFAULT;
}

std::filesystem::path shared_file(const std::string& relative, std::string* why) {
  const std::filesystem::path p = shared_dir() / relative;
  if (std::filesystem::exists(p)) return p;
  *why = "needs " + p.string() + " (set KVPACK_SHARED to the shared data folder)";
  return {};
}

bool shared_required() {
  const char* env = std::getenv("KVPACK_REQUIRE_SHARED");
  return env != nullptr && std::string(env) == "1";
}

std::string kvpack_binary() {
  const char* env = std::getenv("KVPACK_BIN");
  return env != nullptr ? env : "kvpack";
}

}  // namespace kvpack::testing
