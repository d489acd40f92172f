"""Llama-architecture model (Meta's original Llama / llama2.c / llama.cpp `llama` conventions).

RMSNorm (weight only), RoPE on interleaved pairs (x[2i], x[2i+1]) with frequency
theta^(-2i/head_dim), grouped-query attention, SwiGLU FFN (down(silu(gate(x)) * up(x))),
tied or untied output embedding. Because RoPE rotates adjacent pairs, the GGUF needs no Q/K
row permutation (llama.cpp's `llama` architecture uses the same ordering, rope type NORM).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 1024
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 64
    ffn_dim: int = 768
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 4224
    tied: bool = True
    # "chunked": causal_attention under autograd (stores every chunk's probabilities: memory
    # grows as T^2); "flash": FlashAttention-style recomputation in the backward pass (memory
    # grows as T), needed to train at 8k-32k tokens in a few GiB
    attn_impl: str = "chunked"
    # matmul operand type inside "flash" attention (scores, softmax and sums stay f32):
    # "bf16" runs oneDNN's AVX512-BF16 kernels, 2.4x the f32 sgemm rate on this CPU
    attn_mm: str = "f32"

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, n_pos, theta):
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()  # (n_pos, head_dim/2)


def apply_rope(x, cos, sin):
    """x: (..., T, D). Pairs (x[2i], x[2i+1]) rotate by angle pos * theta^(-2i/D): as a complex
    number x[2i] + i x[2i+1] times e^(i angle) (Meta's Llama code, llama.cpp rope mode 0)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    rot = torch.view_as_complex(torch.stack((cos, sin), -1))
    return torch.view_as_real(xc * rot).flatten(-2).type_as(x)


def causal_attention(q, k, v, p0=0, chunk=512):
    """Causal softmax attention for grouped-query heads, in query chunks so each chunk only
    scores the keys it can see (half the work and memory of a masked T x T matrix).
    q: (B, Hkv, rep, T, D) at absolute positions p0..p0+T-1, already scaled by 1/sqrt(D);
    k, v: (B, Hkv, p0+T, D). All `rep` query heads of a KV head share one matmul against it,
    so K/V are never repeated. Returns (B, Hkv, rep, T, D)."""
    B, Hk, rep, T, D = q.shape
    kt = k.transpose(-1, -2).contiguous()  # (B, Hkv, D, S): a plain gemm operand
    outs = []
    for s in range(0, T, chunk):
        e = min(T, s + chunk)
        c = e - s
        qs = q[:, :, :, s:e].reshape(B, Hk, rep * c, D)
        att = torch.matmul(qs, kt[..., :p0 + e]).view(B, Hk, rep, c, p0 + e)
        qi = torch.arange(p0 + s, p0 + e)[:, None]
        ki = torch.arange(0, p0 + e)[None, :]
        att = att.masked_fill(ki > qi, float("-inf"))
        att = torch.softmax(att, dim=-1).view(B, Hk, rep * c, p0 + e)
        outs.append(torch.matmul(att, v[:, :, :p0 + e]).view(B, Hk, rep, c, D))
    return torch.cat(outs, dim=3) if len(outs) > 1 else outs[0]


def _chunk_for(T, heads, budget=1 << 25):
    """Query-chunk length so one chunk's score matrix (heads x chunk x T floats) stays within
    `budget` floats (128 MiB): 512 up to 8k tokens with 8 heads, 256 at 16k, 128 at 32k."""
    c = 512
    while c > 64 and heads * c * T > budget:
        c //= 2
    return c


class FlashAttention(torch.autograd.Function):
    """Causal GQA attention that keeps only the output and each row's log-sum-exp for the
    backward pass and recomputes the probabilities chunk by chunk there (Dao et al. 2022's
    FlashAttention, at the granularity of query chunks against all the keys they can see).
    Memory is O(T) per head instead of the O(T^2) probabilities autograd would keep: a 16k-token
    training sequence would otherwise hold 4 GiB of probabilities per layer.
    q: (B, Hkv, rep, T, D), already scaled; k, v: (B, Hkv, T, D). Returns (B, Hkv, rep, T, D)."""

    @staticmethod
    def forward(ctx, q, k, v, mm_dtype=None):
        B, Hk, rep, T, D = q.shape
        mm_dtype = mm_dtype or q.dtype
        chunk = _chunk_for(T, Hk * rep)
        lp = mm_dtype != q.dtype  # low-precision matmul operands, f32 softmax
        qm, km, vm = (q.to(mm_dtype), k.to(mm_dtype), v.to(mm_dtype)) if lp else (q, k, v)
        o = torch.empty_like(q)
        lse = torch.empty(B, Hk, rep, T, dtype=q.dtype)
        kt = km.transpose(-1, -2).contiguous()  # (B, Hkv, D, T)
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            c = e - s
            qs = qm[:, :, :, s:e].reshape(B, Hk, rep * c, D)
            att = torch.matmul(qs, kt[..., :e]).to(q.dtype).view(B, Hk, rep, c, e)
            att[..., s:e].masked_fill_(torch.ones(c, c, dtype=torch.bool).triu(1), float("-inf"))
            m = att.amax(-1, keepdim=True)
            p = att.sub_(m).exp_()
            l = p.sum(-1, keepdim=True)
            oc = torch.matmul(p.view(B, Hk, rep * c, e).to(mm_dtype), vm[:, :, :e]).to(q.dtype)
            o[:, :, :, s:e] = oc.view(B, Hk, rep, c, D) / l
            lse[..., s:e] = (m + l.log()).squeeze(-1)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.mm_dtype = mm_dtype
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        mm = ctx.mm_dtype
        B, Hk, rep, T, D = q.shape
        chunk = _chunk_for(T, Hk * rep)
        do = do.contiguous()
        delta = (do * o).sum(-1)  # (B, Hk, rep, T): rowsum(dO * O) = sum_j P_ij dP_ij
        qm, km, vm, dom = q.to(mm), k.to(mm), v.to(mm), do.to(mm)
        dq = torch.empty_like(q)
        dk = torch.zeros_like(k)
        dv = torch.zeros_like(v)
        kt = km.transpose(-1, -2).contiguous()
        vt = vm.transpose(-1, -2).contiguous()
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            c = e - s
            qs = qm[:, :, :, s:e].reshape(B, Hk, rep * c, D)
            dos = dom[:, :, :, s:e].reshape(B, Hk, rep * c, D)
            att = torch.matmul(qs, kt[..., :e]).to(q.dtype).view(B, Hk, rep, c, e)
            att[..., s:e].masked_fill_(torch.ones(c, c, dtype=torch.bool).triu(1), float("-inf"))
            p = att.sub_(lse[..., s:e, None]).exp_()  # the forward's probabilities
            p2 = p.view(B, Hk, rep * c, e).to(mm)
            dv[:, :, :e] += torch.matmul(p2.transpose(-1, -2), dos).to(q.dtype)
            dp = torch.matmul(dos, vt[..., :e]).to(q.dtype).view(B, Hk, rep, c, e)
            ds = dp.sub_(delta[..., s:e, None]).mul_(p).view(B, Hk, rep * c, e).to(mm)
            dq[:, :, :, s:e] = torch.matmul(ds, km[:, :, :e]).to(q.dtype).view(B, Hk, rep, c, D)
            dk[:, :, :e] += torch.matmul(ds.transpose(-1, -2), qs).to(q.dtype)
        return dq, dk, dv, None


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.wq = nn.Linear(c.dim, c.n_heads * c.head_dim, bias=False)
        self.wk = nn.Linear(c.dim, c.n_kv_heads * c.head_dim, bias=False)
        self.wv = nn.Linear(c.dim, c.n_kv_heads * c.head_dim, bias=False)
        self.wo = nn.Linear(c.n_heads * c.head_dim, c.dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        B, T, _ = x.shape
        c = self.c
        rep = c.n_heads // c.n_kv_heads  # query head h uses KV head h // rep (llama.cpp order)
        q = self.wq(x).view(B, T, c.n_kv_heads, rep, c.head_dim).permute(0, 2, 3, 1, 4)
        k = self.wk(x).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q = apply_rope(q, cos, sin) * (1.0 / math.sqrt(c.head_dim))
        k = apply_rope(k, cos, sin)
        p0 = 0
        if cache is not None:  # inference: append to this layer's (k, v) history
            if "k" in cache:
                p0 = cache["k"].shape[2]
                k = torch.cat((cache["k"], k), 2)
                v = torch.cat((cache["v"], v), 2)
            cache["k"], cache["v"] = k, v
        if c.attn_impl == "flash" and cache is None and torch.is_grad_enabled():
            mm = torch.bfloat16 if c.attn_mm == "bf16" else torch.float32
            o = FlashAttention.apply(q.contiguous(), k.contiguous(), v.contiguous(), mm)
        else:
            o = causal_attention(q, k, v, p0, _chunk_for(p0 + T, c.n_heads))  # (B, Hkv, rep, T, D)
        return self.wo(o.permute(0, 3, 1, 2, 4).reshape(B, T, -1))


class FFN(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.w1 = nn.Linear(c.dim, c.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(c.dim, c.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(c.ffn_dim, c.dim, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.attn_norm = RMSNorm(c.dim, c.norm_eps)
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps)
        self.ffn = FFN(c)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.tok_emb = nn.Embedding(c.vocab_size, c.dim)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.n_active = c.n_layers  # blocks in use (training grows it; inference uses all)
        self.norm = RMSNorm(c.dim, c.norm_eps)
        self.out = None if c.tied else nn.Linear(c.dim, c.vocab_size, bias=False)
        cos, sin = rope_tables(c.head_dim, c.max_seq_len, c.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)
        for n, p in self.named_parameters():  # GPT-2 style scaled init of residual projections
            if n.endswith("wo.weight") or n.endswith("w2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layers))

    def set_rope(self, theta, n_pos):
        """Context extension: a new RoPE base (ABF, Xiong et al. 2023) and table length."""
        self.c.rope_theta, self.c.max_seq_len = theta, n_pos
        cos, sin = rope_tables(self.c.head_dim, n_pos, theta)
        self.cos, self.sin = cos, sin

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx, caches=None):
        """idx: (B, T) token ids -> logits (B, T, vocab). With `caches` (a list of one dict per
        layer, initially empty), the tokens continue the cached sequence (inference only)."""
        T = idx.shape[1]
        p0 = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        x = self.tok_emb(idx)
        cos, sin = self.cos[p0:p0 + T], self.sin[p0:p0 + T]
        for i, layer in enumerate(self.layers[:self.n_active]):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        x = self.norm(x)
        w = self.tok_emb.weight if self.out is None else self.out.weight
        return F.linear(x, w)

    @torch.no_grad()
    def prefill(self, prompt):
        """Per-layer caches of a prompt (list of ids), for greedy(..., caches=) to continue."""
        caches = [dict() for _ in self.layers]
        self(torch.tensor([prompt]), caches)
        return caches

    @torch.no_grad()
    def greedy(self, prompt, n_new, stop=None, caches=None):
        """Greedy continuation of one prompt (list of ids) for up to n_new tokens; with `caches`
        (from prefill, not modified) the prompt continues that cached prefix."""
        caches = [dict(c) for c in caches] if caches else [dict() for _ in self.layers]
        logits = self(torch.tensor([prompt]), caches)
        out = []
        for _ in range(n_new):
            t = int(logits[0, -1].argmax())
            out.append(t)
            if stop is not None and stop(out):
                break
            logits = self(torch.tensor([[t]]), caches)
        return out

    def n_params(self):
        return sum(p.numel() for p in self.parameters())
