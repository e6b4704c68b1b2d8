#!/usr/bin/env python3
"""Builds a deterministic ~2 MB mixed UTF-8 text for the tokenizer equality test.

Why this exists: the Swift BPE tokenizer and the Hugging Face reference (hf_tokenize.py) must
give the same ids on text that exercises every branch of the pre-tokenizer: source code,
English prose, Markdown with non-ASCII punctuation, numbers of many forms, whitespace runs, and
letters, marks, digits and emoji of many scripts. Only files present on any Debian machine with
this project's build dependencies are read, plus the repository itself:

  1. C headers: /usr/include/zstd.h, lz4.h, sqlite3.h (libzstd-dev, liblz4-dev,
     libsqlite3-dev);
  2. /usr/share/common-licenses/* (base-files) except symlinks (GPL -> GPL-3, ...);
  3. the repository's Sources/**/*.swift, schema/*.md, docs/*.md;
  4. a generated section (numbers, whitespace runs, several scripts, emoji, combining marks)
     drawn with a fixed-seed splitmix64 generator of our own, so it does not depend on the
     Python version.

Files are taken whole, in sorted path order (byte-wise on the POSIX path), each after a header
line `==== <path> ====`; a missing file or one that is not valid UTF-8 is skipped and reported.
The output must be at least 1,000,000 bytes or the script exits 1. Same inputs (same files,
same --seed) => byte-identical output. The sha256 and size are printed on stdout, the list of
sources (bytes, sha256) on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

MIN_BYTES = 1_000_000
DEFAULT_SEED = 0x5EED_2024

SYSTEM_HEADERS = ["/usr/include/zstd.h", "/usr/include/lz4.h", "/usr/include/sqlite3.h"]
LICENSE_DIR = "/usr/share/common-licenses"


class SplitMix64:
    """Tiny deterministic generator (splitmix64), independent of Python's `random`."""

    MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self.MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """Uniform-enough integer in [0, n) (n small; the modulo bias is irrelevant here)."""
        if n <= 0:
            raise ValueError("below(0)")
        return self.next() % n

    def between(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def pick(self, items: list[str]) -> str:
        return items[self.below(len(items))]


# Code point ranges (inclusive) that have been fully assigned for many Unicode versions, so
# that every Unicode table classifies them the same way.
SCRIPTS: dict[str, list[tuple[int, int]]] = {
    "latin-accented": [(0x00C0, 0x00D6), (0x00D8, 0x00F6), (0x00F8, 0x017F)],
    "greek": [(0x0391, 0x03A1), (0x03A3, 0x03A9), (0x03B1, 0x03C9)],
    "cyrillic": [(0x0410, 0x044F)],
    "hebrew": [(0x05D0, 0x05EA)],
    "arabic": [(0x0621, 0x063A), (0x0641, 0x064A)],
    "devanagari": [(0x0905, 0x0939)],
    "thai": [(0x0E01, 0x0E2E)],
    "hiragana": [(0x3041, 0x3096)],
    "katakana": [(0x30A1, 0x30FA)],
    "cjk": [(0x4E00, 0x9FA5)],
    "hangul": [(0xAC00, 0xD7A3)],
}
# Marks that follow a letter: combining diacritics (Mn), Devanagari and Thai vowel signs.
COMBINING = [(0x0300, 0x036F)]
DEVANAGARI_SIGNS = [(0x093E, 0x094C)]
EMOJI = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x2600, 0x26FF)]
EMOJI_SEQUENCES = [
    "\U0001F469\u200D\U0001F4BB",  # woman technologist (ZWJ)
    "\U0001F468\u200D\U0001F469\u200D\U0001F467",  # family (ZWJ)
    "\U0001F44D\U0001F3FD",  # thumbs up, skin tone
    "\U0001F1EB\U0001F1F7",  # flag FR (regional indicators)
    "1\uFE0F\u20E3",  # keycap one
    "\u2764\uFE0F",  # heart + VS16
    "\U0001F3F3\uFE0F\u200D\U0001F308",  # rainbow flag
]
# Decimal digits (Nd) of several scripts: first code point of each 0..9 run.
DIGIT_ZEROS = [0x0030, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0xFF10, 0x1D7CE]
# Other numeric characters (No, Nl): superscripts, subscripts, fractions, Roman, circled.
OTHER_NUMERIC = list("¹²³⁴⁵⁰₀₁₂₃½¼¾⅓⅔⅛ⅠⅡⅢⅣⅤⅫⅰⅱⅲ①②③⑩⑳")
WHITESPACE_COMMON = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n",
                     " \n", "\t\n", " \r\n", "\n ", "\n    ", "\n\t", "\r"]
WHITESPACE_RARE = ["\u00A0", "\u2003", "\u3000", "\u2009", "\x0b", "\x0c", "\u0085", "\u2028",
                   "\u2029", "\u202F", "\u1680"]
PUNCT = [".", ",", ";", ":", "!", "?", "…", "—", "–", "-", "(", ")", "[", "]", "«", "»",
         "„", "“", "”", "‘", "’", "'", "\"", "。", "、", "،", "؟", "·", "/", "\\", "@", "#",
         "%", "&", "*", "+", "=", "<", ">", "≤", "≥", "→", "|", "~", "^", "`", "$", "€", "£"]
ENGLISH = ["the", "packet", "router", "is", "was", "TCP", "socket", "don't", "it's", "we'll",
           "I'm", "you're", "they've", "she'd", "IT'S", "WE'LL", "Don'T", "it’s", "O'Neil",
           "rock'n'roll", "naïve", "café", "coöperate", "résumé", "Zürich", "São", "Łódź",
           "HTTP/2", "IPv6", "x86_64", "utf-8", "C++", "e.g.", "i.e.", "U.S.A.", "camelCase",
           "snake_case", "kebab-case", "SCREAMING_CASE", "__init__", "--flag", "a", "I"]


def _chars(rng: SplitMix64, ranges: list[tuple[int, int]], n: int) -> str:
    total = sum(hi - lo + 1 for lo, hi in ranges)
    out = []
    for _ in range(n):
        k = rng.below(total)
        for lo, hi in ranges:
            if k <= hi - lo:
                out.append(chr(lo + k))
                break
            k -= hi - lo + 1
    return "".join(out)


def _word(rng: SplitMix64, script: str) -> str:
    n = rng.between(1, 9)
    w = _chars(rng, SCRIPTS[script], n)
    if script in ("latin-accented", "greek", "cyrillic") and rng.below(4) == 0:
        # letter + 1..3 combining marks inside the word
        i = rng.between(1, len(w))
        w = w[:i] + _chars(rng, COMBINING, rng.between(1, 3)) + w[i:]
    if script == "devanagari" and rng.below(2) == 0:
        w = w + _chars(rng, DEVANAGARI_SIGNS, 1)
    return w


def _digits(rng: SplitMix64, zero: int, n: int) -> str:
    return "".join(chr(zero + rng.below(10)) for _ in range(n))


def _number(rng: SplitMix64) -> str:
    kind = rng.below(24)

    def d(n: int) -> str:
        return _digits(rng, 0x30, n)

    if kind == 0:
        return d(rng.between(1, 12))
    if kind == 1:
        return "-" + d(rng.between(1, 6))
    if kind == 2:
        return f"{d(rng.between(1, 4))}.{d(rng.between(1, 8))}"
    if kind == 3:
        return rng.pick(["1e-5", "6.022e23", "1E+10", "-2.5e-3", "3.0E8", "1e5", ".5", "5.",
                         "0.001", "1.0e-05", "9.999999747378752e-06", "1_000_000", "0.1f"])
    if kind == 4:
        return "0x" + "".join(rng.pick(list("0123456789abcdefABCDEF")) for _ in
                              range(rng.between(1, 16)))
    if kind == 5:
        return rng.pick(["0o755", "0b1011_0001", "0XFF", "#ff8800", "\\x1b", "U+1F600"])
    if kind == 6:
        return f"{rng.between(1970, 2099)}-{rng.between(1, 12):02d}-{rng.between(1, 28):02d}"
    if kind == 7:
        return (f"{rng.between(1970, 2099)}-{rng.between(1, 12):02d}-{rng.between(1, 28):02d}T"
                f"{rng.between(0, 23):02d}:{rng.between(0, 59):02d}:{rng.between(0, 59):02d}"
                + rng.pick(["Z", "+02:00", ".123Z", "-0800"]))
    if kind == 8:
        return f"{rng.between(1, 28)}/{rng.between(1, 12)}/{rng.between(0, 99):02d}"
    if kind == 9:
        return ",".join([str(rng.between(1, 999))] + [d(3) for _ in range(rng.between(1, 3))])
    if kind == 10:
        return ".".join(str(rng.below(256)) for _ in range(4)) + rng.pick(["", ":8080", "/24"])
    if kind == 11:
        return f"v{rng.below(20)}.{rng.below(100)}.{rng.below(1000)}" + rng.pick(
            ["", "-rc1", "+build.7", "-beta.2"])
    if kind == 12:
        return rng.pick(["$", "€", "£", "¥", ""]) + f"{rng.between(0, 99999):,}.{d(2)}"
    if kind == 13:
        return d(rng.between(1, 3)) + rng.pick(["%", "ms", "µs", "GB", "MiB", "x", "px", "°C",
                                                 "st", "nd", "rd", "th", "k", "s"])
    if kind == 14:
        return rng.pick(["fe80::1", "2001:db8::ff00:42:8329", "::1", "10:20:30:40:50:60"])
    if kind == 15:
        return f"+{rng.between(1, 99)} {d(3)} {d(3)} {d(4)}"
    if kind in (16, 17, 18):
        zero = DIGIT_ZEROS[rng.below(len(DIGIT_ZEROS))]
        return _digits(rng, zero, rng.between(1, 8))
    if kind == 19:  # digits of two scripts run together
        a, b = DIGIT_ZEROS[rng.below(len(DIGIT_ZEROS))], DIGIT_ZEROS[rng.below(len(DIGIT_ZEROS))]
        return _digits(rng, a, rng.between(1, 4)) + _digits(rng, b, rng.between(1, 4))
    if kind == 20:
        return "".join(rng.pick(OTHER_NUMERIC) for _ in range(rng.between(1, 3)))
    if kind == 21:
        return "x" + rng.pick(OTHER_NUMERIC) + rng.pick(["", " + y²", "₁₀"])
    if kind == 22:  # letters and digits glued
        return rng.pick(["abc123def", "H2O", "mp3", "4K", "3D", "i18n", "sha256", "x2",
                         "Ⅻo'clock", "١٢٣abc", "ab٣cd", "１２３ｘ"])
    return d(rng.between(20, 60))  # a long digit run


def _whitespace(rng: SplitMix64) -> str:
    if rng.below(10) == 0:
        return rng.pick(WHITESPACE_RARE) + rng.pick(["", " ", "\n"])
    return rng.pick(WHITESPACE_COMMON)


def generated_section(seed: int, target_bytes: int = 240_000) -> str:
    rng = SplitMix64(seed)
    scripts = sorted(SCRIPTS)
    parts: list[str] = []
    size = 0
    line = 0
    while size < target_bytes:
        line += 1
        mode = rng.below(6)
        items: list[str] = []
        n = rng.between(3, 16)
        for _ in range(n):
            r = rng.below(20)
            if mode == 0 or r < 3:  # numbers
                items.append(_number(rng))
            elif mode == 1 or r < 7:  # one script per phrase
                items.append(_word(rng, scripts[line % len(scripts)]))
            elif r < 9:
                items.append(_word(rng, rng.pick(scripts)))
            elif r < 12:
                items.append(rng.pick(ENGLISH))
            elif r < 14:
                items.append(rng.pick(PUNCT) * rng.between(1, 3))
            elif r < 16:
                if rng.below(2):
                    items.append(rng.pick(EMOJI_SEQUENCES))
                else:
                    items.append(_chars(rng, EMOJI, rng.between(1, 3)))
            else:
                # glued: word+punct+number without spaces
                items.append(rng.pick(ENGLISH) + rng.pick(PUNCT) + _number(rng))
        seps = []
        for _ in range(n):
            if mode == 2 or rng.below(4) == 0:
                seps.append(_whitespace(rng))
            else:
                seps.append(" ")
        text = "".join(i + s for i, s in zip(items, seps))
        end = rng.pick(["\n", "\n", "\n", "\r\n", "\n\n", "  \n", "\t\n", "\n\n\n"])
        text = text.rstrip(" ") + end if mode != 2 else text + end
        parts.append(text)
        size += len(text.encode("utf-8"))
    return "".join(parts)


def _sorted_files(root: Path, pattern: str) -> list[Path]:
    files = [p for p in root.glob(pattern) if p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix().encode("utf-8"))


def collect_sources(repo: Path) -> list[tuple[str, Path]]:
    """(label, path) in output order."""
    out: list[tuple[str, Path]] = [(h, Path(h)) for h in SYSTEM_HEADERS]
    lic = Path(LICENSE_DIR)
    seen: set[Path] = set()
    if lic.is_dir():
        for p in sorted(lic.iterdir(), key=lambda p: p.name.encode("utf-8")):
            real = p.resolve()
            if p.is_symlink() or real in seen or not real.is_file():
                continue
            seen.add(real)
            out.append((p.as_posix(), p))
    for pattern in ("Sources/**/*.swift", "schema/*.md", "docs/*.md"):
        for p in _sorted_files(repo, pattern):
            out.append((p.relative_to(repo).as_posix(), p))
    return out


def build(repo: Path, seed: int, log: list[str]) -> bytes:
    chunks: list[bytes] = []
    for label, path in collect_sources(repo):
        try:
            raw = path.read_bytes()
        except OSError as e:
            log.append(f"skipped {label}: {e.strerror or e}")
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            log.append(f"skipped {label}: not valid UTF-8 at byte {e.start}")
            continue
        log.append(f"{len(raw):>9} {hashlib.sha256(raw).hexdigest()} {label}")
        chunks.append(f"==== {label} ====\n".encode("utf-8"))
        chunks.append(raw)
        chunks.append(b"\n\n")
    gen = generated_section(seed).encode("utf-8")
    log.append(f"{len(gen):>9} {hashlib.sha256(gen).hexdigest()} generated (seed {seed:#x})")
    chunks.append(f"==== generated (seed {seed:#x}) ====\n".encode("utf-8"))
    chunks.append(gen)
    data = b"".join(chunks)
    data.decode("utf-8")  # the whole output is valid UTF-8 by construction
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the deterministic mixed UTF-8 text "
                                            "(see the module docstring).")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[2]),
                   help="repository root (default: two levels above this script)")
    p.add_argument("--seed", type=lambda s: int(s, 0), default=DEFAULT_SEED,
                   help=f"seed of the generated section (default {DEFAULT_SEED:#x})")
    args = p.parse_args(argv)
    log: list[str] = []
    data = build(Path(args.repo), args.seed, log)
    for line in log:
        print(line, file=sys.stderr)
    if len(data) < MIN_BYTES:
        print(f"error: only {len(data)} bytes (< {MIN_BYTES}); sources missing?",
              file=sys.stderr)
        return 1
    Path(args.out).write_bytes(data)
    print(f"{hashlib.sha256(data).hexdigest()}  {len(data)} bytes  {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
