// Mutated JSON request bodies for the fuzz-style tests (request_test.cpp in process,
// server_test.cpp against a live server): bytes flipped, inserted and deleted, values swapped
// for other JSON values, or random bytes.
#pragma once

#include <string>
#include <vector>

#include "base/rng.h"

namespace kvpack::testing {

inline const std::vector<std::string>& request_seeds() {
  static const std::vector<std::string> seeds = {
      R"({"prompt": "Once", "max_tokens": 2, "seed": 3, "stop": ["\n"], "stream": true, "stream_options": {"include_usage": true}})",
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 2, "temperature": 0.5, "top_k": 4})",
      R"({"content": "Hello", "add_special": true})", R"({"tokens": [1, 2, 3]})"};
  return seeds;
}

inline std::string mutate(std::string doc, Rng& rng) {
  static const std::vector<std::string> values = {
      "null", "true", "-1",    "0",    "1e400", "18446744073709551616", "\"\\ud800\"", "[]",
      "{}",   "[[[[", "\"x\"", "-0.0", "1.5",   "\"\\u0000\"",          "\"\xff\xfe\""};
  const int edits = 1 + static_cast<int>(rng.below(4));
  for (int e = 0; e < edits && !doc.empty(); ++e) {
    const size_t at = rng.below(doc.size());
    switch (rng.below(5)) {
      case 0:
        doc[at] = static_cast<char>(rng.below(256));
        break;
      case 1:
        doc.insert(at, 1, static_cast<char>(rng.below(256)));
        break;
      case 2:
        doc.erase(at, 1 + rng.below(8));
        break;
      case 3: {  // a value replaced: from after a ':' to the next ',' or '}'
        const size_t colon = doc.find(':', at);
        const size_t end = doc.find_first_of(",}", colon == std::string::npos ? 0 : colon);
        if (colon != std::string::npos && end != std::string::npos && end > colon) {
          doc.replace(colon + 1, end - colon - 1, values[rng.below(values.size())]);
        }
        break;
      }
      default:
        doc = std::string(rng.below(64), ' ');
        for (char& c : doc) c = static_cast<char>(rng.below(256));
    }
  }
  return doc;
}

}  // namespace kvpack::testing
