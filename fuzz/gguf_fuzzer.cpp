// libFuzzer target over the GGUF reader. Any input must either parse or throw kvpack::Error;
// anything else (a crash, a sanitizer report, another exception, a hang) is a bug. A file that
// parses is then read the way kvpack reads models (typed getters, the planner's shape reader)
// and written back with GgufWriter, which must reproduce every value and tensor byte.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "base/error.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "plan/gguf_shape.h"

namespace {

using kvpack::model::GgufFile;
using kvpack::model::GgufValue;

bool same_double(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;  // bitwise, so NaN payloads must survive too
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.elem_type != b.elem_type || a.ints != b.ints ||
      a.strings != b.strings || a.floats.size() != b.floats.size() ||
      a.arrays.size() != b.arrays.size() || a.scalar.index() != b.scalar.index()) {
    return false;
  }
  for (size_t i = 0; i < a.floats.size(); ++i) {
    if (!same_double(a.floats[i], b.floats[i])) return false;
  }
  for (size_t i = 0; i < a.arrays.size(); ++i) {
    if (!same_value(a.arrays[i], b.arrays[i])) return false;
  }
  if (const auto* d = std::get_if<double>(&a.scalar))
    return same_double(*d, std::get<double>(b.scalar));
  return a.scalar == b.scalar;
}

// Every typed getter on every key: each either answers or throws Error.
void read_every_key(const GgufFile& f) {
  for (const auto& [key, value] : f.metadata()) {
    (void)value.to_string(4);
    try {
      (void)f.get_int(key);
    } catch (const kvpack::Error&) {
    }
    try {
      (void)f.get_float(key);
    } catch (const kvpack::Error&) {
    }
    try {
      (void)f.get_strings(key);
    } catch (const kvpack::Error&) {
    }
    try {
      (void)f.get_ints(key);
    } catch (const kvpack::Error&) {
    }
  }
  for (const auto& t : f.tensors()) {
    // The reader promised these bytes are inside the buffer; ASan checks the promise.
    if (t.bytes > 0) {
      volatile uint8_t sink = t.data[0] ^ t.data[t.bytes - 1];
      (void)sink;
    }
  }
}

// Writes the parsed file back and parses that: metadata and tensors must match exactly.
void round_trip(const GgufFile& f) {
  kvpack::model::GgufWriter w(f.alignment(), f.version());
  for (const auto& [key, value] : f.metadata()) w.set(key, value);
  for (const auto& t : f.tensors()) {
    w.add_tensor(t.name, t.shape, static_cast<kvpack::model::GgmlType>(t.type), {t.data, t.bytes});
  }
  const std::vector<uint8_t> bytes = w.bytes();
  const GgufFile g = GgufFile::parse(bytes, "rewritten");
  if (g.metadata().size() != f.metadata().size() || g.tensors().size() != f.tensors().size()) {
    std::abort();
  }
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    if (g.metadata()[i].first != f.metadata()[i].first ||
        !same_value(g.metadata()[i].second, f.metadata()[i].second)) {
      std::abort();
    }
  }
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& a = f.tensors()[i];
    const auto& b = g.tensors()[i];
    if (a.name != b.name || a.shape != b.shape || a.type != b.type || a.bytes != b.bytes ||
        std::memcmp(a.data, b.data, a.bytes) != 0) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<GgufFile> f;
  try {
    f.emplace(GgufFile::parse(std::span<const uint8_t>(data, size), "fuzz.gguf"));
  } catch (const kvpack::Error&) {
    return 0;  // rejected cleanly
  }
  read_every_key(*f);
  try {
    (void)kvpack::plan::gguf_shape(*f, std::nullopt);
  } catch (const kvpack::Error&) {
  }
  // A file the reader accepts must be one the writer can reproduce; an Error here is a bug in
  // one of them, so it is not caught.
  round_trip(*f);
  return 0;
}
