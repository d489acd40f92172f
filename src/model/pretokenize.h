// Pre-tokenizer splits for byte-level BPE vocabularies: the regular expressions the upstream
// tokenizers use (GPT-2, Llama 3, Qwen 2), run with PCRE2 in UTF + Unicode-property mode so
// \p{L}, \p{N} and \s mean what they mean upstream.
#pragma once

#include <string_view>
#include <vector>

#include "model/vocab.h"

namespace kvpack::model {

// Splits `text` into the words BPE then merges within. The pieces are views into `text`, in
// order, non-empty, and concatenate to exactly `text`. Bytes that are not valid UTF-8 never match
// a pattern; each run of them between matches becomes a piece of its own, so any input splits
// deterministically. PreTokenizer::none returns the whole text as one piece (if non-empty).
std::vector<std::string_view> pre_tokenize(PreTokenizer pre, std::string_view text);

}  // namespace kvpack::model
