#!/usr/bin/env python3
"""Build the project's two text corpora from Debian 12 packages.

* general English: the World English Bible (sword-text-web, read with diatheke), the
  King James Version (bible-kjv, read with the `bible` program), and the Linux kernel
  documentation outside networking (general technical prose);
* communication technology: the Linux kernel networking docs, the BIND 9 manual, the
  Wireshark user guide, the networking man7 pages and the networking entries of FOLDOC.

Why Debian packages: every machine of the project reaches Debian's archive and nothing else,
so the corpora are reproducible anywhere the project builds. Same package versions give
byte-identical outputs (sorted inputs, no timestamps, NFC text); manifest.json records the
versions and the sha256 of every output so a later run can reuse or verify them.

Usage: scripts/corpora.py [--out DIR] [--force | --check]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# A manifest entry: JSON-ready values.
Json = dict[str, Any]
Log = Callable[[str], None]

# Bump when the output format changes in a way the script hash would not show.
FORMAT_VERSION = 1
# Split: each source's paragraphs are grouped, in order, into consecutive chunks of at least
# CHUNK_BYTES (never cutting a paragraph); chunk i goes to held-out when i % HELDOUT_EVERY ==
# HELDOUT_OFFSET, else to train. The offset sits mid-cycle so that a source of 11+ chunks
# still contributes one held-out chunk.
CHUNK_BYTES = 16 * 1024
HELDOUT_EVERY = 20
HELDOUT_OFFSET = 10
SPLIT_RULE = (f"per source, paragraphs in source order grouped into consecutive chunks of >= {CHUNK_BYTES} "
              f"UTF-8 bytes (a paragraph is never cut); chunk i (0-based) goes to held-out when "
              f"i % {HELDOUT_EVERY} == {HELDOUT_OFFSET}, otherwise to train; sources are concatenated "
              f"in manifest order")
OUTPUTS = ("general.train.txt", "general.heldout.txt", "domain.train.txt", "domain.heldout.txt")
MIN_DOMAIN_SOURCES = 3


class CorpusError(Exception):
    """A failure that names the source, the package or file, and what was expected."""


# ----------------------------------------------------------------------------------------
# Text normalisation shared by every source.

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalise_paragraph(text: str) -> str:
    """NFC, no invisible/control characters, single spaces, no blank lines inside."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def keep(paragraphs: list[str]) -> list[str]:
    """The paragraphs normalised, empty ones dropped."""
    out = []
    for p in paragraphs:
        p = normalise_paragraph(p)
        if p:
            out.append(p)
    return out


# ----------------------------------------------------------------------------------------
# Running tools.

def run(cmd: list[str], source: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    full_env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, env=full_env, check=False)
    except FileNotFoundError as e:
        raise CorpusError(f"{source}: program {cmd[0]!r} not found ({e})") from e
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise CorpusError(f"{source}: `{' '.join(cmd)}` exited with {proc.returncode}: {err}")
    try:
        return proc.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{source}: `{' '.join(cmd)}` printed invalid UTF-8 at byte {e.start}") from e


def read_text(path: Path, source: str) -> str:
    try:
        data = gzip.open(path).read() if path.suffix in (".gz", ".dz") else path.read_bytes()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise CorpusError(f"{source}: cannot read {path} as UTF-8 text: {e}") from e


def natural_key(path: Path) -> list[int | str]:
    """Sort key that orders digit runs by value: "page2" before "page10"."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def list_files(root: Path, pattern: str, source: str, exclude: frozenset[str] = frozenset()) -> list[Path]:
    if not root.is_dir():
        raise CorpusError(f"{source}: directory {root} does not exist (is the package installed?)")
    files = sorted((p for p in root.rglob(pattern) if p.is_file() and p.name not in exclude), key=natural_key)
    if not files:
        raise CorpusError(f"{source}: no files matching {pattern!r} under {root}")
    return files


# ----------------------------------------------------------------------------------------
# General English: the World English Bible through diatheke.

WEB_MODULE = "engWEB2015eb"
_WEB_REF = re.compile(r"^(?P<pre>.*?)(?P<book>[1-4]? ?[A-Z][A-Za-z ()]*?) (?P<ch>\d+):(?P<v>\d+): (?P<body>.*)$")
_TAG = re.compile(r"<[^>]*>")


def osis_inline_to_text(fragment: str) -> str:
    """OSIS markup of a verse (or part of one) → its text, with the spaces the module lost restored."""
    # Adjacent word elements with nothing between them are separate words that the module
    # lost the space for ("God</w><w>created"); `-f plain` prints them glued together.
    fragment = re.sub(r"</w>(?=<w[ >])", "</w> ", fragment)
    fragment = re.sub(r"<(?:l|lb|lg|item|list)\b[^>]*>|</(?:item|list)>", " ", fragment)
    text = html.unescape(_TAG.sub("", fragment))
    # The same defect where the module has no word elements: punctuation glued to the next
    # word ("conceived,and", "sacrifice.Striking") and a word glued to a name ("toMarisa").
    text = re.sub(r"(?<=[a-z])([,;]|[.:?!](?=[A-Z]))(?=[A-Za-z])", r"\1 ", text)
    return re.sub(r"\b([a-z]{2,})(?=[A-Z][a-z])", r"\1 ", text)


def web_paragraphs(out: str, source: str = "web") -> tuple[list[str], int]:
    """`diatheke -f internal` output → (paragraphs, not yet normalised; number of verses)."""
    lines = out.split("\n")
    paragraphs: list[str] = []
    current: list[str] = []
    last_pre: str | None = None
    last_chapter: tuple[str, str] | None = None
    verses = 0

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for line in lines:
        if not line.strip() or line.strip() == f"({WEB_MODULE})":
            continue
        m = _WEB_REF.match(line)
        if not m or "<" in m.group("book") or ">" in m.group("book"):
            raise CorpusError(f"{source}: unexpected diatheke line (no verse reference): {line[:120]!r}")
        verses += 1
        pre, body = m.group("pre"), m.group("body")
        chapter = (m.group("book"), m.group("ch"))
        if chapter != last_chapter:
            flush()
            last_chapter = chapter
        # diatheke repeats the last pre-verse heading (with the same milestone ids) before every
        # following verse of the run; a heading is real only where the pre-verse markup changes.
        if pre != last_pre:
            last_pre = pre
            for title in re.findall(r"<title[^>]*>(.*?)</title>", pre):
                flush()
                paragraphs.append(osis_inline_to_text(title))
        glossary = re.search(r'<div [^>]*type="glossary"', body)
        if glossary:
            body = body[:glossary.start()]  # the module's word list after Revelation 22:21
        # Paragraph markers: close the paragraph at an end marker, open a new one at a start.
        for piece in re.split(r'(<(?:div|lb)\b[^>]*type="x-p"[^>]*/>)', body):
            if re.fullmatch(r'<(?:div|lb)\b[^>]*type="x-p"[^>]*/>', piece):
                if current:
                    flush()
                continue
            text = osis_inline_to_text(piece).strip()
            if text:
                current.append(text)
        if glossary:
            break
    flush()
    return paragraphs, verses


def extract_web() -> tuple[list[str], list[Json]]:
    source = "web"
    cmd = ["diatheke", "-b", WEB_MODULE, "-f", "internal", "-k", "Gen 1:1-Rev 22:21"]
    paragraphs, verses = web_paragraphs(run(cmd, source), source)
    if verses < 31000:
        raise CorpusError(f"{source}: diatheke printed only {verses} verses for Gen 1:1-Rev 22:21 (expected > 31000)")
    return keep(paragraphs), [{"command": " ".join(cmd), "verses": verses}]


# KJV through the `bible` program of bible-kjv (data in bible-kjv-text).
def kjv_paragraphs(out: str, source: str = "kjv") -> tuple[list[str], int]:
    """`bible` output → (one paragraph per chapter, not yet normalised; number of verses)."""
    paragraphs: list[str] = []
    current: list[str] = []
    verses = 0
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = re.match(r"^ +(\d+) (.*)$", line)
        if m:
            current.append(m.group(2))
            verses += 1
        elif re.match(r"^[1-4]?\s?[A-Z][A-Za-z ]* \d+$", line):  # chapter header "Genesis 1"
            if current:
                paragraphs.append(" ".join(current))
                current = []
        else:
            raise CorpusError(f"{source}: unexpected line from `bible`: {line[:120]!r}")
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs, verses


def extract_kjv() -> tuple[list[str], list[Json]]:
    source = "kjv"
    cmd = ["bible", "-l100000", "Gen1:1-Rev22:21"]
    paragraphs, verses = kjv_paragraphs(run(cmd, source, env={"COLUMNS": "100000"}), source)
    if verses < 31000:
        raise CorpusError(f"{source}: `bible` printed only {verses} verses (expected 31102)")
    return keep(paragraphs), [{"command": " ".join(cmd), "verses": verses}]


# ----------------------------------------------------------------------------------------
# Domain: Linux kernel networking docs (reStructuredText sources).

LINUX_DOC = Path("/usr/share/doc/linux-doc-6.1/html/_sources/networking")
_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_RST_TABLE_BORDER = re.compile(r"^\s*(\+[-=+]+\+|[=\- ]*={2,}[= ]*|[- ]*-{3,} +-{3,}[- ]*)\s*$")
_RST_KEEP_DIRECTIVES = {"note", "warning", "important", "tip", "hint", "caution", "attention",
                        "danger", "error", "admonition", "seealso", "topic", "sidebar", "rubric",
                        "title", "only"}


def rst_inline(text: str) -> str:
    text = re.sub(r":[A-Za-z0-9:+._-]+:`([^`<]*?)\s*<[^`>]*>`", r"\1", text)  # :ref:`text <target>`
    text = re.sub(r":[A-Za-z0-9:+._-]+:`([^`]*)`", r"\1", text)             # :c:func:`name`
    text = re.sub(r"`([^`<]*?)\s*<[^`>]*>`__?", r"\1", text)                  # `text <url>`_
    text = re.sub(r"``([^`]+)``", r"\1", text)                                # ``literal``
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)                            # `ref`_ / `interpreted`
    text = re.sub(r"\[(?:#[\w-]*|\*|\d+)\]_", "", text)                       # footnote references
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    text = re.sub(r"(?<=\w)_(?=[\s.,;:)]|$)", "", text)                       # word_ references
    text = re.sub(r"\|([\w -]+)\|", r"\1", text)                             # |substitution|
    return text


def rst_to_paragraphs(src: str) -> list[str]:
    """reStructuredText → paragraphs. Rules (see scripts/README.md): comments and directives
    other than admonitions are dropped with their indented bodies; literal blocks (after `::`)
    and tables' border lines are dropped; section adornments are dropped and the title kept
    as its own paragraph; inline markup keeps its text; lines of one block are joined with
    spaces except that a list item starts a new line."""
    lines = src.expandtabs(8).split("\n")
    out: list[str] = []
    block: list[str] = []
    skip_indent: int | None = None  # dropping an indented body deeper than this indent
    literal_next = False

    def indent_of(s: str) -> int:
        return len(s) - len(s.lstrip(" "))

    def flush() -> None:
        nonlocal literal_next
        if block:
            text = "\n".join(block).rstrip()
            if text.endswith("::"):
                # "Text::" reads "Text:"; "Text ::" and a lone "::" only announce the literal block.
                literal_next = True
                text = text[:-2].rstrip() if re.search(r"(^|\s)::$", text) else text[:-1]
            out.append(text)
            block.clear()

    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.rstrip()
        i += 1
        if skip_indent is not None:
            if not line or indent_of(line) > skip_indent:
                continue
            skip_indent = None
        if not line:
            flush()
            continue
        ind = indent_of(line)
        stripped = line.strip()
        if literal_next:
            # The literal block is the indented material after a paragraph ending in "::".
            if ind > 0 and not block:
                skip_indent = ind - 1
                continue
            literal_next = False
        m = re.match(r"^\.\.\s+([\w:-]+)::(.*)$", stripped)
        if m:
            flush()
            name = m.group(1).split(":")[-1].lower()
            if name in _RST_KEEP_DIRECTIVES:
                arg = m.group(2).strip()
                if arg and name in ("admonition", "topic", "sidebar", "rubric", "title"):
                    out.append(arg)
                # Body stays; skip only its option lines (":class: ...").
                while i < len(lines) and re.match(r"^\s+:[\w-]+:", lines[i]):
                    i += 1
            else:
                skip_indent = ind
            continue
        if stripped.startswith(".."):  # comment, target (.. _x:), footnote, substitution def
            flush()
            skip_indent = ind
            continue
        if _RST_ADORN.match(stripped) and len(stripped) >= 3:
            flush()  # an overline, transition or stray adornment
            continue
        if _RST_TABLE_BORDER.match(line):
            continue
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 2:
            stripped = " ".join(c.strip() for c in stripped.strip("|").split("|") if c.strip())
        # Section title followed by an underline: emit the title alone.
        if i < len(lines) and _RST_ADORN.match(lines[i].strip()) and len(lines[i].strip()) >= max(3, len(stripped) - 2) \
                and not re.match(r"^([=\-`:'\"~^_*+#<>.])\1+$", stripped):
            flush()
            out.append(rst_inline(stripped))
            i += 1
            continue
        bullet = re.match(r"^([-*+•]|#\.|\(?\d+[.)]|\(?[a-z][.)])\s+(.*)$", stripped)
        field_ = re.match(r"^:([\w -]+):\s*(.*)$", stripped)
        if field_:
            stripped = f"{field_.group(1)}: {field_.group(2)}".rstrip()
            block.append(rst_inline(stripped)); continue
        if bullet and bullet.group(1) in ("-", "*", "+", "•"):
            block.append(rst_inline(bullet.group(2)))
            continue
        if bullet:
            block.append(rst_inline(stripped))
            continue
        text = rst_inline(stripped)
        if block and not block[-1].endswith(":"):
            block[-1] = block[-1] + " " + text
        else:
            block.append(text)
    flush()
    return out


def extract_linux_doc() -> tuple[list[str], list[Json]]:
    return rst_sources("linux-doc", list_files(LINUX_DOC, "*.rst.txt", "linux-doc"))


# General technical English: kernel documentation outside networking, so that the base model has
# read technical prose (as every general-purpose LLM has) without having read the domain.
LINUX_DOC_ROOT = Path("/usr/share/doc/linux-doc-6.1/html/_sources")
LINUX_DOC_GENERAL_DIRS = ("admin-guide", "process", "filesystems", "core-api")


def general_doc_path(relative: str) -> bool:
    """Whether a kernel documentation file (its path below LINUX_DOC_ROOT, "/admin-guide/...")
    is general prose rather than networking."""
    return not re.search(r"net|socket|tcp|ip[v-]|wireless|bluetooth|can\b", relative, re.I)


def extract_linux_doc_general() -> tuple[list[str], list[Json]]:
    source = "linux-doc-general"
    files: list[Path] = []
    for d in LINUX_DOC_GENERAL_DIRS:
        files += [f for f in list_files(LINUX_DOC_ROOT / d, "*.rst.txt", source)
                  if general_doc_path(f.as_posix()[len(str(LINUX_DOC_ROOT)):])]
    return rst_sources(source, files)


def rst_file_paragraphs(src: str) -> list[str]:
    """One reStructuredText file → its normalised paragraphs, punctuation-only ones dropped."""
    # index pages are only tables of contents; they leave nothing but their title
    return [p for p in keep(rst_to_paragraphs(src)) if not re.fullmatch(r"[\W_]*", p)]


def rst_sources(source: str, files: list[Path]) -> tuple[list[str], list[Json]]:
    paragraphs: list[str] = []
    inputs: list[Json] = []
    for f in files:
        paragraphs.extend(rst_file_paragraphs(read_text(f, source)))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# HTML → text (BIND 9 manual, Wireshark user guide) with the standard library's parser.

_BLOCK_TAGS = {"p", "div", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd",
               "pre", "blockquote", "tr", "table", "ul", "ol", "dl", "br", "hr", "figure", "figcaption",
               "caption", "title"}
# <pre> holds configuration files, command transcripts and diagrams: the corpora are prose.
_SKIP_TAGS = {"script", "style", "head", "noscript", "svg", "button", "form", "nav", "footer", "pre"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}


class HTMLText(html.parser.HTMLParser):
    """Collects the visible text of the content part of a page as paragraphs: block
    elements end paragraphs, table cells are separated by " | ", <pre> blocks are dropped."""

    def __init__(self, root: Callable[[str, dict[str, str]], bool] | None, skip_classes: frozenset[str]):
        super().__init__(convert_charrefs=True)
        self.root = root
        self.skip_classes = skip_classes
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, inside root)
        self.paragraphs: list[str] = []
        self.buf: list[str] = []
        self.pre = 0

    def _state(self) -> tuple[bool, bool]:
        return (self.stack[-1][1], self.stack[-1][2]) if self.stack else (False, self.root is None)

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf.clear()
        if self.pre:
            text = "\n".join(line.rstrip() for line in text.split("\n"))
        else:
            text = re.sub(r"\s+", " ", text)
        text = text.strip()
        if text:
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        skipping, inside = self._state()
        classes = set(a.get("class", "").split())
        if tag in _SKIP_TAGS or classes & self.skip_classes or a.get("role") in ("navigation", "search"):
            skipping = True
        if not inside and self.root and self.root(tag, a):
            inside = True
        if tag in _BLOCK_TAGS and inside and not skipping:
            self._flush()
        if tag in ("td", "th") and inside and not skipping and self.buf and "".join(self.buf).strip():
            self.buf.append(" | ")
        if tag == "pre" and inside and not skipping:
            self.pre += 1
        if tag not in _VOID:
            self.stack.append((tag, skipping, inside))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # Pop to the matching open tag (HTML in the wild is not always well nested).
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                _, skipping, inside = self.stack[k]
                del self.stack[k:]
                if tag in _BLOCK_TAGS and inside and not skipping:
                    self._flush()
                if tag == "pre" and inside and not skipping and self.pre:
                    self.pre -= 1
                return

    def handle_data(self, data: str) -> None:
        skipping, inside = self._state()
        if inside and not skipping:
            self.buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_paragraphs(text: str, root: Callable[[str, dict[str, str]], bool] | None,
                       skip_classes: frozenset[str]) -> list[str]:
    """An HTML page → the paragraphs of its content part (see HTMLText), not yet normalised."""
    parser = HTMLText(root, skip_classes)
    parser.feed(text)
    parser.close()
    return parser.paragraphs


def html_paragraphs(path: Path, source: str, root: Callable[[str, dict[str, str]], bool] | None,
                    skip_classes: frozenset[str]) -> list[str]:
    return html_to_paragraphs(read_text(path, source), root, skip_classes)


BIND_DOC = Path("/usr/share/doc/bind9-doc/arm")


def bind_clean(paragraph: str) -> str:
    """Drops the ¶ of headerlinks and "[GL #4586]", the release notes' issue-tracker references."""
    return re.sub(r"\s*\[GL [#!]\d+\]", "", paragraph.replace("\u00b6", ""))


def extract_bind() -> tuple[list[str], list[Json]]:
    source = "bind9-doc"
    files = list_files(BIND_DOC, "*.html", source, exclude=frozenset({"genindex.html", "search.html", "index.html"}))
    files = [f for f in files if "_static" not in f.parts]
    paragraphs: list[str] = []
    inputs: list[Json] = []
    for f in files:
        paras = html_paragraphs(f, source, lambda t, a: a.get("itemprop") == "articleBody",
                                frozenset({"headerlink", "wy-nav-side", "rst-footer-buttons", "toctree-wrapper"}))
        if not paras:
            raise CorpusError(f"{source}: {f} has no text inside itemprop=articleBody (page layout changed?)")
        paragraphs.extend(keep([bind_clean(p) for p in paras]))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
    return paragraphs, inputs


WIRESHARK_DOC = Path("/usr/share/doc/wireshark/wsug_html_chunked")


def extract_wireshark() -> tuple[list[str], list[Json]]:
    source = "wireshark-doc"
    # index.html is the table of contents; AppGPL.html is the text of the GPL, not the guide.
    files = list_files(WIRESHARK_DOC, "*.html", source, exclude=frozenset({"index.html", "AppGPL.html"}))
    paragraphs: list[str] = []
    inputs: list[Json] = []
    for f in files:
        paras = html_paragraphs(f, source, lambda t, a: t == "body",
                                frozenset({"navheader", "navfooter", "toc", "list-of-figures", "list-of-tables"}))
        paragraphs.extend(keep(paras))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
    if not paragraphs:
        raise CorpusError(f"{source}: no text extracted from {WIRESHARK_DOC}")
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# Networking man7 pages from `manpages`, rendered with groff.

MAN7 = Path("/usr/share/man/man7")
NET_MAN7 = ["address_families", "arp", "ddp", "hostname", "icmp", "ip", "ipv6", "netdevice", "netlink",
            "network_namespaces", "packet", "raw", "rtnetlink", "sock_diag", "socket", "tcp", "udp",
            "udplite", "unix", "vsock", "x25"]


def man_to_paragraphs(rendered: str) -> list[str]:
    """groff output (no hyphenation, very long lines, so no line is wrapped) → paragraphs:
    header and footer lines dropped, blank-line separated blocks, indentation removed,
    the lines of a block (tag line + text, code lines) kept as lines; table rules dropped
    and cell borders turned into " | "; the ⟨URL⟩ printed after a link's text dropped."""
    lines = rendered.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 3:
        return []
    lines = lines[1:-1]  # "tcp(7)  ...  tcp(7)" header, "Linux man-pages 6.03 ... tcp(7)" footer
    out: list[str] = []
    block: list[str] = []
    for line in lines + [""]:
        if line.strip() and re.fullmatch(r"[\s\u2500-\u257f]+", line):
            continue  # a tbl rule line (drawn across the whole, very long, line)
        line = re.sub(r"\s*\u27e8[^\u27e9]*\u27e9", "", line)  # ⟨URL⟩ after a link text
        line = re.sub(r"\s*[\u2502\u2503\u2551]\s*", " | ", line).strip(" |")
        if line.strip():
            block.append(line.strip())
        elif block:
            out.append("\n".join(block))
            block = []
    return out


def extract_man7() -> tuple[list[str], list[Json]]:
    source = "manpages"
    paragraphs: list[str] = []
    inputs: list[Json] = []
    found = 0
    for name in NET_MAN7:
        f = MAN7 / f"{name}.7.gz"
        if not f.exists():
            inputs.append({"path": str(f), "missing": True})
            continue
        raw = gzip.open(f).read()
        if raw.lstrip().startswith(b".so "):
            inputs.append({"path": str(f), "skipped": "link to another page (.so)"})
            continue
        rendered = run(["groff", "-k", "-t", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=20000n", "-rcR=1"],
                       f"{source} ({f.name})", stdin=raw)
        paragraphs.extend(keep(man_to_paragraphs(rendered)))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
        found += 1
    if found < 5:
        raise CorpusError(f"{source}: only {found} of the networking man7 pages exist under {MAN7}")
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# FOLDOC networking entries (dictd format: the .dict.dz is gzip-compatible).

FOLDOC_DICT = Path("/usr/share/dictd/foldoc.dict.dz")
FOLDOC_INDEX = Path("/usr/share/dictd/foldoc.index")
FOLDOC_CATEGORIES = {"networking", "communications", "protocol", "web", "messaging", "telecoms",
                     "telecommunications", "internet"}
# Networking vocabulary; words that FOLDOC also uses for software availability notes ("FTP
# from ...", "E-mail: ...", URLs) are left out so that those notes don't select an entry.
FOLDOC_TERMS = ["network", "networking", "protocol", "packet", "router", "routing", "internet", "ethernet",
                "tcp", "udp", "ip", "ip address", "dns", "lan", "wan", "modem", "bandwidth", "telecommunication",
                "telecommunications", "socket", "datagram", "bit/s", "baud", "transmission", "osi",
                "gateway", "bridge", "wireless", "frame relay", "atm", "isdn", "x.25", "ppp", "smtp",
                "telnet", "usenet", "local area network", "wide area network", "link layer", "network layer",
                "transport layer", "physical layer", "transceiver", "multiplexing", "broadband", "fibre",
                "fiber", "radio", "telephone", "switch", "circuit switching", "packet switching"]
FOLDOC_MIN_TERMS = 3
FOLDOC_RULE = (f"entry kept if its leading <category> tag is one of {sorted(FOLDOC_CATEGORIES)}, or its body "
               f"(cross-references and URLs removed first) mentions at least {FOLDOC_MIN_TERMS} distinct terms of "
               f"{FOLDOC_TERMS} (case-insensitive, whole words, optional plural s); FOLDOC's own introduction entries and dictd's 00-database entries are skipped; "
               f"the category tag, the {{cross-reference}} braces, URLs in parentheses and the closing "
               f"(date) stamp are removed; the first paragraph is prefixed by 'headword: '")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TERM_RE = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(t) for t in sorted(FOLDOC_TERMS, key=len, reverse=True))
                      + r")s?(?![\w/-])", re.IGNORECASE)


def dict_b64(s: str) -> int:
    """dictd's base-64 numbers (offsets and lengths in the .index file)."""
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def foldoc_clean(body: str) -> str:
    """Cross-reference braces and parenthesised URLs removed: {text (url)} and {text} → text."""
    body = re.sub(r"\{([^{}]*?)\s*\((?:[^(){}]*)\)\}", r"\1", body)  # {text (url)} → text
    body = re.sub(r"\{([^{}]*)\}", r"\1", body)
    body = re.sub(r"\((?:https?|ftp)://[^)\s]*\)", "", body)
    return body


def foldoc_index(index: str, where: str) -> list[tuple[int, int]]:
    """A dictd .index file → the sorted, distinct (offset, length) of its entries, dictd's
    own metadata entries left out. `where` names the file in errors."""
    entries = set()
    for n, line in enumerate(index.split("\n"), 1):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise CorpusError(f"{where}:{n}: expected 'word<TAB>offset<TAB>length', got {line[:80]!r}")
        if parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue  # dictd's own metadata entries
        entries.add((dict_b64(parts[1]), dict_b64(parts[2])))  # several headwords can share one entry
    return sorted(entries)


def foldoc_entry(text: str) -> list[str] | None:
    """One FOLDOC entry ("headword\n\tbody ...") → its paragraphs (not yet normalised), the
    first starting "headword: ", or None when the entry is not selected (see FOLDOC_RULE)."""
    head, _, body = text.partition("\n")
    body = body.strip("\n")
    # The category tag opens the body, or follows a line of aliases ("100VG-AnyLAN").
    # Multi-sense entries have one per sense, after "1. ".
    tag = re.compile(r"^(\s*(?:\d+\.\s*)?)<([a-z][a-z ,/-]*)>\s*", re.M)
    cats = {c.strip().lower() for m in tag.finditer(body) for c in m.group(2).split(",")}
    body = tag.sub(r"\1", body)
    terms = {t.lower() for t in _TERM_RE.findall(foldoc_clean(body))}
    if "introduction" in cats or not (cats & FOLDOC_CATEGORIES or len(terms) >= FOLDOC_MIN_TERMS):
        return None
    blocks = [b for b in re.split(r"\n\s*\n", body) if b.strip()]
    # the "(2018-05-22)" last-updated stamps (one per sense in multi-sense entries)
    blocks = [re.sub(r"\s*\(\d{4}-\d{2}-\d{2}\)\s*$", "", b) for b in blocks]
    blocks = [re.sub(r"\s*\n\s*", " ", foldoc_clean(b)).strip() for b in blocks]
    blocks = [b for b in blocks if b]
    if not blocks:
        return None
    blocks[0] = f"{head.strip()}: {blocks[0]}"
    return blocks


def extract_foldoc() -> tuple[list[str], list[Json]]:
    source = "dict-foldoc"
    for p in (FOLDOC_DICT, FOLDOC_INDEX):
        if not p.exists():
            raise CorpusError(f"{source}: {p} does not exist")
    try:
        data = gzip.open(FOLDOC_DICT).read()
    except (OSError, EOFError) as e:
        raise CorpusError(f"{source}: cannot decompress {FOLDOC_DICT}: {e}") from e
    entries = foldoc_index(read_text(FOLDOC_INDEX, source), f"{source}: {FOLDOC_INDEX}")
    paragraphs: list[str] = []
    kept = 0
    for off, length in entries:
        blocks = foldoc_entry(data[off:off + length].decode("utf-8", "replace"))
        if blocks is None:
            continue
        paragraphs.extend(blocks)
        kept += 1
    if kept < 100:
        raise CorpusError(f"{source}: only {kept} networking entries selected from {FOLDOC_DICT} (expected hundreds)")
    return keep(paragraphs), [{"path": str(FOLDOC_DICT), "bytes": FOLDOC_DICT.stat().st_size,
                               "entries_total": len(entries), "entries_kept": kept, "rule": FOLDOC_RULE}]


# ----------------------------------------------------------------------------------------
# Sources, packages, manifest.

@dataclass(frozen=True)
class Source:
    name: str
    corpus: str  # "general" or "domain"
    packages: tuple[str, ...]
    required: bool
    extract: Callable[[], tuple[list[str], list[Json]]]
    cleaning: str


SOURCES = [
    Source("web", "general", ("sword-text-web", "diatheke"), True, extract_web,
           "diatheke -f internal (OSIS as stored): markup stripped; verse references dropped; headings "
           "printed again before every later verse by diatheke (same pre-verse markup) dropped, real "
           "Psalm titles kept as paragraphs; OSIS x-p markers and chapters make paragraphs; the glossary "
           "after Revelation 22:21 dropped; a space restored between adjacent <w> elements, after , ; "
           "glued to a word, after . : ? ! glued to a capital, and between a lower-case word and a glued "
           "capitalised word"),
    Source("kjv", "general", ("bible-kjv", "bible-kjv-text"), False, extract_kjv,
           "`bible -l100000 Gen1:1-Rev22:21`: chapter headers and verse numbers dropped, one paragraph per chapter"),
    Source("linux-doc-general", "general", ("linux-doc-6.1",), False, extract_linux_doc_general,
           "html/_sources/{admin-guide,process,filesystems,core-api}/**/*.rst.txt whose path does not mention "
           "net, socket, tcp, ip, wireless, bluetooth or can; cleaned like linux-doc below"),
    Source("linux-doc", "domain", ("linux-doc-6.1",), False, extract_linux_doc,
           "html/_sources/networking/**/*.rst.txt in sorted order: directives other than admonitions, "
           "comments, targets and literal blocks dropped; section adornments and table borders dropped; "
           "inline roles/links/emphasis reduced to their text; block lines joined"),
    Source("bind9-doc", "domain", ("bind9-doc",), False, extract_bind,
           "arm/*.html except index/genindex/search, natural order: text inside itemprop=articleBody, "
           "headerlinks and navigation dropped; block elements end paragraphs; <pre> blocks dropped"),
    Source("wireshark-doc", "domain", ("wireshark-doc",), False, extract_wireshark,
           "wsug_html_chunked/*.html except index.html, sorted: body text without navheader/navfooter/toc; "
           "block elements end paragraphs; <pre> blocks dropped"),
    Source("manpages", "domain", ("manpages", "groff-base"), False, extract_man7,
           "networking man7 pages rendered with `groff -k -t -man -Tutf8 -P-cbou -rHY=0 -rLL=20000n` "
           "(no hyphenation, no wrapping, no overstrike); header/footer dropped; indentation removed"),
    Source("dict-foldoc", "domain", ("dict-foldoc",), False, extract_foldoc, FOLDOC_RULE),
]


def installed_version(pkg: str) -> str | None:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    status, _, version = proc.stdout.partition("\t")
    return version if status.endswith(" installed") and status.startswith("install ok") else None


def candidate_version(pkg: str) -> str | None:
    proc = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True,
                          env=dict(os.environ, LC_ALL="C"))
    m = re.search(r"^\s*Candidate:\s*(\S+)", proc.stdout, re.M)
    return m.group(1) if m and m.group(1) != "(none)" else None


def all_packages() -> list[str]:
    return sorted({p for s in SOURCES for p in s.packages})


def ensure_packages(log: Log) -> dict[str, str | None]:
    """Installs the missing packages; returns package → installed version (None: not in Debian)."""
    versions = {p: installed_version(p) for p in all_packages()}
    missing = [p for p, v in versions.items() if v is None]
    if not missing:
        return versions
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo"]
    log(f"apt-get update (missing: {' '.join(missing)})")
    proc = subprocess.run(sudo + ["apt-get", "update", "-qq"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CorpusError(f"apt-get update failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    available = [p for p in missing if candidate_version(p)]
    for p in missing:
        if p not in available:
            log(f"WARNING: package {p} is not available in this system's Debian archive (apt-cache policy: no candidate)")
    if available:
        log(f"installing: {' '.join(available)}")
        proc = subprocess.run(sudo + ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                                      "--no-install-recommends"] + available, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(f"apt-get install {' '.join(available)} failed ({proc.returncode}): "
                              f"{proc.stderr.strip()[-800:]}")
    return {p: installed_version(p) for p in all_packages()}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def script_sha256() -> str:
    return sha256_file(Path(__file__).resolve())


def split_chunks(paragraphs: list[str]) -> tuple[list[str], list[str], int]:
    """(train, held-out, number of chunks) of one source's paragraphs, by SPLIT_RULE."""
    train: list[str] = []
    held: list[str] = []
    chunk: list[str] = []
    size, index = 0, 0
    for p in paragraphs:
        chunk.append(p)
        size += len(p.encode("utf-8")) + 2
        if size >= CHUNK_BYTES:
            (held if index % HELDOUT_EVERY == HELDOUT_OFFSET else train).extend(chunk)
            chunk, size, index = [], 0, index + 1
    if chunk:
        (held if index % HELDOUT_EVERY == HELDOUT_OFFSET else train).extend(chunk)
        index += 1
    return train, held, index


def build(out_dir: Path, versions: dict[str, str | None], log: Log) -> Json:
    """Writes the four corpora and manifest.json into out_dir (which must be empty)."""
    buildable = [s for s in SOURCES if s.corpus == "domain" and all(versions.get(p) for p in s.packages)]
    if len(buildable) < MIN_DOMAIN_SOURCES:  # fail before minutes of extraction, not after
        raise CorpusError(f"only {len(buildable)} domain sources have their packages installed "
                          f"({', '.join(s.name for s in buildable) or 'none'}); at least {MIN_DOMAIN_SOURCES} are required")
    texts: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    manifest_sources: list[Json] = []
    usable = {"general": 0, "domain": 0}
    for src in SOURCES:
        entry: Json = {"name": src.name, "corpus": src.corpus, "required": src.required,
                 "packages": {p: versions.get(p) for p in src.packages}, "cleaning": src.cleaning}
        absent = [p for p in src.packages if versions.get(p) is None]
        if absent:
            entry["status"] = f"skipped: package(s) not installed/available: {', '.join(absent)}"
            log(f"WARNING: {src.name}: {entry['status']}")
            if src.required:
                raise CorpusError(f"{src.name}: required source, but package(s) {', '.join(absent)} "
                                  f"are not available in Debian here")
            manifest_sources.append(entry)
            continue
        log(f"extracting {src.name} ...")
        paragraphs, inputs = src.extract()
        if not paragraphs:
            raise CorpusError(f"{src.name}: extraction produced no text")
        train, held, chunks = split_chunks(paragraphs)
        texts[f"{src.corpus}.train.txt"].extend(train)
        texts[f"{src.corpus}.heldout.txt"].extend(held)
        usable[src.corpus] += 1
        entry.update(status="ok", inputs=inputs, paragraphs=len(paragraphs), chunks=chunks,
                     train_bytes=sum(len(p.encode()) + 2 for p in train),
                     heldout_bytes=sum(len(p.encode()) + 2 for p in held))
        manifest_sources.append(entry)
    if usable["domain"] < MIN_DOMAIN_SOURCES:
        raise CorpusError(f"only {usable['domain']} domain sources could be built; at least {MIN_DOMAIN_SOURCES} are required")
    files: Json = {}
    for name in OUTPUTS:
        data = ("\n\n".join(texts[name]) + "\n").encode("utf-8") if texts[name] else b""
        (out_dir / name).write_bytes(data)
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                       "paragraphs": len(texts[name]), "approx_words": len(data.split())}
    manifest: Json = {"format_version": FORMAT_VERSION, "script_sha256": script_sha256(),
                "packages": {p: versions.get(p) for p in all_packages()}, "split_rule": SPLIT_RULE,
                "files": files, "sources": manifest_sources}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    return manifest


def load_manifest(out_dir: Path) -> Json | None:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def reusable(out_dir: Path, manifest: Json | None) -> str | None:
    """None when the outputs can be reused, else the reason they cannot."""
    if manifest is None:
        return "no readable manifest.json"
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("script_sha256") != script_sha256():
        return "scripts/corpora.py changed since the outputs were built"
    for p, v in manifest.get("packages", {}).items():
        now = installed_version(p)
        if now != v:
            return f"package {p} is {now or 'not installed'}, outputs were built from {v or 'nothing'}"
    if set(manifest.get("packages", {})) != set(all_packages()):
        return "the package list changed"
    for name in OUTPUTS:
        f = out_dir / name
        if not f.exists():
            return f"{name} is missing"
        if sha256_file(f) != manifest["files"][name]["sha256"]:
            return f"{name} does not match its sha256 in the manifest"
    return None


def summary(manifest: Json, out_dir: Path) -> str:
    rows = [("file", "bytes", "~words", "paragraphs")]
    for name in OUTPUTS:
        f = manifest["files"][name]
        rows.append((str(out_dir / name), f"{f['bytes']:,}", f"{f['approx_words']:,}", f"{f['paragraphs']:,}"))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}" for r in rows)


def build_into_temp(parent: Path, versions: dict[str, str | None], log: Log) -> tuple[Path, Json]:
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".corpora-build-", dir=parent))
    try:
        return tmp, build(tmp, versions, log)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/corpora"), help="output directory (default runs/corpora)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--force", action="store_true", help="rebuild even when the outputs are up to date")
    mode.add_argument("--check", action="store_true",
                      help="rebuild into a temporary directory and compare sha256 with the manifest in --out")
    args = ap.parse_args(argv)
    out_dir: Path = args.out

    def log(msg: str) -> None:
        print(f"corpora: {msg}", file=sys.stderr, flush=True)

    try:
        if not args.force and not args.check:
            manifest = load_manifest(out_dir)
            reason = reusable(out_dir, manifest)
            if reason is None and manifest is not None:
                print(f"corpora: outputs in {out_dir} are up to date with the installed packages; reused them")
                print(summary(manifest, out_dir))
                return 0
            log(f"building ({reason})")
        versions = ensure_packages(log)
        if args.check:
            old = load_manifest(out_dir)
            if old is None:
                raise CorpusError(f"--check: no manifest.json in {out_dir} to compare with (build first)")
            tmp, new = build_into_temp(out_dir.parent if out_dir.parent != Path("") else Path("."), versions, log)
            shutil.rmtree(tmp, ignore_errors=True)
            bad = [n for n in OUTPUTS if old["files"].get(n, {}).get("sha256") != new["files"][n]["sha256"]]
            if old.get("packages") != new["packages"]:
                log(f"note: installed packages differ from the manifest's: {old.get('packages')} vs {new['packages']}")
            if bad:
                for n in bad:
                    log(f"MISMATCH {n}: manifest {old['files'].get(n, {}).get('sha256')} rebuilt {new['files'][n]['sha256']}")
                return 1
            print(f"corpora: --check OK, the rebuild is byte-identical to {out_dir}/manifest.json")
            print(summary(new, out_dir))
            return 0
        tmp, manifest = build_into_temp(out_dir.parent if out_dir.parent != Path("") else Path("."), versions, log)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "manifest.json").unlink(missing_ok=True)  # invalid until every file is in place
            for name in OUTPUTS + ("manifest.json",):
                os.replace(tmp / name, out_dir / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"corpora: wrote {out_dir}")
        print(summary(manifest, out_dir))
        return 0
    except CorpusError as e:
        print(f"corpora: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
