// Random-weight GGUFs of any architecture kvpack runs and any shape: for forward-pass tests
// (against a scalar reference), bad-input tests (a tensor left out or of another type) and decode
// benchmarks at real shapes (Qwen3-30B-A3B's experts, Gemma 3's sliding layers) without
// downloading a model (`kvpack dev synth-model`).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/ggml_type.h"
#include "model/gguf_writer.h"

namespace kvpack::model {

struct SyntheticModel {
  std::string arch = "llama";  // general.architecture: its row in arch.h says which tensors
  int n_layers = 2;
  int n_embd = 64;
  int n_heads = 4;
  int n_kv_heads = 2;
  int head_dim = 16;  // written as attention.key_length / value_length
  int n_ff = 96;
  int n_vocab = 64;
  int64_t n_ctx = 2048;
  double rope_base = 10000.0;
  int64_t window = 0;     // attention.sliding_window (0: not written; Gemma 2 then uses 4096)
  int n_expert = 8;       // mixture-of-experts architectures: experts,
  int n_expert_used = 2;  // chosen per token,
  int n_ff_exp = 32;      // and each expert's FFN width
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

// The GGUF as a writer (callers may still change metadata), with tokenizer.ggml.model "none":
// the tensors llama.cpp's loader reads for the architecture (biases, Q/K norms, post norms,
// stacked experts and the router as its row says).
// Matrices hold N(0, 1/cols) values, norms 1 + N(0, 0.1^2), embeddings N(0, 1), each quantized
// to its type (any type of the weight-type table). Tensors of more than 4M values (benchmark
// models) repeat their first 64 rows. Throws Error for a shape the types cannot hold (rows not
// whole blocks).
GgufWriter synthetic_model(const SyntheticModel& m);

}  // namespace kvpack::model
