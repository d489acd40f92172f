// libFuzzer target: the server's request parsers (src/serve/request.cpp) on arbitrary bytes.
// Every input either parses or throws serve::RequestError with a 4xx status; any other
// exception, a crash or a sanitizer report is a bug. Seeds: fuzz/corpus/serve_request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/request.h"

namespace {

template <typename F>
void expect_4xx_or_success(F&& parse) {
  try {
    parse();
  } catch (const kvpack::serve::RequestError& e) {
    if (e.status() < 400 || e.status() >= 500) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvpack::serve;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  expect_4xx_or_success([&] { parse_completion_request(body, Endpoint::kCompletions); });
  expect_4xx_or_success([&] { parse_completion_request(body, Endpoint::kChat); });
  expect_4xx_or_success([&] { parse_tokenize_request(body); });
  expect_4xx_or_success([&] { parse_detokenize_request(body); });
  return 0;
}
