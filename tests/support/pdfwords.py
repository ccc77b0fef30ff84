"""Where a PDF prints its words, read with poppler's `pdftotext -bbox`: to check that text
wraps in reading order, right-to-left paragraphs included."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Word:
    text: str  # NFKC, in reading order
    left: float
    top: float


def placed_words(pdf: Path, *, page: int) -> list[Word]:
    """The words of a page with their place; right-to-left words turned back to reading order
    (pdftotext gives their letters in the order they are drawn, left to right)."""
    html = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-f", str(page), "-l", str(page), "-bbox", str(pdf), "-"],
        check=True, capture_output=True, text=True).stdout
    words = []
    for left, top, raw in re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>([^<]*)</word>',
                                     html):
        word = unicodedata.normalize("NFKC", raw)
        if any(unicodedata.bidirectional(c) in ("R", "AL") for c in word):
            word = word[::-1]
        words.append(Word(word, float(left), float(top)))
    return words


def arabic_lines(pdf: Path, *, page: int) -> list[list[Word]]:
    """The page's Arabic words, line by line from the top, each line from right to left."""
    words = [w for w in placed_words(pdf, page=page)
             if any("\u0600" <= c <= "\u06ff" for c in w.text)]
    tops = sorted({round(w.top) for w in words})
    return [sorted((w for w in words if round(w.top) == top), key=lambda w: -w.left)
            for top in tops]
