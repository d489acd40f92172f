#!/usr/bin/python3
"""Independent check of an exported GGUF: read it back with gguf.Reader, run a plain numpy
(float64) llama forward pass written from llama.cpp's conventions only (no model.py code), and
compare with the PyTorch model's logits; also check the tokenizer stored in the file.

  /usr/bin/python3 tools/train-probe/check_gguf.py --gguf out/probe.gguf --ckpt out/ckpt.pt
  /usr/bin/python3 tools/train-probe/check_gguf.py --stories   # conventions vs stories260K

--stories runs the same numpy forward on ../shared/models/stories260K.gguf (a real llama GGUF
made by llama.cpp's converter) and compares the logits after BOS with stories260K.bos_logits.txt,
so the numpy forward's conventions (tensor orientation, interleaved RoPE, GQA head mapping) are
anchored to a known-good file before it is used to judge ours.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf  # noqa: E402
import spm as spm_mod  # noqa: E402

SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared"))
if not os.path.isdir(SHARED):
    SHARED = "/work/shared"


class NumpyLlama:
    """llama.cpp `llama` architecture from GGUF tensors, float64, one sequence, no cache."""

    def __init__(self, r: gguf.Reader):
        kv = r.kv
        assert kv["general.architecture"] == "llama"
        self.n_embd = kv["llama.embedding_length"]
        self.n_layer = kv["llama.block_count"]
        self.n_head = kv["llama.attention.head_count"]
        self.n_head_kv = kv.get("llama.attention.head_count_kv", self.n_head)
        self.eps = kv["llama.attention.layer_norm_rms_epsilon"]
        self.base = kv.get("llama.rope.freq_base", 10000.0)
        self.head_dim = kv.get("llama.attention.key_length", self.n_embd // self.n_head)
        self.n_rot = kv.get("llama.rope.dimension_count", self.head_dim)
        t = {k: np.asarray(v, dtype=np.float64) for k, v in r.tensors.items()}
        self.t = t
        # ggml ne = [in, out] is read back as a row-major (out, in) matrix: y = W @ x
        self.emb = t["token_embd.weight"]  # (n_vocab, n_embd)
        self.out = t.get("output.weight", self.emb)

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # ggml rope mode 0 (llama): rotate adjacent pairs (x[2i], x[2i+1]) by pos * base^(-2i/n_rot)
        x = x.copy()
        i = np.arange(self.n_rot // 2)
        ang = pos[:, None] * self.base ** (-2.0 * i / self.n_rot)  # (T, n_rot/2)
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0:self.n_rot:2].copy(), x[..., 1:self.n_rot:2].copy()
        x[..., 0:self.n_rot:2] = x0 * c - x1 * s
        x[..., 1:self.n_rot:2] = x0 * s + x1 * c
        return x

    def forward(self, ids):
        T = len(ids)
        pos = np.arange(T, dtype=np.float64)
        x = self.emb[ids]
        hd, H, Hk = self.head_dim, self.n_head, self.n_head_kv
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for l in range(self.n_layer):
            g = lambda n: self.t[f"blk.{l}.{n}.weight"]  # noqa: E731
            h = self.rms(x, g("attn_norm"))
            q = (h @ g("attn_q").T).reshape(T, H, hd)
            k = (h @ g("attn_k").T).reshape(T, Hk, hd)
            v = (h @ g("attn_v").T).reshape(T, Hk, hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            o = np.empty((T, H, hd))
            for hh in range(H):
                kh = hh // (H // Hk)  # query head h reads KV head h / (H / Hk), as llama.cpp
                a = q[:, hh] @ k[:, kh].T / np.sqrt(hd) + mask
                a = np.exp(a - a.max(-1, keepdims=True))
                a /= a.sum(-1, keepdims=True)
                o[:, hh] = a @ v[:, kh]
            x = x + o.reshape(T, H * hd) @ g("attn_output").T
            h = self.rms(x, g("ffn_norm"))
            gate, up = h @ g("ffn_gate").T, h @ g("ffn_up").T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ g("ffn_down").T
        return self.rms(x, self.t["output_norm.weight"]) @ self.out.T


def check_stories():
    r = gguf.Reader(os.path.join(SHARED, "models", "stories260K.gguf"))
    m = NumpyLlama(r)
    ref = np.loadtxt(os.path.join(SHARED, "models", "stories260K.bos_logits.txt"))
    got = m.forward([1])[-1]
    err = np.abs(got[ref[:, 0].astype(int)] - ref[:, 1]).max()
    print(f"stories260K: numpy forward after BOS vs bos_logits.txt: max |diff| {err:.2e}, argmax {got.argmax()}")
    # greedy ids from the shared fixture
    ids = [int(x) for x in open(os.path.join(SHARED, "models", "stories260K.greedy200.ids.txt")).read().split()]
    lg = m.forward(ids[:64])
    agree = np.mean(lg[:-1].argmax(-1) == np.array(ids[1:64]))
    print(f"stories260K: greedy ids 1..63 reproduced by argmax: {agree:.3f}")
    ok = err < 1e-4 and agree == 1.0
    print("stories260K conventions:", "OK" if ok else "MISMATCH")
    return ok


def check_probe(gguf_path, ckpt_path, tok_json=None):
    import json
    import torch
    from model import Config, Llama

    r = gguf.Reader(gguf_path)
    kv = r.kv
    print(f"{gguf_path}: GGUF v{r.version}, {len(r.kv)} metadata keys, {len(r.tensors)} tensors, data at {r.data_start}")
    for k in sorted(kv):
        v = kv[k]
        print(f"  {k} = {(str(v[:4])[:-1] + ', ...]') if isinstance(v, list) else repr(v)}")
    ok = True
    for name, gt in r.tensor_types.items():
        want = gguf.GGML_F32 if name.endswith("norm.weight") else gguf.GGML_F16
        if gt != want:
            print(f"  tensor {name}: type {gt}, expected {want}")
            ok = False
    print(f"  token_embd.weight ne = {list(reversed(r.tensors['token_embd.weight'].shape))} (ne0 = n_embd)")

    # tokenizer: the GGUF vocabulary must tokenize exactly like the training tokenizer
    tok = spm_mod.SPM.from_gguf_kv(kv)
    if tok_json:
        j = json.load(open(tok_json, encoding="utf-8"))
        ref = spm_mod.SPM(j["tokens"], j["scores"], j["types"])
        import data
        sample = data.split_text(data.TINY)[1][:20000] + data.split_text(data.WIKI)[1][:20000] + " ünïcödé ✓ 12345\t\n"
        same = tok.encode(sample) == ref.encode(sample)
        print(f"  tokenizer from GGUF == training tokenizer on 40k chars of holdout text: {same}")
        ok &= same

    ck = torch.load(ckpt_path)
    cfg = Config(**ck["config"])
    model = Llama(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    prompt = tok.encode("Once upon a time, there was a little girl named Lily. She loved to", bos=True)
    prompt += tok.encode(" The pass key is 48213. Remember it.", dummy_prefix=False)
    nm = NumpyLlama(r)
    ref = nm.forward(prompt)
    with torch.no_grad():
        pt32 = model(torch.tensor([prompt]))[0].double().numpy()
        # the same model with its weights rounded to what the GGUF stores (F16 matrices)
        for n, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(p.half().float())
        pt16 = model(torch.tensor([prompt]))[0].double().numpy()
    d16 = np.abs(ref - pt16).max()
    d32 = np.abs(ref - pt32).max()
    top = np.mean(ref.argmax(-1) == pt32.argmax(-1))
    scale = np.abs(ref).max()
    print(f"  numpy(GGUF) vs PyTorch with f16-rounded weights: max |logit diff| {d16:.2e} (logit scale {scale:.1f})")
    print(f"  numpy(GGUF) vs PyTorch f32 checkpoint: max |logit diff| {d32:.2e}, argmax agreement {top:.3f} over {len(prompt)} positions")
    ok &= d16 < 1e-3 and top >= 0.95
    print("probe GGUF check:", "OK" if ok else "FAILED")
    return ok


def torch_model_from_gguf(r):
    """A model.Llama whose weights are exactly the GGUF's (F16 matrices widened to f32)."""
    import torch
    from model import Config, Llama
    kv = r.kv
    n_embd, n_head = kv["llama.embedding_length"], kv["llama.attention.head_count"]
    cfg = Config(vocab_size=len(kv["tokenizer.ggml.tokens"]), dim=n_embd, n_layers=kv["llama.block_count"],
                 n_heads=n_head, n_kv_heads=kv["llama.attention.head_count_kv"],
                 head_dim=kv.get("llama.attention.key_length", n_embd // n_head),
                 ffn_dim=kv["llama.feed_forward_length"], norm_eps=kv["llama.attention.layer_norm_rms_epsilon"],
                 rope_theta=kv["llama.rope.freq_base"], max_seq_len=kv["llama.context_length"],
                 tied="output.weight" not in r.tensors)
    m = Llama(cfg)
    names = {"tok_emb.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "out.weight": "output.weight"}
    for i in range(cfg.n_layers):
        for ours, theirs in (("attn_norm", "attn_norm"), ("attn.wq", "attn_q"), ("attn.wk", "attn_k"),
                             ("attn.wv", "attn_v"), ("attn.wo", "attn_output"), ("ffn_norm", "ffn_norm"),
                             ("ffn.w1", "ffn_gate"), ("ffn.w3", "ffn_up"), ("ffn.w2", "ffn_down")):
            names[f"layers.{i}.{ours}.weight"] = f"blk.{i}.{theirs}.weight"
    sd = {k: torch.from_numpy(np.asarray(r.tensors[names[k]], dtype=np.float32).copy()) for k in m.state_dict()}
    m.load_state_dict(sd)
    m.eval()
    return m


def check_passkey(gguf_path, length, n_keys, depths):
    """Passkey accuracy of the GGUF's own weights and tokenizer (PyTorch f32 compute, f32 KV)."""
    import data
    import train
    r = gguf.Reader(gguf_path)

    class C:
        pass
    c = C()
    c.tok = spm_mod.SPM.from_gguf_kv(r.kv)
    c.pk = data.Passkey(c.tok)
    res = train.passkey_accuracy(torch_model_from_gguf(r), c, [length], depths, n_keys)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=os.path.join(HERE, "out", "probe.gguf"))
    ap.add_argument("--ckpt", default=os.path.join(HERE, "out", "ckpt.pt"))
    ap.add_argument("--tokenizer-json", default=None, help="default: tokenizer.json beside --ckpt")
    ap.add_argument("--stories", action="store_true", help="only the stories260K conventions check")
    ap.add_argument("--passkey-length", type=int, default=0,
                    help="also measure passkey accuracy of the GGUF's weights at this length")
    ap.add_argument("--passkey-keys", type=int, default=20)
    ap.add_argument("--passkey-depths", default="0,25,50,75,100", help="percent, comma-separated")
    a = ap.parse_args()
    ok = check_stories()
    if not a.stories:
        tj = a.tokenizer_json or os.path.join(os.path.dirname(a.ckpt), "tokenizer.json")
        ok &= check_probe(a.gguf, a.ckpt, tj if os.path.exists(tj) else None)
        if a.passkey_length:
            depths = [float(d) for d in a.passkey_depths.split(",")]
            check_passkey(a.gguf, a.passkey_length, a.passkey_keys, depths)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
