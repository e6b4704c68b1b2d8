"""Shared helpers: the real binaries (``.build/release`` of this checkout, or ``$LOGITD_BIN``),
caches built with them, a running ``logitd``, and a small shard rewriter for the codec tests."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
sys.path.insert(0, PACKAGE_ROOT)

import lz4.block  # noqa: E402
import xxhash  # noqa: E402
import zstandard  # noqa: E402

BIN = os.environ.get("LOGITD_BIN", os.path.join(REPO, ".build", "release"))


def binary(name: str) -> str:
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} not built (swift build -c release, or set LOGITD_BIN)")
    return path


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(args), capture_output=True, check=check)


def logitctl_export(cache: str, dataset: str) -> bytes:
    return run(binary("logitctl"), "export", cache, "--dataset", dataset).stdout


def python_export(cache: str, dataset: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "logitd.cache", "export", cache, "--dataset", dataset, *extra],
                          capture_output=True, env=env)


def side_files(cache: str) -> list[str]:
    return sorted(n for n in os.listdir(cache) if n.startswith("catalog.sqlite-"))


def remove_side_files(cache: str) -> None:
    for name in side_files(cache):
        os.remove(os.path.join(cache, name))


def teach(cache: str, dataset: str, positions: int, vocab: int = 1000, seq_len: int = 256, seed: int = 1) -> None:
    run(binary("logit-teach"), "--teacher", "synthetic", "--cache", cache, "--dataset", dataset, "--positions",
        str(positions), "--vocab", str(vocab), "--seq-len", str(seq_len), "--seed", str(seed))


def import_jsonl(cache: str, dataset: str, lines: list[dict[str, Any]], vocab: int, kmax: int = 64) -> None:
    path = os.path.join(cache + ".import.jsonl")
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    run(binary("logitctl"), "import", cache, "--dataset", dataset, "--vocab-size", str(vocab), "--kmax", str(kmax),
        path)


def odd_key_lines() -> list[dict[str, Any]]:
    """Keys at the edges of the key rule (schema/WIRE_FORMAT.md, "Keys": no C0 controls or DEL) and
    of JSON string escaping; "é" and "e\u0301" are canonically equivalent but different bytes, so
    distinct keys; a loss mask on some; -0.0 log-probs."""
    keys = ["a/b", 'q"uote', "back\\slash", "c1\x85x", "c1\x9f", "nbsp\xa0x", "é", "e\u0301", "😀", "ls\u2028x",
            "<>&'", "\ufeffbom", "sp ace", "k" * 1024]
    lines = []
    for i, key in enumerate(keys):
        line: dict[str, Any] = {"key": key, "tokens": [1, 2, 3], "sets": [
            {"ids": [2, 5], "logprobs": [-0.1, -3.0], "gold_forced": False},
            {"ids": [3], "logprobs": [-0.0], "gold_forced": True}]}
        if i % 2:
            line["loss_mask"] = [1, 0]
        lines.append(line)
    return lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_daemon(cache: str, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """Starts ``logitd serve`` on ``cache`` and waits until it is ready; returns it and its URL."""
    port = free_port()
    log = open(cache + ".daemon.log", "wb")
    process = subprocess.Popen([binary("logitd"), "serve", "--cache-dir", cache, "--port", str(port),
                                "--seal-idle-seconds", "0", *flags], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            with open(cache + ".daemon.log") as f:
                raise RuntimeError(f"logitd did not start: {f.read()}")
        time.sleep(0.05)


def stop_daemon(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def daemon(cache: str, *flags: str) -> Iterator[str]:
    """A running ``logitd serve`` on ``cache``; yields its base URL; stops it afterwards."""
    process, url = start_daemon(cache, *flags)
    try:
        yield url
    finally:
        stop_daemon(process)


def random_sequences(name: str, count: int, vocab: int, k_max: int, seed: int, big: float = 1.0) -> list[dict[str, Any]]:
    """Sequences for ``logitd.client.encode_sets``: ids small and large (several width classes),
    log-probs with big gaps (escapes), tiny values, -0.0 and (with ``big``) huge magnitudes, some
    gold tokens forced in, loss masks on every third sequence, keys needing JSON escapes."""
    rng = random.Random(seed)
    sequences = []
    for s in range(count):
        length = rng.randint(2, 40)
        tokens = [rng.randrange(vocab) for _ in range(length)]
        sets = []
        for t in range(length - 1):
            k = rng.randint(1, k_max)
            ids: set[int] = set()
            while len(ids) < k:
                ids.add(rng.choice([rng.randrange(min(200, vocab)), rng.randrange(vocab)]))
            chosen = list(ids)
            forced = False
            if tokens[t + 1] not in chosen:
                chosen.append(tokens[t + 1])
                forced = len(chosen) == k_max + 1 or rng.random() < 0.5
            lps = sorted((-rng.choice([rng.random() * 3, rng.random() * 2000, 1e-6 * rng.random(), 0.0,
                                       rng.random() * big]) for _ in chosen), reverse=True)
            total = sum(_exp(x) for x in lps)
            if total > 1:
                lps = [x - _log(total) - 1e-3 for x in lps]
            sets.append((chosen, lps, forced))
        record: dict[str, Any] = {"key": f"{name}-{s}/é \"q\"\\", "tokens": tokens, "sets": sets}
        if s % 3 == 0:
            record["loss_mask"] = [rng.randrange(2) for _ in range(length - 1)]
        sequences.append(record)
    return sequences


def _exp(x: float) -> float:
    import math
    return math.exp(x) if x > -700 else 0.0


def _log(x: float) -> float:
    import math
    return math.log(x)


def feed(url: str, dataset: str, vocab: int, scale: float, count: int, seed: int, big: float = 1.0,
         k_max: int = 6, batch: int = 7) -> None:
    from logitd.client import Client, encode_sets
    client = Client(url)
    client.create_dataset(dataset, vocab, tau=0.9, k_min=1, k_max=k_max, teacher_id="feed", logprob_scale=scale)
    sequences = random_sequences(dataset, count, vocab, k_max, seed, big)
    for i in range(0, count, batch):
        client.append(dataset, encode_sets(vocab, sequences[i:i + batch]))


class TempDir(unittest.TestCase):
    """A test case with a fresh temporary directory in ``self.tmp``."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="logitd-py-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)


# -- rewriting a sealed shard with another codec (the daemon always writes zstd) -----------------

def rewrite_shard(source: str, target: str, codec: int) -> None:
    """Copies a sealed shard, storing every block with ``codec`` (0 none, 1 zstd, 2 lz4): new
    block headers and checksums, footer index, footer checksum and trailer."""
    with open(source, "rb") as f:
        data = f.read()
    header_length = struct.unpack_from("<I", data, 16)[0]
    footer_offset, footer_length = struct.unpack_from("<QQ", data, len(data) - 64)
    block_count = struct.unpack_from("<Q", data, footer_offset + 8)[0]
    prov_length = struct.unpack_from("<I", data, footer_offset + 40)[0]
    out = bytearray(data[:header_length])
    entries = []
    for i in range(block_count):
        entry = data[footer_offset + 48 + 64 * i:footer_offset + 48 + 64 * (i + 1)]
        offset, stored, raw_length = struct.unpack_from("<QQQ", entry, 0)
        block_header = bytearray(data[offset:offset + 64])
        payload = data[offset + 64:offset + 64 + stored]
        raw = _decompress(payload, data[offset + 4], raw_length)
        assert len(raw) == raw_length
        new_payload = {0: raw, 1: zstandard.ZstdCompressor(level=3).compress(raw),
                       2: lz4.block.compress(raw, store_size=False)}[codec]
        block_header[4] = codec
        struct.pack_into("<Q", block_header, 8, len(new_payload))
        block_header[24:32] = bytes(8)
        checksum = xxhash.xxh3_64_intdigest(bytes(block_header) + new_payload)
        struct.pack_into("<Q", block_header, 24, checksum)
        new_offset = len(out)
        out += block_header + new_payload + bytes(-len(new_payload) % 64)
        new_entry = bytearray(entry)
        struct.pack_into("<QQ", new_entry, 0, new_offset, len(new_payload))
        struct.pack_into("<Q", new_entry, 24, checksum)
        new_entry[60] = codec
        entries.append(bytes(new_entry))
    new_footer_offset = len(out)
    footer = bytearray(data[footer_offset:footer_offset + 48]) + b"".join(entries)
    footer += data[footer_offset + 48 + 64 * block_count:footer_offset + 48 + 64 * block_count + prov_length]
    assert len(footer) == footer_length
    out += footer + bytes(-len(footer) % 64)
    trailer = bytearray(data[len(data) - 64:])
    struct.pack_into("<QQQ", trailer, 0, new_footer_offset, len(footer), xxhash.xxh3_64_intdigest(bytes(footer)))
    struct.pack_into("<Q", trailer, 48, xxhash.xxh3_64_intdigest(bytes(trailer[:48])))
    out += trailer
    with open(target, "wb") as f:
        f.write(out)


def _decompress(payload: bytes, codec: int, raw_length: int) -> bytes:
    if codec == 1:
        out: bytes = zstandard.ZstdDecompressor().decompress(payload)
        return out
    if codec == 2:
        out = lz4.block.decompress(payload, uncompressed_size=raw_length)
        return out
    return payload


def sealed_shards(cache: str) -> list[str]:
    found = []
    for root, _, files in os.walk(os.path.join(cache, "shards")):
        found += [os.path.join(root, f) for f in files if f.endswith(".lgs")]
    return sorted(found)


def open_shards(cache: str) -> list[str]:
    found = []
    for root, _, files in os.walk(os.path.join(cache, "shards")):
        found += [os.path.join(root, f) for f in files if f.endswith(".open")]
    return sorted(found)
