"""Training/validation data: natural text (TinyStories, WikiText-2) and synthetic retrieval tasks.

Every example is a (tokens, loss_weight) pair of equal-length lists; loss_weight[i] weighs the
prediction of tokens[i] from tokens[:i] (so weight[0] is always 0).
"""
import random

import spm as spm_mod

DATA_DIR = "/work/shared/data"
TINY = "tinystories_valid_sample.txt"
WIKI = "wiki.test.raw"
HOLDOUT_FRAC = 0.1

# ---- docs/passkey.md, verbatim ----
PK_INTRO = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
            "I will quiz you about the important information there.")
PK_FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PK_KEYLINE = "\nThe pass key is {KEY}. Remember it. {KEY} is the pass key."
PK_QUESTION = "\nWhat is the pass key? The pass key is"


def split_text(name):
    """(train, holdout) text of one corpus: the holdout is the last ~10% of the file, cut at a
    story/paragraph boundary (TinyStories) or an article boundary (WikiText: a ' = Title = ' line)."""
    with open(f"{DATA_DIR}/{name}", encoding="utf-8") as f:
        text = f.read()
    cut = int(len(text) * (1 - HOLDOUT_FRAC))
    marker = "\n\n" if name == TINY else "\n = "
    j = text.find(marker, cut)
    if name == WIKI:
        # a top-level title line is ' = X = ' (not ' = = X = = '): move to the next one
        while j >= 0 and text[j + 4:j + 6] == "= ":
            j = text.find(marker, j + 1)
        j += 1  # keep the newline with the training part
    else:
        j += 2
    return text[:j], text[j:]


def round_half_up(x):
    import math
    return int(math.floor(x + 0.5))


class Passkey:
    """Builds docs/passkey.md prompts as token lists.

    style "spec" (canonical): the segments are the intro, one filler group, the key line
      "\\nThe pass key is K. Remember it. K is the pass key." and the question
      "\\nWhat is the pass key? The pass key is", each tokenized on its own; prefix=True applies
      the tokenizer's dummy-prefix rule to each segment (what llama.cpp's llama_tokenize does
      for every call), prefix=False tokenizes each segment without it.
    style "lines": the docs' template drawn literally: intro + "\\n", filler, key line without
      its leading newline but ending in "\\n", filler, question (with its leading newline).
    """

    def __init__(self, tok: spm_mod.SPM):
        self.tok = tok
        self._cache = {}

    def _segs(self, prefix, style):
        k = (prefix, style)
        if k not in self._cache:
            enc = lambda s: self.tok.encode(s, dummy_prefix=prefix)
            if style == "spec":
                intro, filler, q = enc(PK_INTRO), enc(PK_FILLER), enc(PK_QUESTION)
            else:
                intro, filler, q = enc(PK_INTRO + "\n"), enc(PK_FILLER), enc(PK_QUESTION)
            self._cache[k] = (intro, filler, q)
        return self._cache[k]

    def key_line(self, key, prefix, style):
        if style == "spec":
            s = PK_KEYLINE.format(KEY=key)
        else:
            s = PK_KEYLINE[1:].format(KEY=key) + "\n"
        return self.tok.encode(s, dummy_prefix=prefix)

    def prompt(self, length, depth, key, prefix=True, style="spec"):
        """Returns (tokens, key_pos): tokens has exactly `length` ids (BOS first)."""
        intro, filler, q = self._segs(prefix, style)
        kl = self.key_line(key, prefix, style)
        fixed = 1 + len(intro) + len(kl) + len(q)
        if length < fixed:
            raise ValueError(f"passkey length {length} < minimum {fixed}")
        n = (length - fixed) // len(filler)
        rem = length - fixed - n * len(filler)
        a = round_half_up(depth / 100.0 * n)
        b = n - a
        toks = [spm_mod.BOS] + intro + filler * a
        key_pos = len(toks)
        toks += kl + filler * b + filler[:rem] + q
        assert len(toks) == length
        return toks, key_pos

    def answer(self, key):
        # ' {KEY}' continues the prompt's final "is": no dummy prefix (the text has its space)
        return self.tok.encode(f" {key}", dummy_prefix=False)


def make_passkey_example(pk: Passkey, rng: random.Random, length, answer_weight=1.0, depth_range=(0, 100)):
    key = rng.randint(10000, 99999)
    depth = rng.uniform(*depth_range)
    r = rng.random()
    prefix, style = (True, "spec") if r < 0.6 else ((False, "spec") if r < 0.8 else (True, "lines"))
    toks, key_pos = pk.prompt(length, depth, key, prefix, style)
    ans = pk.answer(key) + [spm_mod.EOS]
    w = [0.0] * len(toks) + [answer_weight] * len(ans)
    # the second copy of the key inside the key line is predictable from the first: a short-range
    # copy target that helps the copying circuit form early
    kl = pk.key_line(key, prefix, style)
    digits = set(pk.tok.encode("0123456789", dummy_prefix=False))
    pos = [i for i, t in enumerate(kl) if t in digits]
    for i in pos[5:10]:
        w[key_pos + i] = 0.5
    return toks + ans, w


KV_HEAD = "Here is a list of keys and values. Remember them."
KV_PAIR = "\nkey {K} -> value {V}"
# The question repeats the pair's own prefix, so the lookup is "find 'key K -> value', read on"
KV_Q = "\nWhat is the value for key {K}? key {K} -> value"


def make_kv_example(tok: spm_mod.SPM, rng: random.Random, length, text_tokens):
    """Key-value lookup: pairs 'key KKKK -> value VVVVV' scattered through natural text (a random
    window of `text_tokens`), then queries '...? key KKKK -> value' answered with ' VVVVV.';
    loss on the answers.
    The number of pairs is drawn so that pairs and queries take at most ~60% of `length`."""
    head = tok.encode(KV_HEAD)
    pair_len, q_len = 14, 26  # typical token counts of one pair / one query+answer
    max_pairs = max(1, min(24, int(0.6 * length - len(head)) // (pair_len + q_len // 2)))
    n_pairs = rng.randint(1, max_pairs)
    n_queries = rng.randint(1, min(8, n_pairs))
    keys = rng.sample(range(1000, 10000), n_pairs)
    vals = [rng.randint(10000, 99999) for _ in keys]
    pairs = [tok.encode(KV_PAIR.format(K=k, V=v)) for k, v in zip(keys, vals)]
    queries = []
    for i in rng.sample(range(n_pairs), n_queries):
        qt = tok.encode(KV_Q.format(K=keys[i]))
        at = tok.encode(f" {vals[i]}.", dummy_prefix=False)
        queries.append((qt, at))
    fixed = 1 + len(head) + sum(map(len, pairs)) + sum(len(a) + len(b) for a, b in queries)
    while fixed > length and len(queries) > 1:  # rare: drop queries rather than cut an answer
        qt, at = queries.pop()
        fixed -= len(qt) + len(at)
    n_text = max(0, length - fixed)
    start = rng.randrange(0, len(text_tokens) - n_text - 1)
    text = text_tokens[start:start + n_text]
    # cut the text into n_pairs+1 random pieces, pairs in between
    cuts = sorted(rng.randint(0, n_text) for _ in range(n_pairs))
    toks, w = [spm_mod.BOS] + head, [0.0] * (1 + len(head))
    prev = 0
    for c, p in zip(cuts, pairs):
        toks += text[prev:c] + p
        w += [0.0] * (c - prev + len(p))
        prev = c
    toks += text[prev:]
    w += [0.0] * (n_text - prev)
    for qt, at in queries:
        toks += qt + at
        w += [0.0] * len(qt) + [1.0] * len(at)
    return toks, w


def make_lm_example(rng: random.Random, length, text_tokens):
    start = rng.randrange(0, len(text_tokens) - length)
    toks = [spm_mod.BOS] + text_tokens[start:start + length - 1]
    return toks, [0.0] + [1.0] * (length - 1)


def make_copy_example(rng: random.Random, length, text_tokens, vocab_size):
    """Copy warm-up: BOS + X X X ... with X of 8-32 tokens (random normal-piece ids, or natural
    text one time in five); loss on every token after the first X."""
    m = rng.randint(8, 32)
    if rng.random() < 0.2:
        s = rng.randrange(0, len(text_tokens) - m)
        x = text_tokens[s:s + m]
    else:
        x = [rng.randrange(spm_mod.BYTE0 + 256, vocab_size) for _ in range(m)]
    k = (length - 2) // m + 1
    toks = ([spm_mod.BOS] + x * k)[:length]
    return toks, ([0.0] * (1 + m) + [1.0] * (m * (k - 1)))[:length]


def make_repeat_example(rng: random.Random, length, text_tokens, vocab_size):
    """Induction warm-up: BOS + X + Y + X where X (8-96 tokens) is either natural text or random
    normal-piece ids and Y is natural text of random length (possibly empty); the loss is on the
    second X only. Every token of it is a copy target, so the attention pattern that the passkey
    and key-value tasks need (find the earlier occurrence, read what followed) gets a dense
    gradient long before those sparse tasks give one."""
    m = rng.randint(8, min(96, (length - 1) // 2))
    if rng.random() < 0.5:
        s = rng.randrange(0, len(text_tokens) - m)
        x = text_tokens[s:s + m]
    else:
        x = [rng.randrange(spm_mod.BYTE0 + 256, vocab_size) for _ in range(m)]
    if rng.random() < 0.3:  # X X X ... : the densest copy signal
        k = (length - 1) // m
        return [spm_mod.BOS] + x * k, [0.0] * (1 + m) + [1.0] * (m * (k - 1))
    n_y = rng.randint(0, length - 1 - 2 * m)
    s = rng.randrange(0, len(text_tokens) - n_y - 1)
    y = text_tokens[s:s + n_y]
    toks = [spm_mod.BOS] + x + y + x
    w = [0.0] * (1 + m + n_y) + [1.0] * m
    return toks, w
