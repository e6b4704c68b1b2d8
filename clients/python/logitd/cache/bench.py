"""``python -m logitd.cache bench``: candidates decoded per second by this package, against the
Swift tools measured in the same run (absolute times on a shared machine are noisy; ratios are not).

Swift baselines:

- ``export``: ``logitctl export`` of the same dataset to /dev/null (decode *and* JSON formatting,
  plus process start-up) — same data, more work than a decode.
- ``decode``: ``logit-bench decode --cache CACHE --dataset NAME``: ``ShardReader.decodeBlock`` over
  every block of the dataset's committed shards, each opened afresh, checksums included — the
  Swift decode alone, on the same files.

Python is timed two ways: ``python_candidates_per_s``, every committed sequence as a
:class:`Record` through :meth:`Cache.sequences` (catalog reads included) — the figure
``python_over_swift`` uses; and ``python_shard_decode_candidates_per_s``, every block of the
dataset's shards, each shard opened afresh, no catalog and no records — the same work as the
Swift decode timing. ``swift_candidates_per_s`` is the baseline chosen with ``--baseline``
(default ``decode``, the stricter comparison when ``logit-bench`` is found); every figure that ran
is printed."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from typing import Any

from .reader import Cache
from .shard import Shard


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=5, help="timing repetitions, best kept (default 5)")
    p.add_argument("--baseline", choices=["decode", "export"], default="decode",
                   help="Swift figure reported as swift_candidates_per_s (default decode)")
    p.add_argument("--no-export", action="store_true", help="skip the logitctl export timing")
    p.add_argument("--no-decode", action="store_true", help="skip the logit-bench decode timing")
    p.add_argument("--bin", help="directory holding logitctl and logit-bench (default: $LOGITD_BIN, PATH, "
                                 "or .build/release of the checkout this package sits in)")


def _tool(name: str, directory: str | None) -> str | None:
    for d in (directory, os.environ.get("LOGITD_BIN")):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    for _ in range(5):
        here = os.path.dirname(here)
        candidate = os.path.join(here, ".build", "release", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def python_decode(path: str, dataset: str) -> tuple[float, int, int]:
    """Seconds, sequences and candidates of one full decode from a fresh :class:`Cache`."""
    started = time.perf_counter()
    sequences = candidates = 0
    with Cache(path) as cache:
        for record in cache.sequences(dataset):
            sequences += 1
            candidates += record.candidates
    return time.perf_counter() - started, sequences, candidates


def python_shard_decode(cache: Cache, dataset: str) -> tuple[float, int]:
    """Seconds and candidates of decoding every block of the dataset's shards, each shard opened
    afresh (what ``logit-bench decode`` times in Swift: a fresh reader, ``decodeBlock`` over every
    block, checksums on first touch), without the catalog and without per-sequence records."""
    shards = [s for s in cache.shards(dataset) if s.state != "quarantined"]
    started = time.perf_counter()
    candidates = 0
    for info in shards:
        path = os.path.join(cache.path, info.path)
        with Shard.sealed(path) if info.state == "sealed" else Shard.open_prefix(path, info.committed_bytes) as shard:
            for index in range(len(shard.blocks)):
                candidates += len(shard.block(index).ids)
    return time.perf_counter() - started, candidates


def swift_export_seconds(logitctl: str, path: str, dataset: str) -> float:
    started = time.perf_counter()
    subprocess.run([logitctl, "export", path, "--dataset", dataset], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def swift_decode_rate(logit_bench: str, path: str, dataset: str, repeats: int) -> dict[str, Any]:
    out = subprocess.run([logit_bench, "decode", "--cache", path, "--dataset", dataset, "--repeats", str(repeats), "--json"],
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_bench(cache: Cache, args: argparse.Namespace) -> dict[str, Any]:
    repeats = max(1, args.repeats)
    python_decode(cache.path, args.dataset)          # warm-up: page cache, buffers; not timed
    runs, shard_runs = [], []
    for _ in range(repeats):                         # interleaved, so load changes hit both alike
        runs.append(python_decode(cache.path, args.dataset))
        shard_runs.append(python_shard_decode(cache, args.dataset))
    seconds, sequences, candidates = min(runs)
    shard_seconds, _ = min(shard_runs)
    result: dict[str, Any] = {"bench": "logitd.cache decode", "dataset": args.dataset, "sequences": sequences,
                              "candidates": candidates, "repeats": repeats, "python_seconds": seconds,
                              "python_candidates_per_s": candidates / seconds,
                              "python_shard_decode_candidates_per_s": candidates / shard_seconds}
    logitctl, logit_bench = _tool("logitctl", args.bin), _tool("logit-bench", args.bin)
    if logitctl and not args.no_export:
        best = min(swift_export_seconds(logitctl, cache.path, args.dataset) for _ in range(repeats))
        result.update(swift_export_seconds=best, swift_export_candidates_per_s=candidates / best,
                      python_over_swift_export=best / seconds)
    if logit_bench and not args.no_decode:
        swift = swift_decode_rate(logit_bench, cache.path, args.dataset, repeats)
        if int(swift["candidates"]) != candidates:
            raise RuntimeError(f"logit-bench decode read {swift['candidates']} candidates, this package {candidates}: "
                               "not the same data")
        rate = float(swift["decode_candidates_per_s"])
        result.update(swift_decode_candidates_per_s=rate, swift_decode_candidates=swift["candidates"],
                      python_over_swift_decode=result["python_candidates_per_s"] / rate,
                      python_shard_decode_over_swift_decode=result["python_shard_decode_candidates_per_s"] / rate)
    _choose_baseline(result, args.baseline)
    result["text"] = _text(result)
    return result


def _choose_baseline(result: dict[str, Any], wanted: str) -> None:
    order = ["decode", "export"] if wanted == "decode" else ["export", "decode"]
    for name in order:
        rate = result.get(f"swift_{name}_candidates_per_s")
        if rate:
            result.update(swift_baseline=name, swift_candidates_per_s=rate,
                          python_over_swift=result["python_candidates_per_s"] / rate)
            return
    result.update(swift_baseline=None, swift_candidates_per_s=None, python_over_swift=None)


def _text(r: dict[str, Any]) -> str:
    lines = [f"python: {r['candidates']} candidates in {r['sequences']} sequences, best of {r['repeats']}: "
             f"{r['python_seconds']:.3f} s = {r['python_candidates_per_s'] / 1e6:.1f} M candidates/s as records "
             f"(catalog included); {r['python_shard_decode_candidates_per_s'] / 1e6:.1f} M/s as blocks of freshly "
             f"opened shards"]
    if "swift_export_candidates_per_s" in r:
        lines.append(f"swift logitctl export (same data, with JSON): {r['swift_export_candidates_per_s'] / 1e6:.1f} M/s "
                     f"-> python/swift {r['python_over_swift_export']:.2f}")
    if "swift_decode_candidates_per_s" in r:
        lines.append(f"swift decode (logit-bench decode, same shards): {r['swift_decode_candidates_per_s'] / 1e6:.1f} "
                     f"M/s -> python/swift {r['python_over_swift_decode']:.2f} (records), "
                     f"{r['python_shard_decode_over_swift_decode']:.2f} (blocks)")
    return "\n".join(lines)
