"""SentencePiece-style (llama.cpp `llama` vocabulary) tokenizer: encoder, decoder and a BPE learner.

Encoding rule (identical to llama.cpp's llm_tokenizer_spm, which kvpack's C++ tokenizer mirrors):
  1. Preprocess: if add_dummy_prefix and the text is non-empty, prepend one space; then replace
     every space ' ' with U+2581 '▁'.  Empty text gives no tokens.
  2. Split into UTF-8 characters (code points); each is a symbol.
  3. Repeatedly take, among all adjacent symbol pairs whose concatenated text is a vocabulary
     entry, the one with the highest score (float32 compare); ties go to the leftmost pair.
     Merge it and consider the new pairs it forms with its neighbours.  Stop when none remain.
  4. Each final symbol whose text is a vocabulary entry becomes that token; any other symbol
     (only single characters can be left unmatched) becomes the byte tokens <0xXX> of its UTF-8
     bytes, in order.
Vocabulary layout: 0 <unk> (type 2), 1 <s> (type 3), 2 </s> (type 3), 3..258 <0x00>..<0xFF>
(type 6, byte), then normal pieces (type 1): single characters first, then learned merges.
"""
import collections
import heapq

import numpy as np

SPACE = "\u2581"
UNK, BOS, EOS = 0, 1, 2
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_BYTE = 1, 2, 3, 6
N_SPECIAL = 3
BYTE0 = N_SPECIAL  # id of <0x00>

# Characters kept as single-character normal pieces: printable ASCII (space excluded; it never
# survives preprocessing) and the word-boundary marker.
BASE_CHARS = [chr(c) for c in range(0x21, 0x7F)] + [SPACE]
# Characters that never take part in a learned merge: digits (so a number is always one token per
# digit, the same wherever it appears: the passkey is copied digit by digit) and '<' '>' (so no
# merge can ever spell a special token's text such as "<s>").
NO_MERGE = set("0123456789<>")


def f32(x):
    return float(np.float32(x))


class SPM:
    def __init__(self, tokens, scores, types, add_dummy_prefix=True):
        self.tokens, self.types = list(tokens), list(types)
        self.scores = [f32(s) for s in scores]
        self.add_dummy_prefix = add_dummy_prefix
        # Lookup by text, as llama.cpp does (any token type; first id wins on duplicates).
        self.piece_to_id = {}
        for i, t in enumerate(self.tokens):
            self.piece_to_id.setdefault(t, i)
        self.byte_id = [self.piece_to_id[f"<0x{b:02X}>"] for b in range(256)]

    @property
    def n_vocab(self):
        return len(self.tokens)

    # ---- encoding ----
    def encode(self, text, bos=False, dummy_prefix=None):
        dp = self.add_dummy_prefix if dummy_prefix is None else dummy_prefix
        out = [BOS] if bos else []
        if not text:
            return out
        if dp:
            text = " " + text
        text = text.replace(" ", SPACE)
        return out + self._encode_symbols(list(text))

    def _encode_symbols(self, sym):
        n = len(sym)
        text = sym[:]  # text of each live symbol (at its left position)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []
        p2i, scores = self.piece_to_id, self.scores

        def add(l, r):
            if l < 0 or r < 0:
                return
            s = text[l] + text[r]
            tid = p2i.get(s)
            if tid is None:
                return
            # max-heap on score, then leftmost; remember the lengths to detect stale entries
            heapq.heappush(heap, (-scores[tid], l, r, len(s)))

        for i in range(n - 1):
            add(i, i + 1)
        while heap:
            _, l, r, size = heapq.heappop(heap)
            if not (alive[l] and alive[r]) or nxt[l] != r or len(text[l]) + len(text[r]) != size:
                continue
            text[l] = text[l] + text[r]
            alive[r] = False
            nxt[l] = nxt[r]
            if nxt[r] >= 0:
                prv[nxt[r]] = l
            add(prv[l], l)
            add(l, nxt[l])
        ids = []
        i = 0
        while i >= 0 and i < n:
            tid = p2i.get(text[i])
            if tid is not None:
                ids.append(tid)
            else:
                ids.extend(self.byte_id[b] for b in text[i].encode("utf-8"))
            i = nxt[i]
        return ids

    # ---- decoding ----
    def decode(self, ids, strip_leading_space=False):
        bs = bytearray()
        for i in ids:
            if self.types[i] == TT_BYTE:
                bs.append(int(self.tokens[i][3:5], 16))
            elif self.types[i] == TT_NORMAL:
                bs += self.tokens[i].replace(SPACE, " ").encode("utf-8")
        s = bs.decode("utf-8", errors="replace")
        if strip_leading_space and s.startswith(" "):
            s = s[1:]
        return s

    # ---- (de)serialisation to the GGUF arrays ----
    def to_arrays(self):
        return self.tokens, self.scores, self.types

    @classmethod
    def from_gguf_kv(cls, kv):
        return cls(kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.scores"],
                   kv["tokenizer.ggml.token_type"], kv.get("tokenizer.ggml.add_space_prefix", True))


def learn(texts, vocab_size):
    """Learn a vocabulary of `vocab_size` entries with BPE merges over `texts`.

    Words are the preprocessed text split before each '▁' (so learned pieces hold a '▁' only at
    their start, as SentencePiece's split_by_whitespace does). A symbol can merge only if it is
    made of BASE_CHARS and contains no NO_MERGE character. The k-th merge gets score -k, so
    earlier (more frequent) merges win in the encoder, and all scores are distinct and exact
    in float32.
    """
    base = set(BASE_CHARS)
    words = collections.Counter()
    for t in texts:
        s = (" " + t).replace(" ", SPACE)
        # split into words at '▁' and at characters outside the mergeable set
        cur = []
        for ch in s:
            mergeable = ch in base and ch not in NO_MERGE
            if ch == SPACE or not mergeable:
                if cur:
                    words["".join(cur)] += 1
                cur = [ch] if mergeable else []
            else:
                cur.append(ch)
        if cur:
            words["".join(cur)] += 1
    wlist = [list(w) for w in words]
    wfreq = [words[w] for w in words]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for wi, w in enumerate(wlist):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += wfreq[wi]
            where[(a, b)].add(wi)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list(BASE_CHARS)
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_BYTE] * 256 + [TT_NORMAL] * len(BASE_CHARS)
    scores = [0.0] * (N_SPECIAL + 256)
    # single characters: below every merge, so they never outrank one (they are never merge
    # candidates anyway: a pair's text has at least two characters)
    scores += [-1e6 - i for i in range(len(BASE_CHARS))]
    have = set(tokens)
    k = 0
    while len(tokens) < vocab_size and pairs:
        (a, b), c = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2:
            break
        new = a + b
        for wi in list(where[(a, b)]):
            w = wlist[wi]
            f = wfreq[wi]
            for x, y in zip(w, w[1:]):
                pairs[(x, y)] -= f
                if pairs[(x, y)] <= 0:
                    del pairs[(x, y)]
                where[(x, y)].discard(wi)
            i, out = 0, []
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            wlist[wi] = out
            for x, y in zip(out, out[1:]):
                pairs[(x, y)] += f
                where[(x, y)].add(wi)
        pairs.pop((a, b), None)
        if new in have:
            continue
        k += 1
        have.add(new)
        tokens.append(new)
        types.append(TT_NORMAL)
        scores.append(float(-k))
    return SPM(tokens, scores, types)
