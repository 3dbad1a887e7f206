#!/usr/bin/env python3
"""Reference multilingual-e5-small embeddings, computed independently of ShopChat.

Reads the model's "E5S1" container (models/multilingual-e5-small/e5-small-q4.bin)
with numpy, dequantizes every weight to f32 and runs the XLM-R encoder in plain
f32; tokens come from the Python `tokenizers` package reading tokenizer.json.
Prints the first 8 values of each vector and the cosines between them, the
numbers pinned in crates/inference/tests/inference.rs.

    pip install numpy tokenizers
    python3 scripts/e5-reference.py [models/multilingual-e5-small]
"""
import struct
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

TEXTS = [
    "query: How long does delivery take?",
    "query: 送货需要多长时间？",
    "passage: Standard shipping arrives in 3-5 business days.",
]


def read_container(path):
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        sys.exit(f"{path}: not an E5S1 container")
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    at = 44
    # Tokenizer tables: pieces, special ids, offsets, scores, piece bytes,
    # normalization map. Not used here (tokenizer.json tokenizes).
    pieces = struct.unpack_from("<i", data, at)[0]
    at += 20
    (blob,) = struct.unpack_from("<Q", data, at)
    at += 8 + 4 * (pieces + 1) + 4 * pieces + blob
    _, norm_bytes = struct.unpack_from("<iI", data, at)
    at += 8 + norm_bytes
    (count,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = data[at + 2 : at + 2 + name_len].decode()
        at += 2 + name_len
        dtype = data[at]
        n, offset, size = struct.unpack_from("<IQQ", data, at + 1)
        at += 21
        raw = data[offset : offset + size]
        tensors[name] = np.frombuffer(raw, "<f4").copy() if dtype == 0 else dequantize_q4_0(raw, n)
    config = dict(hidden=h, layers=nl, heads=nh, ff=ff, vocab=voc, positions=maxp, eps=eps)
    return config, tensors


def dequantize_q4_0(raw, n):
    """ggml Q4_0: blocks of an f16 scale and 16 bytes holding 32 nibbles
    (low nibbles are values 0..15, high nibbles 16..31), value = (q - 8) * d."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "u1", 16)]))
    low = (blocks["q"] & 0x0F).astype(np.int8) - 8
    high = (blocks["q"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(n)


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))


def embed(config, t, ids):
    h, heads = config["hidden"], config["heads"]
    d = h // heads
    linear = lambda x, name, out: x @ t[name + ".w"].reshape(out, -1).T + t[name + ".b"]
    length = len(ids)
    word = t["emb.word"].reshape(config["vocab"], h)
    # The position table is stored already shifted: row 0 is XLM-R's position 2.
    x = word[ids] + t["emb.pos"].reshape(-1, h)[:length] + t["emb.type"].reshape(-1, h)[0]
    x = layer_norm(x, t["emb.ln.w"], t["emb.ln.b"], config["eps"])
    for i in range(config["layers"]):
        p = f"l{i}."
        split = lambda y: y.reshape(length, heads, d).transpose(1, 0, 2)
        q, k, v = (split(linear(x, p + n, h)) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(length, h)
        x = layer_norm(x + linear(context, p + "ao", h), t[p + "aln.w"], t[p + "aln.b"], config["eps"])
        mid = gelu(linear(x, p + "fi", config["ff"]))
        x = layer_norm(x + linear(mid, p + "fo", h), t[p + "oln.w"], t[p + "oln.b"], config["eps"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main():
    model_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "models/multilingual-e5-small")
    config, tensors = read_container(model_dir / "e5-small-q4.bin")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    vectors = []
    for text in TEXTS:
        ids = tokenizer.encode(text).ids[:512]
        vector = embed(config, tensors, np.array(ids))
        vectors.append(vector)
        print(f"{text!r}: {len(ids)} tokens")
        print("  [" + ", ".join(f"{v:.6f}" for v in vector[:8]) + "]")
    v = np.array(vectors)
    print("cosines:\n", np.round(v @ v.T, 6))


if __name__ == "__main__":
    main()
