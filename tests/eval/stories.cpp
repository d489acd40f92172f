#include "stories.h"

#include <fstream>
#include <iterator>

namespace kvpack::eval::testing {

Stories load_stories(const std::filesystem::path& model, const std::filesystem::path& text,
                     size_t text_bytes) {
  Stories s;
  s.model = model::Model::load(model.string());
  std::ifstream f(text, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  all.resize(std::min(all.size(), text_bytes));
  const model::Tokenizer& tok = *s.model->tokenizer();
  s.tokens = tok.encode(all, /*add_special=*/true, /*parse_special=*/false);
  s.bos = tok.add_bos() ? tok.bos() : -1;
  return s;
}

}  // namespace kvpack::eval::testing
