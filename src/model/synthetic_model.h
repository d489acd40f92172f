// Random-weight Llama-architecture GGUFs of any shape: for forward-pass tests (against a scalar
// reference), bad-input tests (a tensor left out or of another type) and decode benchmarks at
// real attention shapes without downloading a model (`kvpack dev synth-model`).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/ggml_type.h"
#include "model/gguf_writer.h"

namespace kvpack::model {

struct SyntheticModel {
  std::string arch = "llama";  // general.architecture (weights are always Llama's)
  int n_layers = 2;
  int n_embd = 64;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 16;  // written as attention.key_length / value_length
  int n_ff = 96;
  int n_vocab = 64;
  int64_t n_ctx = 2048;
  double rope_base = 10000.0;
  GgmlType type = GgmlType::F16;       // every matrix but the embeddings
  GgmlType embd_type = GgmlType::F32;  // token_embd and (untied) output
  bool tied_output = false;            // leave output.weight out
  bool rope_freqs = false;             // write Llama 3's rope_freqs.weight
  uint64_t seed = 1;
  // Tests of bad input: tensors to leave out, and tensors written with another type (types the
  // kernels do not support are written as zero bytes of the right size).
  std::vector<std::string> omit;
  std::vector<std::pair<std::string, GgmlType>> retype;
};

// The GGUF as a writer (callers may still change metadata), with tokenizer.ggml.model "none".
// Matrices hold N(0, 1/cols) values, norms 1 + N(0, 0.1^2), embeddings N(0, 1), each quantized
// to its type (any type of the weight-type table). Tensors of more than 4M values (benchmark
// models) repeat their first 64 rows. Throws Error for a shape the types cannot hold (rows not
// whole blocks).
GgufWriter synthetic_llama(const SyntheticModel& m);

}  // namespace kvpack::model
