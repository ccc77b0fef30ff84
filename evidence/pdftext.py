"""Any text, safely, in a ReportLab PDF: font fallback per run of characters, and markup escaping.

Shared by the evidence report (`evidence/report.py`) and the legal forms
(`legal_forms/instruments/render.py`). Page titles, handles and names come from hostile pages
and from people writing in Arabic, Persian, Pashto, Kurdish, Tigrinya, Cyrillic...:

- ReportLab's built-in fonts draw only code page 1252; any other character is drawn, run by run,
  in the first embedded TrueType font that has it (DejaVu Sans first). A character no font has
  is printed as its code point (`[U+1275]`), never as a blank box.
- Control and direction-override characters (U+202E ...) are printed as code points too, so
  nothing in the evidence hides or reorders what is printed around it.
- Everything is escaped for ReportLab's paragraph markup: a title like `<b>&` prints as written.
- PDF text is drawn left to right, so a line holding right-to-left text is put in display
  order (the Unicode bidirectional algorithm, `python-bidi`) and Arabic-script letters are
  joined (their presentation forms, `arabic-reshaper`) before it is drawn: names and handles
  read as they do on the page. A right-to-left paragraph longer than a line must be broken
  before it is reordered (UAX #9, section 3.4), or it would start with its last words:
  `Text.wrapped` does that for a given width. Text extracted from the PDF comes back in
  presentation forms (NFKC turns them into plain letters); `right_to_left_seen` tells the
  caller to say that the exact characters are in the JSON beside the PDF.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import arabic_reshaper
from bidi import get_display
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# TrueType files tried, in order, for characters the built-in fonts lack. Only TrueType
# outlines: ReportLab cannot embed CFF-flavoured OpenType fonts.
FALLBACK_FONTS = (
    "DejaVuSans.ttf",
    "NotoSans-Regular.ttf",
    "NotoSansArabic-Regular.ttf",
    "NotoNaskhArabic-Regular.ttf",
    "NotoSansEthiopic-Regular.ttf",
    "AbyssinicaSIL-Regular.ttf",
    "FreeSans.ttf",
    "LiberationSans-Regular.ttf",
)
MONO_FALLBACK_FONTS = ("DejaVuSansMono.ttf", "NotoSansMono-Regular.ttf", "FreeMono.ttf",
                       "LiberationMono-Regular.ttf")
MAX_VALUE_CHARS = 8000

_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")
_JOINERS = frozenset("\u200c\u200d")  # part of Persian and Kurdish spelling, drawn invisibly


def _break_in_reading_order(line: str, text: Text, style: ParagraphStyle,
                            width: float) -> list[str]:
    """The line broken, in reading order, into pieces that each fit `width` when printed.

    Words are measured as printed (joined, in their fonts); Arabic letters join only within a
    word, so widths add up. A word wider than the line (a handle such as ``مهرب_الحدود_...``)
    is cut here, in reading order, after an ``_ . - /`` where one is near: left to ReportLab,
    it would be cut after reordering, and its first printed line would hold its end.
    """
    space = pdfmetrics.stringWidth(" ", style.fontName, style.fontSize)
    measured: dict[str, float] = {}

    def measure(word: str) -> float:
        if word not in measured:
            measured[word] = Paragraph(text.markup(word), style).minWidth()
        return measured[word]

    # A point to spare, so that ReportLab's own breaking never splits a piece again.
    room = width - 1
    pieces: list[str] = []
    current: list[str] = []
    used = 0.0
    for word in (w for w in line.split(" ") if w):
        if measure(word) > room:
            *whole, word = _cut_word(word, lambda part: measure(part) <= room)
            if current:
                pieces.append(" ".join(current))
            pieces += whole
            current, used = [word], measure(word)
            continue
        needed = measure(word) + (space if current else 0.0)
        if current and used + needed > room:
            pieces.append(" ".join(current))
            current, used = [word], measure(word)
        else:
            current.append(word)
            used += needed
    if current:
        pieces.append(" ".join(current))
    return pieces


def _cut_word(word: str, fits: Callable[[str], bool]) -> list[str]:
    """The word cut, in reading order, into parts that each fit (one character at least)."""
    parts: list[str] = []
    while len(word) > 1 and not fits(word):
        low, high = 1, len(word) - 1  # the longest start that fits, by halving
        while low < high:
            middle = (low + high + 1) // 2
            if fits(word[:middle]):
                low = middle
            else:
                high = middle - 1
        cut = low
        soft = max(word.rfind(mark, 0, cut) for mark in "_.-/") + 1
        if soft > cut // 2:
            cut = soft
        while 1 < cut < len(word) and unicodedata.combining(word[cut]):
            cut -= 1  # a vowel sign stays with its letter
        parts.append(word[:cut])
        word = word[cut:]
    return [*parts, word]


@dataclass(frozen=True)
class Font:
    name: str
    codepoints: frozenset[int]


def load_fonts(dirs: Sequence[Path], wanted: Sequence[str]) -> tuple[Font, ...]:
    """The wanted TrueType files found under `dirs`, registered with ReportLab, in order."""
    found: dict[str, Path] = {}
    for directory in dirs:
        if directory.is_dir():
            for path in sorted(directory.rglob("*.ttf")):
                found.setdefault(path.name, path)
    fonts = []
    for file_name in wanted:
        if file_name in found:
            font = _register(found[file_name])
            if font is not None:
                fonts.append(font)
    return tuple(fonts)


def _register(path: Path) -> Font | None:
    name = "Evidence-" + path.stem
    try:
        # ReportLab's font registry is process-wide; a font read once is reused.
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(path)))
        font = pdfmetrics.getFont(name)
    except Exception:  # an unreadable or unsupported font file is simply not used
        return None
    if not isinstance(font, TTFont):
        return None
    return Font(name, frozenset(font.face.charToGlyph))


def _builtin_has(char: str) -> bool:
    # ReportLab's standard fonts use WinAnsiEncoding, i.e. code page 1252.
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _must_show_code(char: str) -> bool:
    """Whether a character is printed as its code point rather than drawn."""
    if char in _JOINERS:
        return False
    if char in _BIDI_CONTROLS:
        return True
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def is_right_to_left(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def starts_right_to_left(text: str) -> bool:
    """Whether the text's first strong character is right-to-left: the paragraph's direction
    (UAX #9 rules P2-P3), so it is aligned to the right."""
    for char in text:
        direction = unicodedata.bidirectional(char)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


def _drawable(text: str, fonts: tuple[Font, ...]) -> bool:
    """Whether some font has every right-to-left letter of the text."""
    letters = {ord(c) for c in text if unicodedata.bidirectional(c) in ("R", "AL")}
    return any(letters <= f.codepoints for f in fonts)


def display_order(line: str) -> str:
    """One line as it is to be drawn left to right: joined letters, right-to-left runs turned.

    Controls that are shown as code points (a direction override planted in a page title) cut
    the line into pieces ordered separately, so they never reorder the text around them.
    """
    if not is_right_to_left(line):
        return line
    out: list[str] = []
    piece: list[str] = []
    for char in line:
        if _must_show_code(char):
            if piece:
                out.append(get_display(arabic_reshaper.reshape("".join(piece))))
                piece = []
            out.append(char)
        else:
            piece.append(char)
    if piece:
        out.append(get_display(arabic_reshaper.reshape("".join(piece))))
    return "".join(out)


class Text:
    """Turns any string into safe paragraph markup, choosing a font for each run of text.

    `where` names where a value cut at `limit` can be read whole; with `line_breaks`, a newline
    becomes a line break (otherwise it is shown as its code point, like any control).
    """

    def __init__(self, fonts: tuple[Font, ...] | None = None,
                 mono_fonts: tuple[Font, ...] = (), *, where: str = "elsewhere",
                 line_breaks: bool = False) -> None:
        self.fonts = load_fonts(FONT_DIRS, FALLBACK_FONTS) if fonts is None else fonts
        self.mono_fonts = mono_fonts
        self.where = where
        self.line_breaks = line_breaks
        self.right_to_left_seen = False
        self.code_points_shown = False

    def markup(self, value: str, *, mono: bool = False, limit: int = MAX_VALUE_CHARS,
               where: str | None = None) -> str:
        return self._markup(value, limit, where, lambda line: self._line(line, mono))

    __call__ = markup

    def wrapped(self, value: str, style: ParagraphStyle, width: float, *,
                limit: int = MAX_VALUE_CHARS, where: str | None = None) -> str:
        """Markup for a paragraph of `width` points in `style`: like `markup`, except that a
        line holding right-to-left text is broken in reading order first, then each piece is
        reordered, so the paragraph reads from its first words on the top line down."""

        def line_markup(line: str) -> str:
            if not is_right_to_left(line):
                return self._line(line, False)
            return "<br/>".join(self._line(piece, False)
                                for piece in _break_in_reading_order(line, self, style, width))

        return self._markup(value, limit, where, line_markup)

    def _markup(self, value: str, limit: int, where: str | None,
                line_markup: Callable[[str], str]) -> str:
        cut = ""
        if len(value) > limit:
            cut = (f" [... {len(value) - limit} more characters not shown here;"
                   f" the whole value is {where or self.where}]")
            value = value[:limit]
        lines = value.split("\n") if self.line_breaks else [value]
        body = "<br/>".join(line_markup(line) for line in lines)
        if cut:
            body += f'<font color="#555555">{escape(cut)}</font>'
        return body

    def _line(self, value: str, mono: bool) -> str:
        fonts = (*self.mono_fonts, *self.fonts) if mono else self.fonts
        if is_right_to_left(value):
            self.right_to_left_seen = True
            if _drawable(value, fonts):  # else its code points are shown, in stored order
                value = display_order(value)
        parts = []
        for font, run in self._runs(value, fonts):
            if font is None:
                parts.append(escape(run))
            elif font == "":
                self.code_points_shown = True
                parts.append("[" + " ".join(f"U+{ord(c):04X}" for c in run) + "]")
            else:
                parts.append(f'<font name="{font}">{escape(run)}</font>')
        return "".join(parts)

    @staticmethod
    def _runs(value: str, fonts: tuple[Font, ...]) -> Iterator[tuple[str | None, str]]:
        """(font name, text) runs: None for the built-in font, "" for code points."""
        current: str | None = None
        run: list[str] = []
        for char in value:
            if _must_show_code(char):
                font: str | None = ""
            elif _builtin_has(char):
                font = None
            else:
                font = next((f.name for f in fonts if ord(char) in f.codepoints), "")
            if run and font != current:
                yield current, "".join(run)
                run = []
            current = font
            run.append(char)
        if run:
            yield current, "".join(run)
