// The eval tests' fixture data: stories260K (5 layers, 8 query / 4 KV heads of dim 8, trained at
// 512 tokens) and the head of the TinyStories validation sample, tokenized as `kvpack eval` does.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kvpack/model.h"
#include "shared_data.h"

namespace kvpack::eval::testing {

struct Stories {
  std::unique_ptr<model::Model> model;
  std::vector<int32_t> tokens;  // BOS + the first `text_bytes` of the text
  int32_t bos = -1;             // the id perplexity puts first in each chunk
};

Stories load_stories(const std::filesystem::path& model, const std::filesystem::path& text,
                     size_t text_bytes = 60000);

}  // namespace kvpack::eval::testing

// Declares `var` (a Stories) or skips the test when the shared files are absent.
#define KVPACK_STORIES(var, ...)                                                      \
  KVPACK_SHARED_FILE(var##_model_path_, "models/stories260K.gguf");                   \
  KVPACK_SHARED_FILE(var##_text_path_, "data/tinystories_valid_sample.txt");          \
  const ::kvpack::eval::testing::Stories var = ::kvpack::eval::testing::load_stories( \
      var##_model_path_, var##_text_path_ __VA_OPT__(, ) __VA_ARGS__)
