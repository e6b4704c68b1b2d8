"""Unit tests of scripts/corpora.py's functions that do no I/O: normalisation, the parsers of
each source's format, FOLDOC's selection and the train/held-out split.

Run: python3 -m unittest discover -s scripts/tests -t scripts   (part of `make test`)
The inputs are small pieces shaped like the real ones (diatheke, bible, kernel rST, BIND and
Wireshark HTML, groff output, FOLDOC's dictd files); none of the Debian packages is needed.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import corpora  # noqa: E402
from corpora import CorpusError  # noqa: E402


class SpecTests(unittest.TestCase):
    """corpora_sources.toml and its reader."""

    def test_the_sources_file(self) -> None:
        spec = corpora.spec()
        self.assertEqual([(s.name, s.corpus) for s in spec.sources], [
            ("web", "general"), ("kjv", "general"), ("linux-doc-general", "general"), ("linux-doc", "domain"),
            ("bind9-doc", "domain"), ("wireshark-doc", "domain"), ("manpages", "domain"), ("dict-foldoc", "domain")])
        self.assertEqual([s.name for s in spec.sources if s.required], ["web"])
        self.assertEqual(spec.source("linux-doc").packages, ("linux-doc-6.1",))  # ${linux_doc} expanded
        rst = spec.source("linux-doc").params
        assert isinstance(rst, corpora.RstParams)
        self.assertEqual(rst.root, Path("/usr/share/doc/linux-doc-6.1/html/_sources"))
        self.assertIn("`bible -l100000 Gen1:1-Rev22:21`", spec.source("kjv").cleaning)
        self.assertNotIn("{", spec.source("manpages").cleaning)
        self.assertEqual(len(spec.sha256), 64)

    def test_split_rule_text_is_the_manifests(self) -> None:
        self.assertEqual(corpora.Split(16384, 20, 10).rule(),
                         "per source, paragraphs in source order grouped into consecutive chunks of >= 16384 UTF-8 "
                         "bytes (a paragraph is never cut); chunk i (0-based) goes to held-out when i % 20 == 10, "
                         "otherwise to train; sources are concatenated in manifest order")

    def test_describe(self) -> None:
        fields: dict[str, object] = {"cmd": ["groff", "-k"], "dirs": ["a", "b"], "n": 3, "attrs": {"itemprop": "x"}}
        self.assertEqual(corpora.describe("`{cmd: }` {{{dirs:,}}} {dirs} {dirs!r} {n} {attrs}", fields, "w"),
                         "`groff -k` {a,b} a, b ['a', 'b'] 3 itemprop=x")
        self.assertEqual(corpora.describe("", fields, "w"), "")
        with self.assertRaisesRegex(CorpusError, "w: cleaning: cannot fill in 'missing'"):
            corpora.describe("{missing}", fields, "w")
        with self.assertRaisesRegex(CorpusError, "w: cleaning"):
            corpora.describe("a { b", fields, "w")

    def test_expand_vars(self) -> None:
        value = {"a": "/x/${v}/y", "b": ["${v}", "$v", "${v}${v}"], "c": 3}
        self.assertEqual(corpora.expand_vars(value, {"v": "é"}, "w"),
                         {"a": "/x/é/y", "b": ["é", "$v", "éé"], "c": 3})
        with self.assertRaisesRegex(CorpusError, r"w: \$\{nope\} is not defined in \[vars\]"):
            corpora.expand_vars("${nope}", {}, "w")

    def load_changed(self, old: str, new: str) -> corpora.Spec:
        text = corpora.SOURCES_FILE.read_text(encoding="utf-8")
        self.assertIn(old, text)
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "sources.toml"
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
            return corpora.load_spec(path)

    def test_mistakes_in_the_file_are_reported(self) -> None:
        cases = [
            ('min_pages = 5', 'min_page = 5', "source 'manpages': min_pages is missing"),
            ('min_verses = 31000\ncleaning', 'min_verses = 31000\nmin_verse = 1\ncleaning',
             "source 'web': unknown key\\(s\\) min_verse"),
            ('min_terms = 3', 'min_terms = "3"', "source 'dict-foldoc': min_terms must be an integer"),
            ('extractor = "man7"', 'extractor = "troff"', "extractor must be one of"),
            ('corpus = "domain"', 'corpus = "other"', "corpus must be one of general, domain"),
            ('name = "kjv"', 'name = "web"', "source 'web': a source of that name comes earlier"),
            ("exclude_paths = 'net|", "exclude_paths = '(net|", "invalid regular expression"),
            ('"/usr/share/doc/${linux_doc}', '"/usr/share/doc/${linux_dok}', "linux_dok.*is not defined"),
            ('[split]\n', '[split]\nchunk = 1\n', "\\[split\\]: unknown key"),
            ('[[source]]\nname = "web"', '[[source]\nname = "web"', "cannot read"),
        ]
        for old, new, error in cases:
            with self.subTest(new=new):
                with self.assertRaisesRegex(CorpusError, error):
                    self.load_changed(old, new)

    def test_missing_file(self) -> None:
        with self.assertRaisesRegex(CorpusError, "cannot read"):
            corpora.load_spec(Path("/nonexistent/corpora_sources.toml"))


class NormaliseTests(unittest.TestCase):
    def test_empty_and_blank_text_give_nothing(self) -> None:
        self.assertEqual(corpora.normalise_paragraph(""), "")
        self.assertEqual(corpora.normalise_paragraph(" \t\u00a0\n\r\n \u3000"), "")

    def test_nfc(self) -> None:
        # e + COMBINING ACUTE ACCENT becomes the one code point é
        self.assertEqual(corpora.normalise_paragraph("re\u0301seau"), "r\u00e9seau")

    def test_invisible_characters_are_removed_not_replaced(self) -> None:
        text = "inter\u00adnet zero\u200bwidth \ufeffbom join\u200d\u2060ed"
        self.assertEqual(corpora.normalise_paragraph(text), "internet zerowidth bom joined")

    def test_control_characters_become_spaces(self) -> None:
        self.assertEqual(corpora.normalise_paragraph("a\x00b\x07c\x1bd\x7fe"), "a b c d e")

    def test_space_runs_collapse_and_lines_are_trimmed(self) -> None:
        text = "  one \t\u00a0 two\u2009three  \n\n\n   four\u202f\u205ffive   "
        self.assertEqual(corpora.normalise_paragraph(text), "one two three\nfour five")

    def test_line_endings(self) -> None:
        self.assertEqual(corpora.normalise_paragraph("a\r\nb\rc\n"), "a\nb\nc")

    def test_non_ascii_text_is_kept(self) -> None:
        text = "Ἐν ἀρχῇ — 日本語 🙂 ﬁ"
        self.assertEqual(corpora.normalise_paragraph(text), text)

    def test_keep_drops_empty_paragraphs_in_order(self) -> None:
        self.assertEqual(corpora.keep([]), [])
        self.assertEqual(corpora.keep(["b ", "", "\u200b", " a\n\n c"]), ["b", "a\nc"])


class NaturalKeyTests(unittest.TestCase):
    def test_digit_runs_sort_by_value(self) -> None:
        paths = [Path("d/page10.html"), Path("d/page2.html"), Path("d/page1.html"), Path("c/x.html")]
        self.assertEqual(sorted(paths, key=corpora.natural_key),
                         [Path("c/x.html"), Path("d/page1.html"), Path("d/page2.html"), Path("d/page10.html")])

    def test_key_parts(self) -> None:
        self.assertEqual(corpora.natural_key(Path("a12b3")), ["a", 12, "b", 3, ""])


MODULE = "engWEB2015eb"
# `diatheke -b engWEB2015eb -f internal -k "Ps 3:1-2"`, <w> attributes shortened.
PSALM = (
    '<title canonical="true" type="psalm">A Psalm by David, when he fled from Absalom his son.</title> '
    '<lg sID="gen7860"/> <l level="1" sID="gen7861"/>Psalms 3:1: Yahweh, how <w savlm="s:H1732">my</w> adversaries '
    '<w savlm="s:H1121">have</w> increased!<l eID="gen7861" level="1"/> <l level="2" sID="gen7862"/>Many '
    '<w savlm="s:H1121">are</w> <w savlm="s:H1121">those</w> who rise up against me. <l eID="gen7862" level="2"/>\n'
    '<title canonical="true" type="psalm">A Psalm by David, when he fled from Absalom his son.</title> '
    '<lg sID="gen7860"/> <l level="1" sID="gen7861"/>Psalms 3:2: Many there are who say of my soul,'
    '<l eID="gen7863" level="1"/> <l level="2" sID="gen7864"/>\u201cThere is no help for him in God.\u201d'
    '<l eID="gen7864" level="2"/> <l sID="gen7865" type="selah"/>Selah.<l eID="gen7865" type="selah"/>\n'
    '(engWEB2015eb)\n'
)
# `diatheke ... -k "Gen 1:1-3"`: an x-p paragraph mark closes the paragraph after verse 2.
GENESIS = (
    'Genesis 1:1: <w savlm="s:H0430">In</w> <w savlm="s:H0853">the</w> <w savlm="s:H7225">beginning</w>, '
    '<w savlm="s:H0430">God</w><w savlm="s:H1254">created</w> the heavens and the earth.\n'
    'Genesis 1:2: The earth was formless and empty. <div eID="gen25" type="x-p"/>\n'
    'Genesis 1:3: God said, \u201cLet there be light,\u201d and there was light.\n'
    '(engWEB2015eb)\n'
)


class WebTests(unittest.TestCase):
    def test_adjacent_word_elements_get_a_space(self) -> None:
        self.assertEqual(corpora.osis_inline_to_text('<w a="1">God</w><w a="2">created</w>'), "God created")

    def test_glued_punctuation_and_names_are_separated(self) -> None:
        self.assertEqual(corpora.osis_inline_to_text("she conceived,and bore"), "she conceived, and bore")
        self.assertEqual(corpora.osis_inline_to_text("sacrifice.Striking"), "sacrifice. Striking")
        self.assertEqual(corpora.osis_inline_to_text("went toMarisa"), "went to Marisa")
        # not split: a lower-case word after a full stop, a single letter before a capital
        self.assertEqual(corpora.osis_inline_to_text("e.g.this aGod"), "e.g.this aGod")

    def test_markup_and_entities(self) -> None:
        text = corpora.osis_inline_to_text('<l level="1"/>A &amp; B<lb/>C<note>x</note> &lt;D&gt;')
        self.assertEqual(text, " A & B Cx <D>")  # only <l>, <lb>, <lg>, <item>, <list> separate words
        self.assertEqual(corpora.osis_inline_to_text(""), "")

    def test_repeated_heading_is_kept_once_as_its_own_paragraph(self) -> None:
        paragraphs, verses = corpora.web_paragraphs(PSALM, MODULE)
        self.assertEqual(verses, 2)
        self.assertEqual(corpora.keep(paragraphs), [
            "A Psalm by David, when he fled from Absalom his son.",
            "Yahweh, how my adversaries have increased! Many are those who rise up against me. "
            "Many there are who say of my soul, \u201cThere is no help for him in God.\u201d Selah.",
        ])

    def test_paragraph_marks_and_chapters_end_paragraphs(self) -> None:
        paragraphs, verses = corpora.web_paragraphs(GENESIS, MODULE)
        self.assertEqual(verses, 3)
        self.assertEqual(paragraphs, [
            "In the beginning, God created the heavens and the earth. The earth was formless and empty.",
            "God said, \u201cLet there be light,\u201d and there was light.",
        ])
        two, _ = corpora.web_paragraphs("Genesis 50:26: So Joseph died.\nExodus 1:1: Now these are the names.\n", MODULE)
        self.assertEqual(two, ["So Joseph died.", "Now these are the names."])

    def test_glossary_after_revelation_is_dropped(self) -> None:
        out = ('Revelation 22:21: The grace of the Lord Jesus Christ be with all the saints. Amen.'
               '<div type="glossary" sID="g1"/>Abba: Father\nGlossary 1:1: more words\n')
        self.assertEqual(corpora.web_paragraphs(out, MODULE),
                         (["The grace of the Lord Jesus Christ be with all the saints. Amen."], 1))

    def test_empty_output(self) -> None:
        self.assertEqual(corpora.web_paragraphs("", MODULE), ([], 0))
        self.assertEqual(corpora.web_paragraphs("\n(engWEB2015eb)\n", MODULE), ([], 0))

    def test_line_without_a_verse_reference_is_an_error(self) -> None:
        with self.assertRaisesRegex(CorpusError, "web: unexpected diatheke line"):
            corpora.web_paragraphs("Genesis 1:1: In the beginning\nsomething else\n", MODULE)
        with self.assertRaisesRegex(CorpusError, "no verse reference"):
            corpora.web_paragraphs("Genesis: no chapter and verse\n", MODULE)


class KjvTests(unittest.TestCase):
    OUT = ("\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n"
           "  2 And the earth was without form, and void.\n\nGenesis 2\n\n  1 Thus the heavens were finished.\n"
           "\n1 John 1\n\n  1 That which was from the beginning.\n")

    def test_one_paragraph_per_chapter_without_numbers_or_headers(self) -> None:
        self.assertEqual(corpora.kjv_paragraphs(self.OUT), ([
            "In the beginning God created the heaven and the earth. And the earth was without form, and void.",
            "Thus the heavens were finished.",
            "That which was from the beginning.",
        ], 4))

    def test_empty_output(self) -> None:
        self.assertEqual(corpora.kjv_paragraphs(""), ([], 0))

    def test_unexpected_line_is_an_error(self) -> None:
        with self.assertRaisesRegex(CorpusError, "kjv: unexpected line"):
            corpora.kjv_paragraphs("Genesis 1\n  1 Text.\nno verse number here\n")


class RstTests(unittest.TestCase):
    def test_inline_markup_keeps_its_text(self) -> None:
        cases = {
            "see :ref:`the guide <guide-target>` now": "see the guide now",
            "call :c:func:`sock_create`": "call sock_create",
            "read `the RFC <https://example.org/rfc>`_ or `this <x>`__": "read the RFC or this",
            "set ``net.ipv4.tcp_sack`` to 1": "set net.ipv4.tcp_sack to 1",
            "a `reference`_ and `interpreted`": "a reference and interpreted",
            "cited [#]_ and [1]_ and [*]_ here": "cited  and  and  here",
            "**bold** and *emphasis* but not a*b*c": "bold and emphasis but not a*b*c",
            "see target_ here": "see target here",
            "the |version| string": "the version string",
            "": "",
        }
        for rst, text in cases.items():
            with self.subTest(rst=rst):
                self.assertEqual(corpora.rst_inline(rst), text)

    def test_document(self) -> None:
        src = "\n".join([
            ".. SPDX-License-Identifier: GPL-2.0",
            "",
            "=====================",
            "The UDP-Lite protocol",
            "=====================",
            "",
            "UDP-Lite is a transport protocol whose",
            "characteristic is a *variable-length* checksum.",
            "",
            ".. _api:",
            "",
            "Programming API",
            "---------------",
            "",
            "The statement looks like::",
            "",
            "    s = socket(PF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);",
            "",
            "Unindented text after the literal block.",
            "",
            ".. note::",
            "   :class: special",
            "",
            "   Kept: a note is prose.",
            "",
            ".. code-block:: c",
            "",
            "   int val = 20;",
            "",
            ".. toctree::",
            "   :maxdepth: 2",
            "",
            "   other-page",
            "",
            "- first item",
            "- second item",
            "",
            ":Author: Someone",
            "",
            "+------+------+",
            "| cell | cell |",
            "+------+------+",
        ])
        self.assertEqual(corpora.rst_to_paragraphs(src), [
            "The UDP-Lite protocol",
            "UDP-Lite is a transport protocol whose characteristic is a variable-length checksum.",
            "Programming API",
            "The statement looks like:",
            "Unindented text after the literal block.",
            "Kept: a note is prose.",
            "first item\nsecond item",
            "Author: Someone",
            "cell cell",
        ])

    def test_lone_double_colon_only_announces_the_literal_block(self) -> None:
        self.assertEqual(corpora.rst_to_paragraphs("Example ::\n\n    code\n\nAfter."), ["Example", "After."])
        self.assertEqual(corpora.rst_to_paragraphs("::\n\n    code\n\nAfter."), ["", "After."])

    def test_titled_directives_keep_their_title(self) -> None:
        self.assertEqual(corpora.rst_to_paragraphs(".. admonition:: Be careful\n\n   Body."),
                         ["Be careful", "Body."])
        self.assertEqual(corpora.rst_to_paragraphs(".. warning:: Not a title\n\n   Body."), ["Body."])

    def test_empty_and_tab_indented_input(self) -> None:
        self.assertEqual(corpora.rst_to_paragraphs(""), [])
        self.assertEqual(corpora.rst_to_paragraphs("Text::\n\n\tcode\n\tmore\n\nAfter."), ["Text:", "After."])

    @unittest.expectedFailure
    def test_indented_paragraph_after_a_literal_block_is_kept(self) -> None:
        # Known defect, left as it is because it would change the corpora: after a literal
        # block, literal_next stays set, so in an indented document (the kernel's udplite.rst)
        # the next indented paragraphs are dropped as literal too, up to the next title.
        src = "  looks like::\n\n      code();\n\n  or, respectively,\n\n  More prose.\n"
        self.assertEqual(corpora.rst_to_paragraphs(src), ["looks like:", "or, respectively,", "More prose."])

    def test_file_paragraphs_are_normalised_and_punctuation_only_ones_dropped(self) -> None:
        self.assertEqual(corpora.rst_file_paragraphs("Title\n=====\n\n* ``--``\n\nRe\u0301el  text.\n"),
                         ["Title", "R\u00e9el text."])
        self.assertEqual(corpora.rst_file_paragraphs(""), [])

    def test_general_doc_paths(self) -> None:
        general = corpora.spec().source("linux-doc-general").params
        assert isinstance(general, corpora.RstParams)
        for path, kept in [("/admin-guide/README.rst.txt", True),
                              ("/admin-guide/sysctl/net.rst.txt", False),
                              ("/admin-guide/ipv6.rst.txt", False),
                              ("/filesystems/ip-sysctl.rst.txt", False),
                              ("/filesystems/zip.rst.txt", True),
                              ("/process/Bluetooth.rst.txt", False),
                              ("/core-api/can.rst.txt", False),
                              ("/core-api/canonical.rst.txt", True),
                              ("/core-api/scan.rst.txt", False)]:  # "can" ends a word in "scan"
            with self.subTest(path=path):
                self.assertEqual(corpora.rst_path_kept(path, general.exclude_paths), kept)


class HtmlTests(unittest.TestCase):
    NO_SKIP: frozenset[str] = frozenset()

    def paras(self, text: str, root: str | None = None, skip: frozenset[str] = NO_SKIP) -> list[str]:
        if root is None:
            return corpora.html_to_paragraphs(text, None, skip)
        return corpora.html_to_paragraphs(text, lambda t, a: t == root, skip)

    def test_blocks_end_paragraphs_and_inline_elements_do_not(self) -> None:
        page = ("<html><head><title>T</title><style>p {}</style></head><body>"
                "<h1>Title</h1><p>One <b>bold</b>\n   word.</p><p>Two<br>lines</p>"
                "<ul><li>item <a href='#'>link</a></li><li>item 2</li></ul></body></html>")
        self.assertEqual(self.paras(page, "body"), ["Title", "One bold word.", "Two", "lines", "item link", "item 2"])

    def test_table_cells(self) -> None:
        page = "<body><table><tr><th>Option</th><th>Default</th></tr><tr><td>a</td><td></td><td>c</td></tr></table></body>"
        self.assertEqual(self.paras(page, "body"), ["Option | Default", "a | | c"])  # an empty cell keeps its place

    def test_pre_is_dropped_with_its_content(self) -> None:
        page = "<body><p>Before:</p><pre>options {\n  directory \"/var\";\n};</pre><p>After.</p></body>"
        self.assertEqual(self.paras(page, "body"), ["Before:", "After."])

    def test_skipped_elements_do_not_end_a_paragraph(self) -> None:
        # A <pre> (or any skipped element) inside running text leaves the text around it
        # in one paragraph; the BIND and Wireshark pages have none there.
        self.assertEqual(self.paras("<body><p>run <pre>x</pre>on</p></body>", "body"), ["run on"])
        self.assertEqual(self.paras("<p>a<script>var x;</script>b</p>"), ["ab"])

    def test_root_and_skip_classes_and_roles(self) -> None:
        page = ('<body><div class="nav">menu</div><div itemprop="articleBody"><h2>Zones'
                '<a class="headerlink" href="#z">\u00b6</a></h2><div role="navigation">prev</div>'
                '<p>A zone &amp; its <code>SOA</code>.</p><div class="toctree-wrapper"><p>toc</p></div></div>'
                '<footer>copyright</footer></body>')
        paras = corpora.html_to_paragraphs(page, lambda t, a: a.get("itemprop") == "articleBody",
                                           frozenset({"headerlink", "toctree-wrapper"}))
        self.assertEqual(paras, ["Zones", "A zone & its SOA."])

    def test_entities_and_non_ascii(self) -> None:
        self.assertEqual(self.paras("<p>a&nbsp;b &#x2014; c&eacute; 日本 &unknown; &lt;tag&gt;</p>"),
                         ["a b \u2014 c\u00e9 日本 &unknown; <tag>"])  # \s+ (NBSP too) is one space

    def test_badly_nested_and_unclosed_markup(self) -> None:
        self.assertEqual(self.paras("<div><p>one<p>two</div>three</span></p>"), ["one", "two", "three"])
        self.assertEqual(self.paras("<p>unclosed <b>bold"), ["unclosed bold"])
        self.assertEqual(self.paras("<p>a<br/>b<hr/>c</p>"), ["a", "b", "c"])
        self.assertEqual(self.paras("text <!-- comment --> <![CDATA[x]]> after"), ["text after"])

    def test_empty_pages(self) -> None:
        self.assertEqual(self.paras(""), [])
        self.assertEqual(self.paras("<html><body></body></html>", "body"), [])
        self.assertEqual(self.paras("<p>outside the root</p>", "article"), [])

    def test_bind_drop_patterns(self) -> None:
        bind = corpora.spec().source("bind9-doc").params
        assert isinstance(bind, corpora.HtmlParams)
        for text, clean in [("Zones\u00b6", "Zones"),
                            ("Fixed a crash. [GL #4586] [GL !7212]", "Fixed a crash."),
                            ("[GL #1]", ""),
                            ("a [GL #x] stays", "a [GL #x] stays"),
                            ("", "")]:
            with self.subTest(text=text):
                self.assertEqual(corpora.drop_all(text, bind.drop), clean)
        self.assertEqual(corpora.drop_all("unchanged", []), "unchanged")


# Shaped like `groff -k -t -man -Tutf8 -P-cbou -rHY=0 -rLL=20000n -rcR=1` of udplite.7.
MAN = (
    "udplite(7)" + " " * 60 + "Miscellaneous Information Manual" + " " * 60 + "udplite(7)\n"
    "\n\n\nNAME\n       udplite - Lightweight User Datagram Protocol\n\n"
    "SYNOPSIS\n       #include <sys/socket.h>\n\n       sockfd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);\n\n"
    "DESCRIPTION\n       See the homepage \u27e8http://example.org/udplite\u27e9 for more.\n\n"
    "       \u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\u2500\n"
    "       \u2502Interface \u2502 Attribute \u2502\n"
    "\n\nLinux man-pages 6.03" + " " * 60 + "2023-02-05" + " " * 60 + "udplite(7)\n\n"
)


class ManTests(unittest.TestCase):
    def test_page(self) -> None:
        self.assertEqual(corpora.man_to_paragraphs(MAN), [
            "NAME\nudplite - Lightweight User Datagram Protocol",
            "SYNOPSIS\n#include <sys/socket.h>",
            "sockfd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);",
            "DESCRIPTION\nSee the homepage for more.",
            "Interface | Attribute",
        ])

    def test_too_short_or_empty(self) -> None:
        self.assertEqual(corpora.man_to_paragraphs(""), [])
        self.assertEqual(corpora.man_to_paragraphs("\n\nheader\nfooter\n\n"), [])
        self.assertEqual(corpora.man_to_paragraphs("header\nonly line\nfooter"), ["only line"])


# Entries as stored in foldoc.dict.dz.
FOLDOC_100VG = (
    "100BaseVG\n100VG-AnyLAN\n\n   <networking> A 100 {MBps} {Ethernet} standard specified to run\n"
    "   over four pairs of {category 3} {UTP} wires.\n\n   (1998-06-30)\n\n"
)
FOLDOC_ABBREV = "abbrev\n\n   <jargon> /*-breev'/ Common abbreviation for\n   \"abbreviation\".\n\n   (1995-02-27)\n\n"


class FoldocTests(unittest.TestCase):
    def setUp(self) -> None:
        params = corpora.spec().source("dict-foldoc").params
        assert isinstance(params, corpora.FoldocParams)
        self.p = params

    def entry(self, text: str) -> list[str] | None:
        return corpora.foldoc_entry(text, self.p)

    def test_dictd_base64(self) -> None:
        self.assertEqual(corpora.dict_b64("A"), 0)
        self.assertEqual(corpora.dict_b64("/"), 63)
        self.assertEqual(corpora.dict_b64("BA"), 64)
        self.assertEqual(corpora.dict_b64("Mou"), 12 * 4096 + 40 * 64 + 46)
        self.assertEqual(corpora.dict_b64(""), 0)

    def test_clean(self) -> None:
        self.assertEqual(corpora.foldoc_clean("an {Ethernet} {token\n   ring} frame"), "an Ethernet token\n   ring frame")
        self.assertEqual(corpora.foldoc_clean("see {RFC 959 (http://x.org/rfc959)}."), "see RFC 959.")
        self.assertEqual(corpora.foldoc_clean("Home page (https://example.org/a)."), "Home page .")
        self.assertEqual(corpora.foldoc_clean(""), "")

    def test_index(self) -> None:
        index = ("00-database-short\tJ\tBS\n100vg-anylan\tEOt\tR/\n100basevg\tEOt\tR/\n"
                 "abbrev\tMou\tBn\n00databaseinfo\tB\tC\n")
        self.assertEqual(corpora.foldoc_index(index, self.p.skip_headwords, "foldoc.index"),
                         [(corpora.dict_b64("EOt"), corpora.dict_b64("R/")),
                          (corpora.dict_b64("Mou"), corpora.dict_b64("Bn"))])
        self.assertEqual(corpora.foldoc_index("", self.p.skip_headwords, "foldoc.index"), [])

    def test_malformed_index_line(self) -> None:
        with self.assertRaisesRegex(CorpusError, "foldoc.index:2: expected"):
            corpora.foldoc_index("abbrev\tMou\tBn\nbroken line\n", self.p.skip_headwords, "foldoc.index")

    def test_entry_selected_by_category(self) -> None:
        self.assertEqual(self.entry(FOLDOC_100VG), [
            "100BaseVG: 100VG-AnyLAN",
            "A 100 MBps Ethernet standard specified to run over four pairs of category 3 UTP wires.",
        ])

    def test_entry_without_category_or_terms_is_not_selected(self) -> None:
        self.assertIsNone(self.entry(FOLDOC_ABBREV))
        self.assertIsNone(self.entry(""))
        self.assertIsNone(self.entry("headword only"))

    def test_entry_selected_by_three_terms_not_by_urls_or_availability_notes(self) -> None:
        selected = "router\n\n   <hardware> A device that forwards {packets} between networks by routing.\n"
        self.assertEqual(self.entry(selected),
                         ["router: A device that forwards packets between networks by routing."])
        two = "widget\n\n   <hardware> A {router} for packets. FTP from (ftp://a.org/tcp/udp/dns).\n"
        self.assertIsNone(self.entry(two))

    def test_introduction_and_multi_sense_entries(self) -> None:
        intro = "FOLDOC\n\n   <introduction> A dictionary of networking, protocol and internet terms.\n"
        self.assertIsNone(self.entry(intro))
        multi = ("frame\n\n   1. <networking> A packet on a link.\n\n   (1997-01-01)\n\n"
                 "   2. <graphics> One picture.\n\n   (2003-03-03)\n")
        self.assertEqual(self.entry(multi), ["frame: 1. A packet on a link.", "2. One picture."])

    def test_non_ascii_entry(self) -> None:
        entry = "Zürich\n\n   <networking> Réseau {Ethernet} à Zürich.\n"
        self.assertEqual(self.entry(entry), ["Zürich: Réseau Ethernet à Zürich."])


CHUNK_BYTES = corpora.spec().split.chunk_bytes


class SplitTests(unittest.TestCase):
    def test_empty(self) -> None:
        self.assertEqual(corpora.split_chunks([]), ([], [], 0))

    def test_small_source_is_all_train(self) -> None:
        self.assertEqual(corpora.split_chunks(["a", "b"]), (["a", "b"], [], 1))

    def test_chunk_ten_of_twenty_is_held_out(self) -> None:
        size = CHUNK_BYTES
        paragraphs = [f"{i:02d}" + "x" * (size - 4) for i in range(45)]  # each one exactly a chunk
        train, held, chunks = corpora.split_chunks(paragraphs)
        self.assertEqual(chunks, 45)
        self.assertEqual(held, [paragraphs[10], paragraphs[30]])
        self.assertEqual(train, [p for i, p in enumerate(paragraphs) if i not in (10, 30)])

    def test_chunks_count_utf8_bytes_and_never_cut_a_paragraph(self) -> None:
        half = CHUNK_BYTES // 2
        exact = "\u00e9" * (half - 1)      # 2 bytes each + 2 for the separator: exactly CHUNK_BYTES
        short = "\u00e9" * (half - 2)      # two bytes short
        self.assertEqual(corpora.split_chunks([exact, "a"])[2], 2)        # exact closes a chunk alone
        self.assertEqual(corpora.split_chunks([short, "a"])[2], 1)        # short + "a" (3 bytes) close one
        self.assertEqual(corpora.split_chunks([short, "a", "b"])[2], 2)
        self.assertEqual(corpora.split_chunks(["x" * (CHUNK_BYTES - 3), "a"])[2], 1)
        self.assertEqual(corpora.split_chunks(["x" * 10 * CHUNK_BYTES]), (["x" * 10 * CHUNK_BYTES], [], 1))


class CutTests(unittest.TestCase):
    """corpora.py cut, which replaced quickstart.sh's cut_text with the same output."""

    def test_evenly_spaced_blocks_of_whole_paragraphs(self) -> None:
        paragraphs = [str(i) * corpora.CUT_BLOCK_CHARS for i in range(10)]  # each one a block
        text = "\n\n".join(paragraphs)
        total = 10 * (corpora.CUT_BLOCK_CHARS + 2)  # the size measure: characters + 2 per paragraph
        self.assertEqual(corpora.cut_text(text, total // 2),
                         "\n\n".join(paragraphs[j] for j in (1, 3, 5, 7, 9)) + "\n")
        self.assertEqual(corpora.cut_text(text, total // 10), paragraphs[9] + "\n")
        # with a final newline the measure is one more, the share just under 1/2: blocks 2, 4, 6, 8
        self.assertEqual(corpora.cut_text(text + "\n", total // 2),
                         "\n\n".join(paragraphs[j] for j in (2, 4, 6, 8)) + "\n")

    def test_blocks_gather_short_paragraphs(self) -> None:
        short = ["a" * 1000] * 5 + ["b" * 1000] * 5  # two blocks: 5 x 1000 >= 4096
        text = "\n\n".join(short)
        self.assertEqual(corpora.cut_text(text, 5010), "\n\n".join(short[5:]) + "\n")

    def test_size_beyond_the_text_keeps_everything(self) -> None:
        # the last paragraph keeps the corpus file's final newline, and one more is added
        self.assertEqual(corpora.cut_text("a\n\nb\n", 10**9), "a\n\nb\n\n")
        self.assertEqual(corpora.cut_text("x\n", 4), "x\n\n")
        # below the text's size, a text of one block keeps none of it
        self.assertEqual(corpora.cut_text("x\n", 3), "\n")

    def test_empty_and_non_ascii(self) -> None:
        self.assertEqual(corpora.cut_text("", 5), "\n")
        text = "\n\n".join(["é" * 4096, "日" * 4096])  # characters, not bytes, are counted
        self.assertEqual(corpora.cut_text(text, 4098), "日" * 4096 + "\n")

    def run_cut(self, data: bytes, size: str) -> tuple[int, bytes | None]:
        with tempfile.TemporaryDirectory() as d:
            src, out = Path(d) / "in.txt", Path(d) / "out.txt"
            src.write_bytes(data)
            with contextlib.redirect_stderr(io.StringIO()):
                status = corpora.main(["cut", str(src), size, str(out)])
            return status, out.read_bytes() if out.exists() else None

    def test_command(self) -> None:
        self.assertEqual(self.run_cut(b"one\n\ntwo\n", "100"), (0, b"one\n\ntwo\n\n"))
        # 0: the file as it is, byte for byte (no newline translation, not even decoded)
        self.assertEqual(self.run_cut(b"a\r\n\r\nb\xff", "0"), (0, b"a\r\n\r\nb\xff"))
        self.assertEqual(self.run_cut(b"", "0"), (0, b""))
        # otherwise read with universal newlines, like the shell version's open()
        self.assertEqual(self.run_cut(b"a\r\n\r\nb\rc", "100"), (0, b"a\n\nb\nc\n"))
        self.assertEqual(self.run_cut("é\n".encode(), "4"), (0, "é\n\n".encode()))
        self.assertEqual(self.run_cut(b"tiny\n", "1"), (0, b"\n"))
        self.assertEqual(self.run_cut(b"\xff", "1"), (2, None))

    def test_command_errors(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(corpora.main(["cut", "/nonexistent/in.txt", "5", "/nonexistent/out.txt"]), 2)
        self.assertIn("corpora: cut: [Errno 2] No such file or directory: '/nonexistent/in.txt'", err.getvalue())
        for size in ("-1", "ten"):
            with self.subTest(size=size), self.assertRaises(SystemExit) as e:
                with contextlib.redirect_stderr(io.StringIO()):
                    corpora.main(["cut", "in.txt", size, "out.txt"])
            self.assertEqual(e.exception.code, 2)


if __name__ == "__main__":
    unittest.main()
