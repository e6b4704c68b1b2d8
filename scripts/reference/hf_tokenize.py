#!/usr/bin/env python3
"""Reference tokenization of a text file with Hugging Face `tokenizers`, built from a GGUF.

Why this exists: the Swift tokenizer (TinyLM's byte-level BPE with the `gpt2-digits`
pre-tokenizer) must split text exactly as the model was trained. This script builds an
independent tokenizer from the GGUF's own `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`
(read with gguf_llama.py's reader, not the `gguf` package) using the Rust `tokenizers` library:

  model          BPE(vocab, merges), no unk token, no byte fallback, no dropout
  pre-tokenizer  Sequence([Digits(individual_digits=True),
                           ByteLevel(add_prefix_space=False, use_regex=True)])
  decoder        ByteLevel

Special tokens (<|endoftext|>, <|im_start|>, ...) are NOT registered as added tokens: like the
Swift tokenizer, text that spells one is split as ordinary text.

Input text: the file's bytes must be valid UTF-8; invalid UTF-8 is an error (exit 2) naming the
first bad byte offset, nothing is replaced. A UTF-8 BOM is kept as text. The whole file is
encoded as one string (no splitting at newlines), so the ids are exactly what a single encode of
the file gives. Output: ids as little-endian uint32.

`pip install tokenizers` (0.20 or later is known to work).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_llama import GGUFFile  # noqa: E402


def build_tokenizer(gguf_path: str) -> Tokenizer:
    g = GGUFFile(gguf_path)
    model = g.metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise SystemExit(f"tokenizer.ggml.model is {model!r}, only 'gpt2' (byte-level BPE)")
    pre = g.metadata.get("tokenizer.ggml.pre", "gpt2")
    if pre not in ("smollm",):
        raise SystemExit(f"tokenizer.ggml.pre is {pre!r}; this script builds only 'smollm'")
    tokens = g.meta_strings("tokenizer.ggml.tokens")
    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t in vocab:
            raise SystemExit(f"token {t!r} appears twice (ids {vocab[t]} and {i})")
        vocab[t] = i
    merges: list[tuple[str, str]] = []
    for m in g.meta_strings("tokenizer.ggml.merges"):
        left, sep, right = m.partition(" ")
        if not sep or not left or not right or " " in right:
            raise SystemExit(f"merge {m!r} is not 'left right'")
        merges.append((left, right))
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token=None, byte_fallback=False,
                     fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def encode(tok: Tokenizer, text: str) -> list[int]:
    ids: list[int] = tok.encode(text, add_special_tokens=False).ids
    return ids


def decode_utf8_strict(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"{name}: not valid UTF-8 at byte {e.start} ({e.reason})") from e


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Tokenize a UTF-8 file with a tokenizer built "
                                            "from a GGUF (see the module docstring).")
    p.add_argument("--gguf", required=True)
    p.add_argument("--text", help="UTF-8 text file (invalid UTF-8 is an error)")
    p.add_argument("--string", help="tokenize this string instead of --text; prints the ids")
    p.add_argument("--out", help="write the ids here, little-endian uint32")
    p.add_argument("--decode", help="comma-separated ids: print their decoded text as JSON")
    args = p.parse_args(argv)
    try:
        tok = build_tokenizer(args.gguf)
    except UnicodeDecodeError as e:  # pragma: no cover - reader raises its own errors
        raise SystemExit(str(e)) from e
    if args.decode is not None:
        ids = [int(s) for s in args.decode.replace(" ", "").split(",") if s]
        print(json.dumps(tok.decode(ids, skip_special_tokens=False), ensure_ascii=False))
        return 0
    if args.string is not None:
        print(json.dumps(encode(tok, args.string)))
        return 0
    if args.text is None or args.out is None:
        p.error("give --text and --out (or --string, or --decode)")
    text = decode_utf8_strict(Path(args.text).read_bytes(), args.text)
    t0 = time.perf_counter()
    ids = encode(tok, text)
    dt = time.perf_counter() - t0
    Path(args.out).write_bytes(np.asarray(ids, dtype="<u4").tobytes())
    print(f"{args.text}: {len(text.encode('utf-8'))} bytes -> {len(ids)} ids in {dt:.1f} s "
          f"-> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
