// Builds GGUF v3 bytes holding metadata only (no tensors), for tests of metadata readers such as
// the tokenizer: GgufMetadataBuilder().str("k", "v").strings("t", {...}).bytes().
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kvpack::model::testing {

class GgufMetadataBuilder {
 public:
  GgufMetadataBuilder& str(std::string_view key, std::string_view value) {
    begin(key, 8);
    put_string(value);
    return *this;
  }
  GgufMetadataBuilder& u32(std::string_view key, uint32_t value) {
    begin(key, 4);
    put(value);
    return *this;
  }
  GgufMetadataBuilder& boolean(std::string_view key, bool value) {
    begin(key, 7);
    put(static_cast<uint8_t>(value));
    return *this;
  }
  GgufMetadataBuilder& strings(std::string_view key, const std::vector<std::string>& values) {
    begin_array(key, 8, values.size());
    for (const auto& v : values) put_string(v);
    return *this;
  }
  GgufMetadataBuilder& f32s(std::string_view key, const std::vector<float>& values) {
    begin_array(key, 6, values.size());
    for (const float v : values) put(v);
    return *this;
  }
  GgufMetadataBuilder& i32s(std::string_view key, const std::vector<int32_t>& values) {
    begin_array(key, 5, values.size());
    for (const int32_t v : values) put(v);
    return *this;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    auto append = [&out](const auto& v) {
      const auto* p = reinterpret_cast<const uint8_t*>(&v);
      out.insert(out.end(), p, p + sizeof(v));
    };
    append(uint32_t{0x46554747});  // "GGUF"
    append(uint32_t{3});
    append(uint64_t{0});  // tensors
    append(n_kv_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    return out;
  }

 private:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    kv_.insert(kv_.end(), p, p + sizeof(v));
  }
  void put_string(std::string_view s) {
    put(uint64_t{s.size()});
    kv_.insert(kv_.end(), s.begin(), s.end());
  }
  void begin(std::string_view key, uint32_t type) {
    ++n_kv_;
    put_string(key);
    put(type);
  }
  void begin_array(std::string_view key, uint32_t elem_type, size_t n) {
    begin(key, 9);
    put(elem_type);
    put(uint64_t{n});
  }

  uint64_t n_kv_ = 0;
  std::vector<uint8_t> kv_;
};

}  // namespace kvpack::model::testing
