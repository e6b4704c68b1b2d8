"""A client of logitd for Python teachers (PyTorch, vLLM, anything): standard library only.

- ``encode_sets`` / ``encode_logits``: batch bodies in the wire format (schema/WIRE_FORMAT.md).
- ``Client``: create a dataset, append bodies, look up keys, stats, seal; retries 503s
  (honouring Retry-After) and connection errors, like the Swift ``LogitClient``.
- ``SharedSlots``: hands logits bodies to a logitd on the same host through a size-sealed
  memfd (schema/SHARED_MEMORY.md) instead of the socket.

Rows are passed as bytes-like objects of little-endian values, e.g. ``tensor.float().numpy()``
(f32), ``tensor.half().numpy()`` (f16) or ``tensor.view(torch.int16).numpy()`` of a bfloat16
tensor (bf16): row t of a sequence predicts ``tokens[t + 1]``.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

MAGIC = 0x3157474C
VERSION = 1
MODE_SETS, MODE_LOGITS = 1, 2
DTYPES = {"f32": (1, 4), "f16": (2, 2), "bf16": (3, 2)}
FLAG_LOSS_MASK, FLAG_ALIGNED_ROWS = 1, 2
ROW_ALIGNMENT = 64


def _header(mode: int, dtype_code: int, vocab_size: int, count: int) -> bytes:
    return struct.pack("<IHBBIIQ", MAGIC, VERSION, mode, dtype_code, vocab_size, count, 0)


def _prefix(out: bytearray, key: str, tokens: Sequence[int], loss_mask: Sequence[int] | None, flags: int) -> None:
    # The daemon's key rule (schema/WIRE_FORMAT.md, "Keys"), checked here to fail before sending.
    try:
        key_bytes = key.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"key {key!r} is not valid UTF-8 (character {e.start})") from None
    if not 1 <= len(key_bytes) <= 1024:
        raise ValueError(f"key {key!r} must be 1..1024 UTF-8 bytes")
    bad = next((i for i, b in enumerate(key_bytes) if b < 0x20 or b == 0x7F), None)
    if bad is not None:
        raise ValueError(f"key {key!r}: byte {bad} is the control character 0x{key_bytes[bad]:02X}; "
                         "keys may not contain U+0000-U+001F or U+007F")
    if len(tokens) < 2:
        raise ValueError(f"sequence {key!r} needs at least 2 tokens")
    if loss_mask is not None:
        if len(loss_mask) != len(tokens) - 1:
            raise ValueError(f"sequence {key!r}: loss_mask has {len(loss_mask)} entries, expected {len(tokens) - 1}")
        flags |= FLAG_LOSS_MASK
    out += struct.pack("<H", len(key_bytes)) + key_bytes
    out += struct.pack("<IB", len(tokens), flags)
    out += struct.pack(f"<{len(tokens)}I", *tokens)
    if loss_mask is not None:
        out += bytes(1 if m else 0 for m in loss_mask)


def encode_sets(vocab_size: int, sequences: Sequence[Mapping[str, Any]]) -> bytes:
    """Sets mode. Each sequence is a dict: ``key``, ``tokens``, ``sets`` — one
    ``(ids, logprobs, gold_forced)`` per position, ids in any order, logprobs the teacher's
    full-vocabulary log-probabilities — and optionally ``loss_mask``."""
    out = bytearray(_header(MODE_SETS, 0, vocab_size, len(sequences)))
    for seq in sequences:
        tokens, sets = seq["tokens"], seq["sets"]
        if len(sets) != len(tokens) - 1:
            raise ValueError(f"sequence {seq['key']!r}: {len(sets)} sets for {len(tokens) - 1} positions")
        _prefix(out, seq["key"], tokens, seq.get("loss_mask"), 0)
        out += struct.pack(f"<{len(sets)}H", *(len(ids) for ids, _, _ in sets))
        forced = bytearray((len(sets) + 7) // 8)
        for t, (_, _, gold_forced) in enumerate(sets):
            if gold_forced:
                forced[t // 8] |= 1 << (t % 8)
        out += forced
        for ids, _, _ in sets:
            out += struct.pack(f"<{len(ids)}I", *ids)
        for _, logprobs, _ in sets:
            out += struct.pack(f"<{len(logprobs)}f", *logprobs)
    return bytes(out)


def encode_logits(vocab_size: int, sequences: Sequence[Mapping[str, Any]], dtype: str = "f32") -> bytes:
    """Logits mode: logitd selects with the dataset's policy. Each sequence is a dict:
    ``key``, ``tokens``, ``rows`` (bytes-like, (len(tokens) - 1) * vocab_size values of
    ``dtype``) and optionally ``loss_mask``. Rows are padded to 64-byte offsets (flag 0x2),
    so the daemon reads them in place."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    code, width = DTYPES[dtype]
    out = bytearray(_header(MODE_LOGITS, code, vocab_size, len(sequences)))
    for seq in sequences:
        rows = memoryview(seq["rows"]).cast("B")
        expected = (len(seq["tokens"]) - 1) * vocab_size * width
        if len(rows) != expected:
            raise ValueError(f"sequence {seq['key']!r}: rows hold {len(rows)} bytes, expected {expected}")
        _prefix(out, seq["key"], seq["tokens"], seq.get("loss_mask"), FLAG_ALIGNED_ROWS)
        out += bytes(-len(out) % ROW_ALIGNMENT)
        out += rows
    return bytes(out)


class LogitdError(Exception):
    """An answer other than 2xx: ``status`` and the daemon's JSON (error, offset, sequence, position, key)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.get('error', body)}")


class Client:
    """``base_url`` like ``http://127.0.0.1:8484``; ``token`` defaults to $LOGITD_TOKEN."""

    def __init__(self, base_url: str, token: str | None = None, max_attempts: int = 8, timeout: float = 600) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else os.environ.get("LOGITD_TOKEN")
        self.max_attempts = max(1, max_attempts)
        self.timeout = timeout

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url + "/" + urllib.parse.quote(path)
        delay = 0.05
        for attempt in range(1, self.max_attempts + 1):
            try:
                req = urllib.request.Request(url, data=body, method=method, headers=headers)
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    data = response.read()
                    return json.loads(data) if data else None
            except urllib.error.HTTPError as e:
                data = e.read()
                try:
                    answer: dict[str, Any] = json.loads(data)
                except ValueError:
                    answer = {"error": data.decode("utf-8", "replace")}
                if e.code != 503 or attempt == self.max_attempts:
                    raise LogitdError(e.code, answer) from None
                retry_after = e.headers.get("Retry-After")
                time.sleep(min(float(retry_after) if retry_after else delay, 30))
            except (urllib.error.URLError, ConnectionError):
                if attempt == self.max_attempts:
                    raise
                time.sleep(delay)
            delay = min(delay * 2, 5)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _json(self, method: str, path: str, obj: Any) -> Any:
        return self.request(method, path, json.dumps(obj).encode(), "application/json")

    def create_dataset(self, name: str, vocab_size: int, tau: float | None = None, k_min: int | None = None,
                       k_max: int | None = None, teacher_id: str = "", tokenizer_id: str = "", tokenizer_hash: str = "",
                       logprob_scale: float | None = None) -> Any:
        spec: dict[str, Any] = {"name": name, "vocab_size": vocab_size, "teacher_id": teacher_id,
                "tokenizer_id": tokenizer_id, "tokenizer_hash": tokenizer_hash}
        for field, value in (("tau", tau), ("k_min", k_min), ("k_max", k_max), ("logprob_scale", logprob_scale)):
            if value is not None:
                spec[field] = value
        return self._json("POST", "v1/datasets", spec)

    def append(self, dataset: str, body: bytes) -> Any:
        """One atomic batch; returns ``{"new", "duplicates", "positions"}`` once durable."""
        return self.request("POST", f"v1/datasets/{dataset}/sequences", body, "application/octet-stream")

    def present_keys(self, dataset: str, keys: Sequence[str]) -> set[str]:
        present: set[str] = set()
        for start in range(0, len(keys), 5000):
            present.update(self._json("POST", f"v1/datasets/{dataset}/keys", {"keys": keys[start:start + 5000]})["present"])
        return present

    def stats(self, dataset: str) -> Any:
        return self.request("GET", f"v1/datasets/{dataset}/stats")

    def seal(self, dataset: str) -> Any:
        return self.request("POST", f"v1/datasets/{dataset}/seal")


class SharedSlots:
    """``slots`` slots of ``slot_bytes`` in one size-sealed memfd, registered with a logitd on
    this host under ``name``. A slot is the caller's while its ``append`` runs."""

    def __init__(self, client: Client, name: str, slot_bytes: int, slots: int = 1) -> None:
        self.client = client
        self.name = name
        self.slot_bytes = -(-slot_bytes // ROW_ALIGNMENT) * ROW_ALIGNMENT
        self.slots = slots
        self.fd = os.memfd_create(f"logitd-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, self.slot_bytes * slots)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        self.memory = mmap.mmap(self.fd, self.slot_bytes * slots)
        client._json("POST", "v1/regions", {"name": name, "path": f"/proc/{os.getpid()}/fd/{self.fd}"})

    def append(self, dataset: str, body: bytes, slot: int = 0) -> Any:
        """Writes ``body`` into ``slot`` and sends a reference to it; returns once durable."""
        if not 0 <= slot < self.slots or len(body) > self.slot_bytes:
            raise ValueError(f"a {len(body)}-byte body in slot {slot} does not fit {self.slots} slot(s) of {self.slot_bytes} bytes")
        offset = slot * self.slot_bytes
        self.memory[offset:offset + len(body)] = body
        return self.client._json("POST", f"v1/datasets/{dataset}/sequences/shared",
                                 {"region": self.name, "offset": offset, "length": len(body)})

    def close(self) -> None:
        self.client.request("DELETE", f"v1/regions/{self.name}")
        self.memory.close()
        os.close(self.fd)
