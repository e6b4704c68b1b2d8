"""A Hugging Face causal-LM teacher (Stage 0): ``python -m logitd.teach``.

It reads a text file the way ``logit-teach --model`` does (Sources/logit-teach/ModelTeacher.swift):
the file is tokenized in paragraph-cut pieces of ~64 KiB (``TokenCorpus``), cut into windows of
``--seq-len`` tokens, each starting on the previous window's last token, and each window is one
sequence keyed ``<first 16 hex digits of the file's SHA-256>:<token offset>``. So a Python and a
Swift teacher over the same file and tokenizer produce the same keys and tokens.

Selection runs beside the model, on its device, with torch (:func:`select_sets`): the policy of
``TopKSelector`` (Sources/LogitCore/SelectionTopK.swift, docs/DESIGN.md §3), ported exactly —

1. lp_j = z_j − m − log Σ_i exp(z_i − m), m = max z, in float64;
2. ids by descending logit, ties by lower id (−0 and +0 tie); K_τ is the smallest k whose first k
   ids reach Σ exp(lp) ≥ τ, accumulated in float64 in that order (exp(z − m)/S, as the Swift loop);
3. K = min(max(K_τ, min(K_min, V)), K_max) — when no prefix of the first min(K_max, V) ids reaches
   τ, K_τ is that pool size;
4. the gold id is appended when missing (``gold_forced``);
5. log-probs are stored as float32 of the float64 value, clamped to ≥ −FLT_MAX.

The one difference from the Swift selector: it sums the partition with a fast exp (relative error
≈ 1e-7), torch with exact float64 exps, so a row whose cumulative mass lands within ~1e-7 of τ may
be cut one id differently, and log-probs can differ by ~1e-7 (the same exception DESIGN.md §3
states against a full sort).

Sets go to logitd with :class:`logitd.client.Client` and :func:`logitd.client.encode_sets`. The run
resumes: keys already stored are skipped before any forward.

``--model`` is a model directory (or hub id) or a ``.gguf`` file; a GGUF file is loaded with
transformers' GGUF support (dequantized to float32; needs ``pip install transformers gguf
accelerate``).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .client import Client, encode_sets

FLOAT_MAX = 3.4028234663852886e38
KMAX_LIMIT = 4096
PIECE_BYTES = 64 << 10


# MARK: - Selection


def validate_policy(tau: float, k_min: int, k_max: int) -> None:
    """``SelectionPolicy.validate``: 0 < τ ≤ 1, 1 ≤ K_min ≤ K_max ≤ 4096."""
    if not (math.isfinite(tau) and 0 < tau <= 1):
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    if k_min < 1:
        raise ValueError(f"kMin must be ≥ 1, got {k_min}")
    if k_max < k_min:
        raise ValueError(f"kMin ({k_min}) must not exceed kMax ({k_max})")
    if k_max > KMAX_LIMIT:
        raise ValueError(f"kMax must be ≤ {KMAX_LIMIT}, got {k_max}")


@dataclass
class SelectedSets:
    """N positions' sets as padded tensors (on the logits' device): ``ids`` int64 [N, K_max + 1]
    and ``logprobs`` float32 [N, K_max + 1] (stored float32 values), the first ``sizes[i]`` valid,
    in selection order with a forced gold last; ``gold_forced`` bool [N]; ``covered`` float64 [N]
    (Σ exp(lp) over the set)."""

    ids: Tensor
    logprobs: Tensor
    sizes: Tensor
    gold_forced: Tensor
    covered: Tensor

    def to_lists(self) -> list[tuple[list[int], list[float], bool]]:
        """One ``(ids, logprobs, gold_forced)`` per position, for :func:`encode_sets`."""
        ids, lps = self.ids.cpu().tolist(), self.logprobs.cpu().tolist()
        sizes, forced = self.sizes.cpu().tolist(), self.gold_forced.cpu().tolist()
        return [(ids[i][:k], lps[i][:k], bool(forced[i])) for i, k in enumerate(sizes)]


def _pool(z: Tensor, pool: int) -> tuple[Tensor, Tensor]:
    """The best ``pool`` entries of each row in selection order (logit descending, lower id first
    on ties): exactly the first ``pool`` of a full stable sort, from one ``topk``."""
    vals, idx = torch.topk(z, pool, dim=1, largest=True, sorted=True)
    # topk may take any of several equal logits at the cut and order equal logits arbitrarily.
    # Rows where the cut splits a run of equal logits get a full stable sort; the others only
    # need their pool re-ordered: ids ascending, then a stable sort by logit.
    last = vals[:, -1:]
    split = (z == last).sum(1) > (vals == last).sum(1)
    by_id = torch.argsort(idx, dim=1)
    idx = torch.gather(idx, 1, by_id)
    vals = torch.gather(vals, 1, by_id)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    idx = torch.gather(idx, 1, order)
    vals = torch.gather(vals, 1, order)
    if bool(split.any()):
        rows = split.nonzero().flatten()
        full = torch.sort(z[rows], dim=1, descending=True, stable=True)
        vals[rows] = full.values[:, :pool]
        idx[rows] = full.indices[:, :pool]
    return vals, idx


@torch.no_grad()
def select_sets(logits: Tensor, golds: Tensor | Sequence[int], tau: float = 0.95, k_min: int = 1,
                k_max: int = 64) -> SelectedSets:
    """The τ-coverage top-K sets of N rows of full-vocabulary logits [N, V] (any float dtype, any
    device), gold ids [N]. Raises ``ValueError`` naming the first row with a non-finite logit, or a
    gold id outside the vocabulary."""
    validate_policy(tau, k_min, k_max)
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must be [N, V] with V ≥ 1, got {tuple(logits.shape)}")
    n, vocab = logits.shape
    device = logits.device
    gold = torch.as_tensor(golds, dtype=torch.long, device=device).reshape(-1)
    if gold.numel() != n:
        raise ValueError(f"{gold.numel()} gold ids for {n} rows")
    z = logits.float()
    if n == 0:
        empty = torch.zeros((0, k_max + 1), dtype=torch.long, device=device)
        return SelectedSets(empty, empty.float(), torch.zeros(0, dtype=torch.long, device=device),
                            torch.zeros(0, dtype=torch.bool, device=device),
                            torch.zeros(0, dtype=torch.float64, device=device))
    bad_gold = (gold < 0) | (gold >= vocab)
    if bool(bad_gold.any()):
        r = int(bad_gold.nonzero()[0])
        raise ValueError(f"row {r}: gold id {int(gold[r])} is outside the vocabulary, expected < {vocab}")
    finite = torch.isfinite(z)
    if not bool(finite.all()):
        r, i = (int(v) for v in (~finite).nonzero()[0])
        raise ValueError(f"row {r}: logit at index {i} is {float(z[r, i])}, expected a finite number")

    pool = min(k_max, vocab)
    vals, idx = _pool(z, pool)
    vals = vals + 0.0  # −0 → +0, as the Swift selection key folds it
    zd = z.double()
    m = zd.max(dim=1, keepdim=True).values
    s = torch.exp(zd - m).sum(dim=1, keepdim=True)
    log_s = torch.log(s)
    lp_pool = vals.double() - m - log_s
    cumulative = torch.cumsum(torch.exp(vals.double() - m) / s, dim=1)
    reached = cumulative >= tau
    k_tau = torch.where(reached.any(1), reached.int().argmax(1) + 1, torch.full_like(gold, pool))
    k = k_tau.clamp(min=min(k_min, vocab)).clamp(max=k_max)

    cols = torch.arange(pool, device=device)
    in_set = cols[None, :] < k[:, None]
    gold_seen = ((idx == gold[:, None]) & in_set).any(1)
    forced = ~gold_seen
    gold_lp = zd.gather(1, gold[:, None]) - m - log_s

    width = k_max + 1
    ids = torch.zeros((n, width), dtype=torch.long, device=device)
    lps = torch.zeros((n, width), dtype=torch.float64, device=device)
    ids[:, :pool] = torch.where(in_set, idx, 0)
    lps[:, :pool] = torch.where(in_set, lp_pool, 0.0)
    rows = torch.arange(n, device=device)
    forced_rows = rows[forced]
    ids[forced_rows, k[forced]] = gold[forced]
    lps[forced_rows, k[forced]] = gold_lp[forced, 0]
    sizes = k + forced.long()
    valid = torch.arange(width, device=device)[None, :] < sizes[:, None]
    covered = torch.where(valid, torch.exp(lps), 0.0).sum(1)
    stored = lps.clamp(min=-FLOAT_MAX).float()
    stored = torch.where(valid, stored, 0.0)
    return SelectedSets(ids, stored, sizes, forced, covered)


# MARK: - Corpus and windows


def paragraph_cuts(data: bytes, target: int = PIECE_BYTES) -> list[int]:
    """``TokenCorpus.paragraphCuts``: piece boundaries just after the first blank line at or past
    each ``target`` bytes."""
    cuts = [0]
    i = max(target, 1)
    while i < len(data):
        if data[i - 1] == 0x0A and data[i] == 0x0A:
            cuts.append(i + 1)
            i += max(target, 1)
        else:
            i += 1
    if not data or cuts[-1] != len(data):
        cuts.append(len(data))
    return cuts


@dataclass
class Corpus:
    path: str
    file_hash: str
    tokens: list[int]


def load_corpus(path: str, tokenizer: Any, piece_bytes: int = PIECE_BYTES) -> Corpus:
    """The file's tokens as ``TokenCorpus.load`` forms them (pieces encoded separately, no special
    tokens added) and its SHA-256."""
    with open(path, "rb") as f:
        data = f.read()
    cuts = paragraph_cuts(data, piece_bytes)
    tokens: list[int] = []
    for a, b in zip(cuts, cuts[1:]):
        tokens += tokenizer.encode(data[a:b].decode("utf-8"), add_special_tokens=False)
    return Corpus(path, hashlib.sha256(data).hexdigest(), tokens)


@dataclass
class Window:
    key: str
    start: int
    tokens: list[int]


def windows(corpus: Corpus, length: int) -> list[Window]:
    """``ModelTeacher``'s windows: ≤ ``length`` tokens, each starting on the previous one's last
    token, keyed ``<hash prefix>:<start>``."""
    out: list[Window] = []
    start, tokens = 0, corpus.tokens
    while start < len(tokens) - 1:
        end = min(start + length, len(tokens))
        out.append(Window(f"{corpus.file_hash[:16]}:{start}", start, tokens[start:end]))
        start = end - 1
    return out


# MARK: - Model


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Any, Any, str]:
    """(model, tokenizer, teacher id). ``path``: a directory or hub id, or a ``.gguf`` file."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ImportError("logitd.teach needs transformers: pip install transformers gguf accelerate") from error
    model: Any
    if path.endswith(".gguf") and os.path.isfile(path):
        folder, name = os.path.split(os.path.abspath(path))
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
        teacher_id = f"hf-gguf {name} sha256:{_file_sha256(path)}"
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        revision = getattr(model.config, "_commit_hash", None) or ""
        teacher_id = f"hf {os.path.basename(os.path.normpath(path))}{'@' + revision if revision else ''}"
    model.to(device).eval()
    return model, tokenizer, teacher_id


def tokenizer_hash(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@torch.no_grad()
def window_logits(model: Any, group: Sequence[Window], device: str) -> Tensor:
    """Logits [Σ (len − 1), V] of the windows, row t of a window predicting its token t + 1.
    Windows are right-padded into one batch (causal attention: padding never reaches real rows)."""
    width = max(len(w.tokens) for w in group)
    ids = torch.zeros((len(group), width), dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for i, w in enumerate(group):
        ids[i, :len(w.tokens)] = torch.tensor(w.tokens)
        mask[i, :len(w.tokens)] = 1
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    return torch.cat([out[i, :len(w.tokens) - 1] for i, w in enumerate(group)], dim=0)


# MARK: - Recording


def _wait_ready(client: Client, seconds: float = 60) -> None:
    """Waits for ``GET /readyz`` (a daemon that just started is recovering its cache)."""
    import urllib.request
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(client.base_url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"logitd at {client.base_url} did not become ready within {seconds:.0f} s (GET /readyz)")
        time.sleep(0.1)


def record(model: Any, tokenizer: Any, teacher_id: str, corpus_path: str, client: Client, dataset: str,
           tau: float = 0.95, k_min: int = 1, k_max: int = 64, seq_len: int = 256, batch: int = 8,
           device: str = "cpu", log: Any = sys.stdout) -> dict[str, int]:
    """Records the corpus's windows into ``dataset``; returns counts (windows, skipped, recorded, positions)."""
    validate_policy(tau, k_min, k_max)
    corpus = load_corpus(corpus_path, tokenizer)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    limit = getattr(model.config, "max_position_embeddings", None) or seq_len
    length = min(seq_len, int(limit))
    all_windows = windows(corpus, length)
    client.create_dataset(dataset, vocab_size=vocab, tau=tau, k_min=k_min, k_max=k_max, teacher_id=teacher_id,
                          tokenizer_id=f"hf {type(tokenizer).__name__} {len(tokenizer)}",
                          tokenizer_hash=tokenizer_hash(tokenizer))
    present = client.present_keys(dataset, [w.key for w in all_windows])
    pending = [w for w in all_windows if w.key not in present]
    print(f"teacher: {len(all_windows)} windows of ≤ {length} tokens from {corpus_path} ({len(corpus.tokens)} tokens); "
          f"{len(present)} already stored, {len(pending)} to record", file=log)
    started, positions = time.monotonic(), 0
    for first in range(0, len(pending), batch):
        group = pending[first:first + batch]
        logits = window_logits(model, group, device)
        golds = [t for w in group for t in w.tokens[1:]]
        sets = select_sets(logits, golds, tau, k_min, k_max).to_lists()
        sequences, offset = [], 0
        for w in group:
            count = len(w.tokens) - 1
            sequences.append({"key": w.key, "tokens": w.tokens, "sets": sets[offset:offset + count]})
            offset += count
        client.append(dataset, encode_sets(vocab, sequences))
        positions += offset
        print(f"teach {first + len(group)}/{len(pending)}  {positions} positions  "
              f"{positions / max(time.monotonic() - started, 1e-9):.0f} positions/s", file=log)
    client.seal(dataset)
    print(f"recorded {len(pending)} sequence(s) ({positions} positions), skipped {len(present)} already stored, "
          f"in {time.monotonic() - started:.1f}s", file=log)
    return {"windows": len(all_windows), "skipped": len(present), "recorded": len(pending), "positions": positions}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m logitd.teach",
                                description="Record candidate sets of a Hugging Face causal LM into logitd (Stage 0).")
    p.add_argument("--model", required=True, help="model directory, hub id, or .gguf file")
    p.add_argument("--corpus", required=True, help="text file the teacher reads")
    p.add_argument("--daemon", required=True, help="logitd base URL, e.g. http://127.0.0.1:8484 (token: $LOGITD_TOKEN)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--tau", type=float, default=0.95, help="coverage threshold τ (0.95)")
    p.add_argument("--kmin", type=int, default=1, help="smallest K (1)")
    p.add_argument("--kmax", type=int, default=64, help="largest K before the gold is forced in (64)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (256)")
    p.add_argument("--batch", type=int, default=8, help="windows per forward (8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    try:
        validate_policy(a.tau, a.kmin, a.kmax)
    except ValueError as error:
        p.error(str(error))
    if not 2 <= a.seq_len <= 65535:
        p.error("--seq-len must be 2…65535")
    if a.batch < 1:
        p.error("--batch must be ≥ 1")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    client = Client(a.daemon, token=os.environ.get("LOGITD_TOKEN"))
    _wait_ready(client)
    model, tokenizer, teacher_id = load_model(a.model, a.device, getattr(torch, a.dtype))
    record(model, tokenizer, teacher_id, a.corpus, client, a.dataset, a.tau, a.kmin, a.kmax, a.seq_len, a.batch, a.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
