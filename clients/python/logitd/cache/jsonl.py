"""The JSONL lines of ``logitctl export``, byte for byte (Sources/WireFormat/JSONLines.swift):

    {"key": "doc-1", "tokens": [5, 7, 9], "loss_mask": [1, 0], "sets": [{"ids": [7, 2],
     "logprobs": [-0.09375, -2.5], "gold_forced": false}, …]}

Fields in that order, ", " between items, the key as Swift's ``JSONEncoder`` writes a string
(``/`` escaped as ``\\/``, control characters as ``\\b \\f \\n \\r \\t`` or ``\\u00xx``,
everything else as UTF-8), log-probs as Swift's ``Float.description``."""

from __future__ import annotations

import numpy as np

from .models import Record

_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_ESCAPE_TABLE = {ord(c): e for c, e in _ESCAPES.items()}
_ESCAPE_TABLE.update({c: f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _ESCAPES})


def json_string(text: str) -> str:
    """A JSON string literal as Swift's ``JSONEncoder`` (default options) writes it."""
    return '"' + text.translate(_ESCAPE_TABLE) + '"'


def swift_float(value: np.float32) -> str:
    """``Float.description`` (SwiftDtoa): the shortest digits that round-trip in binary32,
    exponential form when the decimal exponent is < −4 or |value| > 2^24, else positional with
    at least one digit after the point."""
    v = np.float32(value)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "-inf" if v < 0 else "inf"
    if v == 0:
        return "-0.0" if np.signbit(v) else "0.0"
    sign = "-" if v < 0 else ""
    mantissa, exponent_text = np.format_float_scientific(abs(v), unique=True, trim="-", exp_digits=1).split("e")
    digits, exponent = mantissa.replace(".", ""), int(exponent_text)
    if exponent < -4 or abs(v) > np.float32(2**24):
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    if exponent + 1 < len(digits):
        return f"{sign}{digits[:exponent + 1]}.{digits[exponent + 1:]}"
    return f"{sign}{digits}{'0' * (exponent + 1 - len(digits))}.0"


class LineEncoder:
    """Encodes records as export lines; remembers the text of every log-prob value it has seen
    (a dataset holds few distinct quantized values)."""

    def __init__(self) -> None:
        self._floats: dict[int, str] = {}

    def _logprob_texts(self, logprobs: np.ndarray[tuple[int], np.dtype[np.float32]]) -> list[str]:
        bits = logprobs.view(np.uint32).tolist()
        cache = self._floats
        missing = {b for b in bits if b not in cache}
        for b in missing:
            cache[b] = swift_float(np.uint32(b).view(np.float32))
        return [cache[b] for b in bits]

    def encode(self, record: Record) -> str:
        parts = ['{"key": ', json_string(record.key), ', "tokens": [', ", ".join(map(str, record.tokens.tolist())), "]"]
        if record.loss_mask is not None:
            parts += [', "loss_mask": [', ", ".join(map(str, record.loss_mask.tolist())), "]"]
        parts.append(', "sets": [')
        ids = list(map(str, record.ids.tolist()))
        logprobs = self._logprob_texts(record.logprobs)
        offsets = record.offsets.tolist()
        forced = record.gold_forced.tolist()
        sets = []
        for t in range(record.positions):
            lo, hi = offsets[t], offsets[t + 1]
            sets.append('{"ids": [' + ", ".join(ids[lo:hi]) + '], "logprobs": [' + ", ".join(logprobs[lo:hi])
                        + '], "gold_forced": ' + ("true" if forced[t] else "false") + "}")
        parts += [", ".join(sets), "]}"]
        return "".join(parts)
