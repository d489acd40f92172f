"""Export a trained probe model (model.Llama + spm.SPM) to a llama.cpp-style GGUF v3 file."""
import numpy as np

import gguf
from gguf import T_U32, T_F32, T_STR, T_ARR, T_BOOL, T_I32, GGML_F16, GGML_F32
import spm as spm_mod


def tensor_map(model):
    """(gguf name, row-major numpy array, ggml type) for every tensor, llama.cpp names.
    A PyTorch Linear weight [out, in] is written as is: row-major (out, in) == ggml ne [in, out]."""
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = [("token_embd.weight", sd["tok_emb.weight"], GGML_F16)]  # (vocab, n_embd): ne0 = n_embd
    for i in range(model.c.n_layers):
        p = f"layers.{i}."
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", sd[p + "attn_norm.weight"], GGML_F32),
            (b + "attn_q.weight", sd[p + "attn.wq.weight"], GGML_F16),
            (b + "attn_k.weight", sd[p + "attn.wk.weight"], GGML_F16),
            (b + "attn_v.weight", sd[p + "attn.wv.weight"], GGML_F16),
            (b + "attn_output.weight", sd[p + "attn.wo.weight"], GGML_F16),
            (b + "ffn_norm.weight", sd[p + "ffn_norm.weight"], GGML_F32),
            (b + "ffn_gate.weight", sd[p + "ffn.w1.weight"], GGML_F16),
            (b + "ffn_up.weight", sd[p + "ffn.w3.weight"], GGML_F16),
            (b + "ffn_down.weight", sd[p + "ffn.w2.weight"], GGML_F16),
        ]
    out.append(("output_norm.weight", sd["norm.weight"], GGML_F32))
    if not model.c.tied:
        out.append(("output.weight", sd["out.weight"], GGML_F16))
    return out


def export(model, tok: spm_mod.SPM, path, context_length, name="kvpack-probe", description=""):
    c = model.c
    w = gguf.Writer(alignment=32)
    w.add("general.architecture", T_STR, "llama")
    w.add("general.name", T_STR, name)
    if description:
        w.add("general.description", T_STR, description)
    w.add("general.alignment", T_U32, 32)
    w.add("general.file_type", T_U32, 1)  # LLAMA_FTYPE_MOSTLY_F16 (norms stay F32, as in llama.cpp)
    w.add("llama.vocab_size", T_U32, tok.n_vocab)
    w.add("llama.context_length", T_U32, context_length)
    w.add("llama.embedding_length", T_U32, c.dim)
    w.add("llama.block_count", T_U32, c.n_layers)
    w.add("llama.feed_forward_length", T_U32, c.ffn_dim)
    w.add("llama.rope.dimension_count", T_U32, c.head_dim)
    w.add("llama.rope.freq_base", T_F32, c.rope_theta)
    w.add("llama.attention.head_count", T_U32, c.n_heads)
    w.add("llama.attention.head_count_kv", T_U32, c.n_kv_heads)
    if c.n_heads * c.head_dim != c.dim:  # llama.cpp derives n_embd / n_head otherwise
        w.add("llama.attention.key_length", T_U32, c.head_dim)
        w.add("llama.attention.value_length", T_U32, c.head_dim)
    w.add("llama.attention.layer_norm_rms_epsilon", T_F32, c.norm_eps)
    tokens, scores, types = tok.to_arrays()
    w.add("tokenizer.ggml.model", T_STR, "llama")
    w.add("tokenizer.ggml.pre", T_STR, "default")
    w.add("tokenizer.ggml.tokens", T_ARR, tokens, T_STR)
    w.add("tokenizer.ggml.scores", T_ARR, scores, T_F32)
    w.add("tokenizer.ggml.token_type", T_ARR, types, T_I32)
    w.add("tokenizer.ggml.bos_token_id", T_U32, spm_mod.BOS)
    w.add("tokenizer.ggml.eos_token_id", T_U32, spm_mod.EOS)
    w.add("tokenizer.ggml.unknown_token_id", T_U32, spm_mod.UNK)
    w.add("tokenizer.ggml.add_bos_token", T_BOOL, True)
    w.add("tokenizer.ggml.add_eos_token", T_BOOL, False)
    w.add("tokenizer.ggml.add_space_prefix", T_BOOL, True)
    for name_, arr, gt in tensor_map(model):
        w.add_tensor(name_, arr, gt)
    return w.write(path)
