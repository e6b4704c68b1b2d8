"""``python -m logitd.cache``: list datasets, export JSONL exactly as ``logitctl export`` does, and
measure decode speed against the Swift tools.

Exit codes follow ``logitctl``: 0 success; 2 unknown dataset; 3 cache missing, damaged or
unreadable; 64 usage."""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from .bench import add_bench_arguments, run_bench
from .errors import CacheError, DatasetNotFound
from .jsonl import LineEncoder
from .reader import Cache

EXIT_REJECTED, EXIT_UNAVAILABLE, EXIT_USAGE = 2, 3, 64


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def export(cache: Cache, dataset: str, verify_hashes: bool, out: str | None) -> None:
    """Writes every committed sequence of ``dataset`` as one JSONL line, storage order."""
    encoder = LineEncoder()
    stream = open(out, "wb") if out else sys.stdout.buffer
    try:
        chunk: list[str] = []
        size = 0
        for record in cache.sequences(dataset, verify_hashes=verify_hashes):
            line = encoder.encode(record)
            chunk.append(line)
            size += len(line)
            if size > 1 << 20:
                stream.write(("\n".join(chunk) + "\n").encode("utf-8"))
                chunk, size = [], 0
        if chunk:
            stream.write(("\n".join(chunk) + "\n").encode("utf-8"))
        stream.flush()
    finally:
        if out:
            stream.close()


def datasets(cache: Cache, as_json: bool) -> None:
    rows = []
    for d in cache.datasets():
        c = d.coverage
        rows.append({"name": d.name, "vocab_size": d.vocab_size, "tau": d.tau, "k_min": d.k_min, "k_max": d.k_max,
                     "logprob_scale": d.logprob_scale, "teacher_id": d.teacher_id, "tokenizer_id": d.tokenizer_id,
                     "tokenizer_hash": d.tokenizer_hash, "created_at": d.created_at, "sequences": c.sequences,
                     "positions": c.positions, "candidates": c.candidates, "k_mean": c.k_mean,
                     "covered_mass_mean": c.covered_mass_mean, "gold_forced_rate": c.gold_forced_rate,
                     "bytes": c.bytes, "shards_sealed": c.shards_sealed, "shards_open": c.shards_open,
                     "shards_quarantined": c.shards_quarantined})
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return
    for r in rows:
        print(f"{r['name']}: V={r['vocab_size']} tau={r['tau']} K={r['k_min']}..{r['k_max']} "
              f"teacher={r['teacher_id']!r} | {r['sequences']} sequences, {r['positions']} positions, "
              f"{r['candidates']} candidates (K mean {r['k_mean']:.2f}), gold forced {r['gold_forced_rate']:.2%}, "
              f"{r['shards_sealed']} sealed / {r['shards_open']} open / {r['shards_quarantined']} quarantined shards")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m logitd.cache", description="Read a logitd cache directory (read-only).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("datasets", help="List datasets with settings, provenance and coverage.")
    d.add_argument("cache")
    d.add_argument("--json", action="store_true")
    e = sub.add_parser("export", help="Write a dataset as JSONL, byte-identical to `logitctl export`.")
    e.add_argument("cache")
    e.add_argument("--dataset", required=True)
    e.add_argument("--format", default="jsonl", choices=["jsonl"])
    e.add_argument("--out", help="output file (default: standard output)")
    e.add_argument("--verify-hashes", action="store_true", help="also check every record's catalog content hash")
    b = sub.add_parser("bench", help="Decode speed of this package against the Swift tools, same run.")
    b.add_argument("cache")
    b.add_argument("--dataset", required=True)
    add_bench_arguments(b)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cache = Cache(args.cache)
        if args.command == "datasets":
            datasets(cache, args.json)
        elif args.command == "export":
            export(cache, args.dataset, args.verify_hashes, args.out)
        else:
            result = run_bench(cache, args)
            text = result.pop("text")
            print(json.dumps(result, sort_keys=True) if args.json else text)
        return 0
    except DatasetNotFound as e:
        print(f"logitd.cache: {e}", file=sys.stderr)
        return EXIT_REJECTED
    except CacheError as e:
        print(f"logitd.cache: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
