#!/usr/bin/python3
"""spm.py's encoder against llama.cpp's tokenizer test vectors for the Llama-2 SPM vocabulary
(../shared/models/ggml-vocab-llama-spm.gguf.inp/.out, tokenized without BOS), and a round trip
of the learned probe vocabulary.  /usr/bin/python3 tools/train-probe/test_spm.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf  # noqa: E402
import spm  # noqa: E402

M = "/work/shared/models/ggml-vocab-llama-spm.gguf"


def main():
    r = gguf.Reader(M)
    tok = spm.SPM.from_gguf_kv(r.kv)
    inp = open(M + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
    out = open(M + ".out", encoding="utf-8").read().split("\n")
    bad = 0
    for s, o in zip(inp, out):
        exp = [int(x) for x in o.split()]
        got = tok.encode(s)
        if got != exp:
            bad += 1
            print("FAIL", repr(s), got, exp)
    print(f"llama-spm vectors: {len(inp) - bad}/{len(inp)} match")
    # a learned vocabulary: decode(encode(x)) == x, digits one token each
    text = "Once upon a time, Lily saw 48213 birds.\nThe pass key is 10001. ünï ✓\t!"
    v = spm.learn([text * 3, "the cat sat on the mat " * 50], 400)
    ids = v.encode(text)
    assert v.decode(ids, strip_leading_space=True) == text
    assert [v.tokens[i] for i in v.encode(" 48213", dummy_prefix=False)] == ["\u2581", "4", "8", "2", "1", "3"]
    print("learned vocab round trip: ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
