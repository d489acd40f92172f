// Reading one GGUF's {arch}.<suffix> metadata (llama.cpp's key convention: "llama.block_count",
// "gemma3.attention.sliding_window") with range checks. Every error names the file and the full
// key. The model shape reader and the engine's hyperparameters both read through it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvpack::model {

class GgufFile;

class ArchKeys {
 public:
  ArchKeys(const GgufFile& file, std::string_view arch);

  const GgufFile& file() const { return f_; }
  // "{arch}.<suffix>".
  std::string key(std::string_view suffix) const;

  // `value` of key(suffix) when it lies in [lo, hi]; else Error "<file>: metadata '<key>' is
  // <value>, expected <lo> to <hi>".
  int64_t in_range(std::string_view suffix, int64_t value, int64_t lo, int64_t hi) const;
  // An integer in [lo, hi]; Error "<file>: missing metadata '<key>'" when absent.
  int64_t require(std::string_view suffix, int64_t lo, int64_t hi) const;
  // As require, nullopt when absent.
  std::optional<int64_t> optional(std::string_view suffix, int64_t lo, int64_t hi) const;
  // A count per layer: one integer for every layer, or an array with one entry per layer;
  // nullopt when absent.
  std::optional<std::vector<int>> per_layer(std::string_view suffix, int n_layers, int64_t lo,
                                            int64_t hi) const;
  // A finite number (integer keys are widened); nullopt when absent.
  std::optional<double> real(std::string_view suffix) const;
  std::optional<std::string> string(std::string_view suffix) const;

 private:
  const GgufFile& f_;
  std::string prefix_;  // "{arch}."
};

}  // namespace kvpack::model
