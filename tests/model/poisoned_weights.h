// A model file with one NaN weight, for tests of how a broken model fails: the forward pass
// rejects the non-finite K/V values it makes and leaves the cache as it was.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/gguf.h"

namespace kvpack::testing {

// GGUF bytes with the first value of tensor `name` (F32 or F16) set to NaN.
inline std::vector<uint8_t> with_nan_weight(std::vector<uint8_t> bytes, const std::string& name) {
  const model::GgufFile f = model::GgufFile::parse(bytes, "poisoned.gguf");
  const model::GgufTensor* t = f.find_tensor(name);
  if (t == nullptr) throw std::runtime_error("no tensor " + name);
  uint8_t* at = bytes.data() + (t->data - bytes.data());
  if (t->type == static_cast<uint32_t>(model::GgmlType::F32)) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(at, &nan, sizeof nan);
  } else if (t->type == static_cast<uint32_t>(model::GgmlType::F16)) {
    const uint16_t nan = 0x7e00;
    std::memcpy(at, &nan, sizeof nan);
  } else {
    throw std::runtime_error(name + " is neither F32 nor F16");
  }
  return bytes;
}

}  // namespace kvpack::testing
