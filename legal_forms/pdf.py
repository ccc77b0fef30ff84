"""Font fallback and safe paragraph markup for the legal forms' PDFs.

The evidence report (`evidence/report.py`) solves the same problem, but its font loader and
markup class are private there (`_load_fonts`, `_Text`); this module is the minimum the forms
need and imports the report's public constants (font directories and file lists, colours), so
the two can later be merged into one public helper.

ReportLab's built-in Helvetica draws only code page 1252. Any other character (Arabic, Cyrillic
...) is drawn, run by run, in the first embedded TrueType font that has it (DejaVu Sans first).
Control and direction-override characters are shown as their code point (`[U+202E]`) so
nothing hides. Arabic is neither shaped (letters joined) nor reordered: ReportLab 4 does that
only with its optional `uharfbuzz` and `rlbidi` packages, which are not dependencies here, so
right-to-left text prints letter by letter in the order it is stored (logical order); the exact
text is in the JSON rendering.
"""

# ReportLab ships no type information.
# mypy: disable-error-code="import-untyped"

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from evidence.report import FALLBACK_FONTS, FONT_DIRS

_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")
_JOINERS = frozenset("\u200c\u200d")
MAX_VALUE_CHARS = 6000


@dataclass(frozen=True)
class _Font:
    name: str
    codepoints: frozenset[int]


@cache
def fallback_fonts(dirs: tuple[Path, ...] = FONT_DIRS,
                   wanted: tuple[str, ...] = FALLBACK_FONTS) -> tuple[_Font, ...]:
    """The TrueType fonts found, registered with ReportLab (process-wide, once)."""
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


def _register(path: Path) -> _Font | None:
    name = "LegalForms-" + path.stem
    try:
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(path)))
        font = pdfmetrics.getFont(name)
    except Exception:  # an unreadable font file is simply not used
        return None
    if not isinstance(font, TTFont):
        return None
    return _Font(name, frozenset(font.face.charToGlyph))


def _builtin_has(char: str) -> bool:
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _show_code(char: str) -> bool:
    if char in _JOINERS:
        return False
    if char in _BIDI_CONTROLS:
        return True
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def is_right_to_left(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


class Markup:
    """Turns any text into ReportLab paragraph markup with per-run font fallback."""

    def __init__(self, fonts: Sequence[_Font] | None = None) -> None:
        self.fonts = tuple(fallback_fonts() if fonts is None else fonts)
        self.right_to_left_seen = False
        self.missing_glyphs = False

    def __call__(self, value: str, *, limit: int = MAX_VALUE_CHARS) -> str:
        cut = ""
        if len(value) > limit:
            cut = f" [... {len(value) - limit} more characters; see the JSON rendering]"
            value = value[:limit]
        parts = []
        for line in value.split("\n"):
            parts.append("".join(self._line(line)))
        return "<br/>".join(parts) + escape(cut)

    def _line(self, line: str) -> Iterator[str]:
        for font, run in self._runs(line):
            if font is None:
                yield escape(run)
            elif font == "":
                self.missing_glyphs = True
                yield "[" + " ".join(f"U+{ord(c):04X}" for c in run) + "]"
            else:
                if is_right_to_left(run):
                    self.right_to_left_seen = True
                yield f'<font name="{font}">{escape(run)}</font>'

    def _runs(self, value: str) -> Iterator[tuple[str | None, str]]:
        current: str | None = None
        run: list[str] = []
        for char in value:
            if _show_code(char):
                font: str | None = ""
            elif _builtin_has(char):
                font = None
            else:
                font = next((f.name for f in self.fonts if ord(char) in f.codepoints), "")
            if run and font != current:
                yield current, "".join(run)
                run = []
            current = font
            run.append(char)
        if run:
            yield current, "".join(run)
