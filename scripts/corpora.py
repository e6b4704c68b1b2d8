#!/usr/bin/env python3
"""Build the project's two text corpora from Debian 12 packages.

The corpora: general English (two Bible translations and the Linux kernel documentation
outside networking) and communication technology (the kernel networking docs, the BIND 9
manual, the Wireshark user guide, the networking man7 pages and FOLDOC's networking entries).
Which packages and files, the term lists and the data of the cleaning rules are in
corpora_sources.toml beside this script; this script holds the parsers.

Why Debian packages: every machine of the project reaches Debian's archive and nothing else,
so the corpora are reproducible anywhere the project builds. Same package versions give
byte-identical outputs (sorted inputs, no timestamps, NFC text); manifest.json records the
versions and the sha256 of every output so a later run can reuse or verify them.

Usage: scripts/corpora.py [--out DIR] [--force | --check]
       scripts/corpora.py cut FILE BYTES OUT   (a slice of a corpus file, see cut_text)
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import html
import html.parser
import json
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# A manifest entry: JSON-ready values.
Json = dict[str, Any]
Log = Callable[[str], None]

# Bump when the output format changes in a way the script and data hashes would not show.
FORMAT_VERSION = 1
OUTPUTS = ("general.train.txt", "general.heldout.txt", "domain.train.txt", "domain.heldout.txt")
CORPORA = ("general", "domain")
# The sources and the data of the cleaning rules.
SOURCES_FILE = Path(__file__).resolve().with_name("corpora_sources.toml")


class CorpusError(Exception):
    """A failure that names the source, the package or file, and what was expected."""


# ----------------------------------------------------------------------------------------
# corpora_sources.toml, read into typed, checked values.

class Table:
    """A TOML table with typed access; every error names the file and the table, and
    done() refuses keys nothing asked for (a misspelt key would otherwise do nothing)."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise CorpusError(f"{where}: expected a table")
        self.raw: dict[str, object] = raw
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, kind: str, optional: bool = False) -> object:
        self.used.add(key)
        if key not in self.raw:
            if optional:
                return None
            raise CorpusError(f"{self.where}: {key} is missing ({kind})")
        return self.raw[key]

    def _bad(self, key: str, kind: str) -> CorpusError:
        return CorpusError(f"{self.where}: {key} must be {kind}, not {self.raw[key]!r}")

    def text(self, key: str) -> str:
        value = self._get(key, "a string")
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self._get(key, "a string", optional=True) is not None else None

    def texts(self, key: str, optional: bool = False) -> list[str]:
        value = self._get(key, "a list of strings", optional)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return [str(v) for v in value]

    def mapping(self, key: str, optional: bool = False) -> dict[str, str]:
        value = self._get(key, "a table of strings", optional)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "a table of strings")
        return {str(k): str(v) for k, v in value.items()}

    def integer(self, key: str) -> int:
        value = self._get(key, "an integer")
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, "true or false", optional=True)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def pattern(self, key: str, flags: int = 0) -> re.Pattern[str]:
        return compile_pattern(self.text(key), f"{self.where}: {key}", flags)

    def table(self, key: str) -> Table:
        return Table(self._get(key, "a table"), f"{self.where.split(':')[0]}: [{key}]")

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise CorpusError(f"{self.where}: unknown key(s) {', '.join(unknown)}")


def compile_pattern(regex: str, where: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(regex, flags)
    except re.error as e:
        raise CorpusError(f"{where}: invalid regular expression {regex!r}: {e}") from e


def expand_vars(value: object, variables: dict[str, str], where: str) -> object:
    """`${name}` in every string of value (lists and tables included) → variables[name]."""
    if isinstance(value, str):
        def var(m: re.Match[str]) -> str:
            if m.group(1) not in variables:
                raise CorpusError(f"{where}: ${{{m.group(1)}}} is not defined in [vars]")
            return variables[m.group(1)]
        return re.sub(r"\$\{([A-Za-z0-9_-]+)\}", var, value)
    if isinstance(value, list):
        return [expand_vars(v, variables, where) for v in value]
    if isinstance(value, dict):
        return {k: expand_vars(v, variables, where) for k, v in value.items()}
    return value


class _CleaningFormatter(string.Formatter):
    """str.format for `cleaning` texts: a list field is joined with its format spec
    (", " when there is none), a table's items are "key=value"; `!r` gives Python's repr."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
        if isinstance(value, list):
            return (format_spec or ", ").join(str(v) for v in value)
        return str(format(value, format_spec))


def describe(template: str, fields: dict[str, object], where: str) -> str:
    """A source's `cleaning` text with its `{field}`s filled in from the source's table."""
    try:
        return _CleaningFormatter().vformat(template, (), fields)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
        raise CorpusError(f"{where}: cleaning: cannot fill in {e}") from e


@dataclass(frozen=True)
class Split:
    chunk_bytes: int
    heldout_every: int
    heldout_offset: int

    def rule(self) -> str:
        """The split rule as recorded in manifest.json."""
        return (f"per source, paragraphs in source order grouped into consecutive chunks of >= {self.chunk_bytes} "
                f"UTF-8 bytes (a paragraph is never cut); chunk i (0-based) goes to held-out when "
                f"i % {self.heldout_every} == {self.heldout_offset}, otherwise to train; sources are concatenated "
                f"in manifest order")


@dataclass(frozen=True)
class Normalise:
    invisible: re.Pattern[str]
    control: re.Pattern[str]
    spaces: re.Pattern[str]


@dataclass(frozen=True)
class HtmlRules:
    block_tags: frozenset[str]
    skip_tags: frozenset[str]
    skip_roles: frozenset[str]
    void_tags: frozenset[str]
    cell_tags: frozenset[str]
    cell_separator: str


@dataclass(frozen=True)
class RstRules:
    keep_directives: frozenset[str]
    titled_directives: frozenset[str]


# Each extractor's fields in corpora_sources.toml.

@dataclass(frozen=True)
class WebParams:
    module: str
    range: str
    min_verses: int


@dataclass(frozen=True)
class KjvParams:
    command: list[str]
    env: dict[str, str]
    min_verses: int


@dataclass(frozen=True)
class RstParams:
    root: Path
    dirs: list[str]
    glob: str
    exclude_paths: re.Pattern[str] | None


@dataclass(frozen=True)
class HtmlParams:
    dir: Path
    glob: str
    exclude: frozenset[str]
    exclude_dirs: frozenset[str]
    root_tag: str | None
    root_attrs: dict[str, str]
    each_file_has_text: bool
    skip_classes: frozenset[str]
    drop: list[re.Pattern[str]]

    def root(self) -> Callable[[str, dict[str, str]], bool] | None:
        """The predicate of the element whose content is the page's text (None: all of it)."""
        if self.root_tag is None and not self.root_attrs:
            return None
        return lambda tag, attrs: ((self.root_tag is None or tag == self.root_tag)
                                   and all(attrs.get(k) == v for k, v in self.root_attrs.items()))

    def root_name(self) -> str:
        return " ".join(([f"<{self.root_tag}>"] if self.root_tag else [])
                        + [f"{k}={v}" for k, v in self.root_attrs.items()]) or "the page"


@dataclass(frozen=True)
class ManParams:
    dir: Path
    suffix: str
    pages: list[str]
    min_pages: int
    groff: list[str]


@dataclass(frozen=True)
class FoldocParams:
    dict: Path
    index: Path
    skip_headwords: tuple[str, ...]
    skip_categories: frozenset[str]
    categories: frozenset[str]
    terms: list[str]
    min_terms: int
    min_entries: int
    term_re: re.Pattern[str]  # a term of `terms`: whole word, any case, optional plural s


Params = WebParams | KjvParams | RstParams | HtmlParams | ManParams | FoldocParams


def _web_params(t: Table) -> WebParams:
    return WebParams(t.text("module"), t.text("range"), t.integer("min_verses"))


def _kjv_params(t: Table) -> KjvParams:
    return KjvParams(t.texts("command"), t.mapping("env", optional=True), t.integer("min_verses"))


def _rst_params(t: Table) -> RstParams:
    exclude = t.optional_text("exclude_paths")
    return RstParams(Path(t.text("root")), t.texts("dirs"), t.text("glob"),
                     compile_pattern(exclude, f"{t.where}: exclude_paths", re.I) if exclude is not None else None)


def _html_params(t: Table) -> HtmlParams:
    return HtmlParams(Path(t.text("dir")), t.text("glob"), frozenset(t.texts("exclude", optional=True)),
                      frozenset(t.texts("exclude_dirs", optional=True)), t.optional_text("root_tag"),
                      t.mapping("root_attrs", optional=True), t.flag("each_file_has_text", False),
                      frozenset(t.texts("skip_classes", optional=True)),
                      [compile_pattern(p, f"{t.where}: drop") for p in t.texts("drop", optional=True)])


def _man_params(t: Table) -> ManParams:
    return ManParams(Path(t.text("dir")), t.text("suffix"), t.texts("pages"), t.integer("min_pages"),
                     t.texts("groff"))


def _foldoc_params(t: Table) -> FoldocParams:
    terms = t.texts("terms")
    # Longest first, so that "ip address" wins over "ip"; sorted() keeps the file's order among equals.
    term_re = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(w) for w in sorted(terms, key=len, reverse=True))
                         + r")s?(?![\w/-])", re.IGNORECASE)
    return FoldocParams(Path(t.text("dict")), Path(t.text("index")), tuple(t.texts("skip_headwords")),
                        frozenset(t.texts("skip_categories")), frozenset(t.texts("categories")), terms,
                        t.integer("min_terms"), t.integer("min_entries"), term_re)


_PARAMS: dict[str, Callable[[Table], Params]] = {
    "web": _web_params, "kjv": _kjv_params, "rst": _rst_params, "html": _html_params,
    "man7": _man_params, "foldoc": _foldoc_params,
}


@dataclass(frozen=True)
class Source:
    name: str
    corpus: str  # "general" or "domain"
    packages: tuple[str, ...]
    required: bool
    params: Params
    cleaning: str  # the description recorded in manifest.json

    def extract(self) -> tuple[list[str], list[Json]]:
        """(the source's paragraphs, normalised, in order; its inputs for the manifest)."""
        p = self.params
        if isinstance(p, WebParams):
            return extract_web(self.name, p)
        if isinstance(p, KjvParams):
            return extract_kjv(self.name, p)
        if isinstance(p, RstParams):
            return extract_rst(self.name, p)
        if isinstance(p, HtmlParams):
            return extract_html(self.name, p)
        if isinstance(p, ManParams):
            return extract_man7(self.name, p)
        return extract_foldoc(self.name, p)


@dataclass(frozen=True)
class Spec:
    """Everything corpora_sources.toml says."""
    path: Path
    sha256: str
    split: Split
    min_domain_sources: int
    normalise: Normalise
    html: HtmlRules
    rst: RstRules
    sources: tuple[Source, ...]

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


def load_spec(path: Path) -> Spec:
    """Reads and checks a sources file (see corpora_sources.toml for its layout)."""
    try:
        blob = path.read_bytes()
        raw = tomllib.loads(blob.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CorpusError(f"cannot read {path}: {e}") from e
    top = Table(raw, path.name)
    variables = top.mapping("vars", optional=True)
    t = top.table("split")
    split = Split(t.integer("chunk_bytes"), t.integer("heldout_every"), t.integer("heldout_offset"))
    if split.chunk_bytes <= 0 or split.heldout_every <= 0:
        raise CorpusError(f"{t.where}: chunk_bytes and heldout_every must be positive")
    t.done()
    t = top.table("build")
    min_domain_sources = t.integer("min_domain_sources")
    t.done()
    t = top.table("normalise")
    normalise = Normalise(t.pattern("invisible"), t.pattern("control"), t.pattern("spaces"))
    t.done()
    t = top.table("html")
    html_rules = HtmlRules(frozenset(t.texts("block_tags")), frozenset(t.texts("skip_tags")),
                           frozenset(t.texts("skip_roles")), frozenset(t.texts("void_tags")),
                           frozenset(t.texts("cell_tags")), t.text("cell_separator"))
    t.done()
    t = top.table("rst")
    rst = RstRules(frozenset(t.texts("keep_directives")), frozenset(t.texts("titled_directives")))
    t.done()
    top.used.add("source")
    raw_sources = raw.get("source")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise CorpusError(f"{path.name}: no [[source]] tables")
    sources: list[Source] = []
    for n, raw_source in enumerate(raw_sources, 1):
        where = f"{path.name}: source {n}"
        expanded = expand_vars(raw_source, variables, where)
        t = Table(expanded, where)
        name = t.text("name")
        t.where = where = f"{path.name}: source {name!r}"
        if any(s.name == name for s in sources):
            raise CorpusError(f"{where}: a source of that name comes earlier")
        corpus = t.text("corpus")
        if corpus not in CORPORA:
            raise CorpusError(f"{where}: corpus must be one of {', '.join(CORPORA)}, not {corpus!r}")
        packages = tuple(t.texts("packages"))
        required = t.flag("required", False)
        extractor = t.text("extractor")
        if extractor not in _PARAMS:
            raise CorpusError(f"{where}: extractor must be one of {', '.join(_PARAMS)}, not {extractor!r}")
        params = _PARAMS[extractor](t)
        cleaning = describe(t.text("cleaning"), t.raw, where)
        t.done()
        sources.append(Source(name, corpus, packages, required, params, cleaning))
    top.done()
    return Spec(path, hashlib.sha256(blob).hexdigest(), split, min_domain_sources, normalise, html_rules, rst,
                tuple(sources))


@functools.cache
def spec() -> Spec:
    """corpora_sources.toml, read once."""
    return load_spec(SOURCES_FILE)


# ----------------------------------------------------------------------------------------
# Text normalisation shared by every source.

def normalise_paragraph(text: str) -> str:
    """NFC, no invisible/control characters, single spaces, no blank lines inside."""
    rules = spec().normalise
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = rules.invisible.sub("", text)
    text = rules.control.sub(" ", text)
    lines = [rules.spaces.sub(" ", line).strip() for line in text.split("\n")]
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


def list_files(root: Path, pattern: str, source: str, exclude: frozenset[str] = frozenset(),
               exclude_dirs: frozenset[str] = frozenset()) -> list[Path]:
    """The files under root matching pattern in natural order, except those named in exclude
    or with a directory named in exclude_dirs in their path."""
    if not root.is_dir():
        raise CorpusError(f"{source}: directory {root} does not exist (is the package installed?)")
    files = sorted((p for p in root.rglob(pattern) if p.is_file() and p.name not in exclude
                    and not exclude_dirs.intersection(p.parts)), key=natural_key)
    if not files:
        raise CorpusError(f"{source}: no files matching {pattern!r} under {root}")
    return files


# ----------------------------------------------------------------------------------------
# General English: the World English Bible through diatheke.

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


def web_paragraphs(out: str, module: str, source: str = "web") -> tuple[list[str], int]:
    """`diatheke -b MODULE -f internal` output → (paragraphs, not yet normalised; number of verses)."""
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
        if not line.strip() or line.strip() == f"({module})":
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


def extract_web(source: str, p: WebParams) -> tuple[list[str], list[Json]]:
    cmd = ["diatheke", "-b", p.module, "-f", "internal", "-k", p.range]
    paragraphs, verses = web_paragraphs(run(cmd, source), p.module, source)
    if verses < p.min_verses:
        raise CorpusError(f"{source}: diatheke printed only {verses} verses for {p.range} (expected at least {p.min_verses})")
    return keep(paragraphs), [{"command": " ".join(cmd), "verses": verses}]


# The KJV through the `bible` program of bible-kjv.
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


def extract_kjv(source: str, p: KjvParams) -> tuple[list[str], list[Json]]:
    paragraphs, verses = kjv_paragraphs(run(p.command, source, env=p.env), source)
    if verses < p.min_verses:
        raise CorpusError(f"{source}: `bible` printed only {verses} verses (expected at least {p.min_verses})")
    return keep(paragraphs), [{"command": " ".join(p.command), "verses": verses}]


# ----------------------------------------------------------------------------------------
# The Linux kernel documentation (reStructuredText sources).

_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_RST_TABLE_BORDER = re.compile(r"^\s*(\+[-=+]+\+|[=\- ]*={2,}[= ]*|[- ]*-{3,} +-{3,}[- ]*)\s*$")


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
    rules = spec().rst
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
            if name in rules.keep_directives:
                arg = m.group(2).strip()
                if arg and name in rules.titled_directives:
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


def rst_path_kept(relative: str, exclude: re.Pattern[str] | None) -> bool:
    """Whether a documentation file is read, from its path below the source's root
    ("/admin-guide/...") and the source's exclude_paths."""
    return exclude is None or not exclude.search(relative)


def rst_file_paragraphs(src: str) -> list[str]:
    """One reStructuredText file → its normalised paragraphs, punctuation-only ones dropped."""
    # index pages are only tables of contents; they leave nothing but their title
    return [p for p in keep(rst_to_paragraphs(src)) if not re.fullmatch(r"[\W_]*", p)]


def extract_rst(source: str, p: RstParams) -> tuple[list[str], list[Json]]:
    files: list[Path] = []
    for d in p.dirs:
        files += [f for f in list_files(p.root / d, p.glob, source)
                  if rst_path_kept(f.as_posix()[len(str(p.root)):], p.exclude_paths)]
    paragraphs: list[str] = []
    inputs: list[Json] = []
    for f in files:
        paragraphs.extend(rst_file_paragraphs(read_text(f, source)))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# HTML → text (BIND 9 manual, Wireshark user guide) with the standard library's parser.

class HTMLText(html.parser.HTMLParser):
    """Collects the visible text of the content part of a page as paragraphs: block
    elements end paragraphs; table cells are separated by " | "; skipped elements (<pre>,
    <script>, navigation, the source's skip classes ...) are dropped with their content and,
    skipped, do not end the paragraph around them; whitespace runs become one space."""

    def __init__(self, root: Callable[[str, dict[str, str]], bool] | None, skip_classes: frozenset[str]):
        super().__init__(convert_charrefs=True)
        self.rules = spec().html
        self.root = root
        self.skip_classes = skip_classes
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, inside root)
        self.paragraphs: list[str] = []
        self.buf: list[str] = []

    def _state(self) -> tuple[bool, bool]:
        return (self.stack[-1][1], self.stack[-1][2]) if self.stack else (False, self.root is None)

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.buf)).strip()
        self.buf.clear()
        if text:
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        skipping, inside = self._state()
        classes = set(a.get("class", "").split())
        if tag in self.rules.skip_tags or classes & self.skip_classes or a.get("role") in self.rules.skip_roles:
            skipping = True
        if not inside and self.root and self.root(tag, a):
            inside = True
        if tag in self.rules.block_tags and inside and not skipping:
            self._flush()
        if tag in self.rules.cell_tags and inside and not skipping and self.buf and "".join(self.buf).strip():
            self.buf.append(self.rules.cell_separator)
        if tag not in self.rules.void_tags:
            self.stack.append((tag, skipping, inside))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.rules.void_tags:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.rules.void_tags:
            return
        # Pop to the matching open tag (HTML in the wild is not always well nested).
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                _, skipping, inside = self.stack[k]
                del self.stack[k:]
                if tag in self.rules.block_tags and inside and not skipping:
                    self._flush()
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


def drop_all(paragraph: str, patterns: list[re.Pattern[str]]) -> str:
    """The paragraph with every match of each pattern removed, pattern after pattern."""
    for pattern in patterns:
        paragraph = pattern.sub("", paragraph)
    return paragraph


def extract_html(source: str, p: HtmlParams) -> tuple[list[str], list[Json]]:
    files = list_files(p.dir, p.glob, source, exclude=p.exclude, exclude_dirs=p.exclude_dirs)
    root = p.root()
    paragraphs: list[str] = []
    inputs: list[Json] = []
    for f in files:
        paras = html_paragraphs(f, source, root, p.skip_classes)
        if p.each_file_has_text and not paras:
            raise CorpusError(f"{source}: {f} has no text inside {p.root_name()} (page layout changed?)")
        paragraphs.extend(keep([drop_all(para, p.drop) for para in paras]))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
    if not paragraphs:
        raise CorpusError(f"{source}: no text extracted from {p.dir}")
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# Networking man7 pages from `manpages`, rendered with groff.

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


def extract_man7(source: str, p: ManParams) -> tuple[list[str], list[Json]]:
    paragraphs: list[str] = []
    inputs: list[Json] = []
    found = 0
    for name in p.pages:
        f = p.dir / f"{name}{p.suffix}"
        if not f.exists():
            inputs.append({"path": str(f), "missing": True})
            continue
        raw = gzip.open(f).read()
        if raw.lstrip().startswith(b".so "):
            inputs.append({"path": str(f), "skipped": "link to another page (.so)"})
            continue
        rendered = run(p.groff, f"{source} ({f.name})", stdin=raw)
        paragraphs.extend(keep(man_to_paragraphs(rendered)))
        inputs.append({"path": str(f), "bytes": f.stat().st_size})
        found += 1
    if found < p.min_pages:
        raise CorpusError(f"{source}: only {found} of the networking man7 pages exist under {p.dir}")
    return paragraphs, inputs


# ----------------------------------------------------------------------------------------
# FOLDOC networking entries (dictd format: the .dict.dz is gzip-compatible).

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


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


def foldoc_index(index: str, skip_headwords: tuple[str, ...], where: str) -> list[tuple[int, int]]:
    """A dictd .index file → the sorted, distinct (offset, length) of its entries, those whose
    headword starts with one of skip_headwords left out. `where` names the file in errors."""
    entries = set()
    for n, line in enumerate(index.split("\n"), 1):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise CorpusError(f"{where}:{n}: expected 'word<TAB>offset<TAB>length', got {line[:80]!r}")
        if parts[0].startswith(skip_headwords):
            continue  # dictd's own metadata entries
        entries.add((dict_b64(parts[1]), dict_b64(parts[2])))  # several headwords can share one entry
    return sorted(entries)


def foldoc_entry(text: str, p: FoldocParams) -> list[str] | None:
    """One FOLDOC entry ("headword\n\tbody ...") → its paragraphs (not yet normalised), the
    first starting "headword: ", or None when the entry is not selected (the rule is the
    source's `cleaning` in corpora_sources.toml)."""
    head, _, body = text.partition("\n")
    body = body.strip("\n")
    # The category tag opens the body, or follows a line of aliases ("100VG-AnyLAN").
    # Multi-sense entries have one per sense, after "1. ".
    tag = re.compile(r"^(\s*(?:\d+\.\s*)?)<([a-z][a-z ,/-]*)>\s*", re.M)
    cats = {c.strip().lower() for m in tag.finditer(body) for c in m.group(2).split(",")}
    body = tag.sub(r"\1", body)
    terms = {t.lower() for t in p.term_re.findall(foldoc_clean(body))}
    if cats & p.skip_categories or not (cats & p.categories or len(terms) >= p.min_terms):
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


def extract_foldoc(source: str, p: FoldocParams) -> tuple[list[str], list[Json]]:
    for path in (p.dict, p.index):
        if not path.exists():
            raise CorpusError(f"{source}: {path} does not exist")
    try:
        dictionary = gzip.open(p.dict).read()
    except (OSError, EOFError) as e:
        raise CorpusError(f"{source}: cannot decompress {p.dict}: {e}") from e
    entries = foldoc_index(read_text(p.index, source), p.skip_headwords, f"{source}: {p.index}")
    paragraphs: list[str] = []
    kept = 0
    for off, length in entries:
        blocks = foldoc_entry(dictionary[off:off + length].decode("utf-8", "replace"), p)
        if blocks is None:
            continue
        paragraphs.extend(blocks)
        kept += 1
    if kept < p.min_entries:
        raise CorpusError(f"{source}: only {kept} networking entries selected from {p.dict} (expected hundreds)")
    return keep(paragraphs), [{"path": str(p.dict), "bytes": p.dict.stat().st_size,
                               "entries_total": len(entries), "entries_kept": kept,
                               "rule": spec().source(source).cleaning}]


# ----------------------------------------------------------------------------------------
# Packages, split, manifest.

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
    return sorted({p for s in spec().sources for p in s.packages})


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


def sources_sha256() -> str:
    return spec().sha256


def split_chunks(paragraphs: list[str]) -> tuple[list[str], list[str], int]:
    """(train, held-out, number of chunks) of one source's paragraphs, by the split rule
    (Split.rule; its numbers are in corpora_sources.toml)."""
    split = spec().split
    train: list[str] = []
    held: list[str] = []
    chunk: list[str] = []
    size, index = 0, 0
    for p in paragraphs:
        chunk.append(p)
        size += len(p.encode("utf-8")) + 2
        if size >= split.chunk_bytes:
            (held if index % split.heldout_every == split.heldout_offset else train).extend(chunk)
            chunk, size, index = [], 0, index + 1
    if chunk:
        (held if index % split.heldout_every == split.heldout_offset else train).extend(chunk)
        index += 1
    return train, held, index


def build(out_dir: Path, versions: dict[str, str | None], log: Log) -> Json:
    """Writes the four corpora and manifest.json into out_dir (which must be empty)."""
    sources, min_domain = spec().sources, spec().min_domain_sources
    buildable = [s for s in sources if s.corpus == "domain" and all(versions.get(p) for p in s.packages)]
    if len(buildable) < min_domain:  # fail before minutes of extraction, not after
        raise CorpusError(f"only {len(buildable)} domain sources have their packages installed "
                          f"({', '.join(s.name for s in buildable) or 'none'}); at least {min_domain} are required")
    texts: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    manifest_sources: list[Json] = []
    usable = {"general": 0, "domain": 0}
    for src in sources:
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
    if usable["domain"] < min_domain:
        raise CorpusError(f"only {usable['domain']} domain sources could be built; at least {min_domain} are required")
    files: Json = {}
    for name in OUTPUTS:
        data = ("\n\n".join(texts[name]) + "\n").encode("utf-8") if texts[name] else b""
        (out_dir / name).write_bytes(data)
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                       "paragraphs": len(texts[name]), "approx_words": len(data.split())}
    manifest: Json = {"format_version": FORMAT_VERSION, "script_sha256": script_sha256(),
                      "sources_sha256": sources_sha256(),
                      "packages": {p: versions.get(p) for p in all_packages()}, "split_rule": spec().split.rule(),
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
    if manifest.get("sources_sha256") != sources_sha256():
        return f"{SOURCES_FILE.name} changed since the outputs were built"
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


# ----------------------------------------------------------------------------------------
# Slices of a built corpus (scripts/quickstart.sh's toy pipeline).

CUT_BLOCK_CHARS = 4096


def cut_text(text: str, size: int) -> str:
    """About `size` characters of text (paragraphs separated by blank lines), taken as evenly
    spaced runs of whole paragraphs so that every source of a corpus is represented: the
    paragraphs are grouped into blocks of at least CUT_BLOCK_CHARS characters, and a share
    size / len(text) of the blocks is kept, evenly spaced (all of them when size >= the text).
    The result ends with a newline, after the last kept paragraph's own (a corpus file's last
    paragraph ends with one, so a cut that keeps it ends with a blank line)."""
    paragraphs = text.split("\n\n")
    blocks: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for p in paragraphs:
        current.append(p)
        chars += len(p)
        if chars >= CUT_BLOCK_CHARS:
            blocks.append(current)
            current, chars = [], 0
    if current:
        blocks.append(current)
    total = sum(len(p) + 2 for p in paragraphs)
    ratio = min(1.0, size / max(total, 1))
    kept = [b for j, b in enumerate(blocks) if int((j + 1) * ratio) > int(j * ratio)]
    return "\n\n".join(p for b in kept for p in b) + "\n"


def cut_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="corpora.py cut", description=(
        "Write about BYTES of FILE (counted in characters; 0: all of it, copied byte for byte) to OUT, "
        "taken as evenly spaced runs of whole paragraphs so that every source of the corpus is represented."))
    ap.add_argument("file", type=Path, metavar="FILE")
    ap.add_argument("size", type=int, metavar="BYTES")
    ap.add_argument("out", type=Path, metavar="OUT")
    args = ap.parse_args(argv)
    if args.size < 0:
        ap.error(f"BYTES must be 0 (all) or positive, not {args.size}")
    try:
        if args.size == 0:
            shutil.copyfile(args.file, args.out)
            return 0
        with open(args.file, encoding="utf-8") as f:  # universal newlines: \r\n and \r read as \n
            text = f.read()
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(cut_text(text, args.size))
    except (OSError, UnicodeDecodeError) as e:
        print(f"corpora: cut: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["cut"]:
        return cut_main(argv[1:])
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="`corpora.py cut FILE BYTES OUT` cuts a slice of a built corpus "
                                        "(see `corpora.py cut --help`).")
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
