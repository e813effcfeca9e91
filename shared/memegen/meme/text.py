"""Caption text at one size: characters measured once, lines wrapped at spaces, shortened with an ellipsis.

What ``memegen.meme.layout`` sizes captions with; the boxes are those Pillow draws.
"""

from __future__ import annotations

import math
import unicodedata
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

# The distance between baselines, as a multiple of the capital height: close
# like classic memes, loose enough that outlines of adjacent lines do not merge.
_LINE_PITCH = 1.3
_ELLIPSIS = "..."  # three dots, not "…": every font has the full stop


@lru_cache(maxsize=256)
def _freetype(path: Path, size: int) -> ImageFont.FreeTypeFont:
    # Basic layout rather than Raqm: faster, and the same pixels wherever the wheel's
    # FreeType is the same (the goldens rely on that). The fonts' scripts (Latin, Greek,
    # Cyrillic) need no shaping, so Raqm would buy nothing.
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)


# A run of characters across, relative to where it starts: the pen's advance,
# and the left and right edges of the characters' boxes.
_Span = tuple[float, float, float]
_EMPTY: _Span = (0.0, 0.0, 0.0)


class _Font:
    """The caption font at one size, with what wrapping needs measured once per character.

    Pillow's basic layout applies no kerning, so the box it gives a line follows
    from its characters' boxes: across, from the leftmost to the rightmost edge
    of the characters' boxes set one advance after another (the pen's end counts
    too); up and down, their union; and the outline on every side. Adding cached
    numbers in Python gives that same box many times faster than asking FreeType
    for every candidate line (a test checks the two agree).
    """

    # Enough for any alphabet a caption uses; more distinct characters than this
    # (a flood of random CJK, say) are measured each time rather than kept.
    _MAX_GLYPHS = 1024

    def __init__(self, path: Path, size: int) -> None:
        self.size = size
        self.freetype = _freetype(path, size)
        self.stroke = max(1, round(size / 12))
        self._glyphs: dict[str, tuple[float, int, int, int, int]] = {}
        _, _, cap_top, _, cap_bottom = self._glyph("H")
        self.pitch = round(_LINE_PITCH * (cap_bottom - cap_top)) + self.stroke

    def _glyph(self, char: str) -> tuple[float, int, int, int, int]:
        """Advance, then the box of one character for the "la" anchor: left, top, right, bottom."""
        glyph = self._glyphs.get(char)
        if glyph is None:
            left, top, right, bottom = self.freetype.getbbox(char, anchor="la")
            glyph = (self.freetype.getlength(char), int(left), int(top), int(right), int(bottom))
            if len(self._glyphs) < self._MAX_GLYPHS:
                self._glyphs[char] = glyph
        return glyph

    def span(self, text: str) -> _Span:
        """The span of a run of characters."""
        pen, left, right = _EMPTY
        for char in text:
            advance, glyph_left, _, glyph_right, _ = self._glyph(char)
            left, right = min(left, pen + glyph_left), max(right, pen + glyph_right)
            pen += advance
        return pen, left, right

    @staticmethod
    def join(first: _Span, second: _Span) -> _Span:
        """The span of two runs one after the other."""
        pen, left, right = first
        advance, second_left, second_right = second
        return pen + advance, min(left, pen + second_left), max(right, pen + second_right)

    def width(self, span: _Span) -> int:
        """The width of the box Pillow draws a run in, outline included."""
        pen, left, right = span
        return math.ceil(max(right, pen)) - math.floor(left) + 2 * self.stroke

    def box(self, text: str) -> tuple[int, int, int, int]:
        """What ``font.getbbox(text, stroke_width=stroke, anchor="la")`` gives, for a non-empty text."""
        pen, left, right = self.span(text)
        top = min(self._glyph(char)[2] for char in text)
        bottom = max(self._glyph(char)[4] for char in text)
        stroke = self.stroke
        return math.floor(left) - stroke, top - stroke, math.ceil(max(right, pen)) + stroke, bottom + stroke


@lru_cache(maxsize=256)
def _font(size: int, path: Path) -> _Font:
    return _Font(path, size)


def _clean(text: str) -> str:
    # Control and format characters (tabs, zero-width joiners, direction marks,
    # lone surrogates) would show as boxes or do nothing useful: spaces instead.
    kept = (c if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Cs") else " " for c in text)
    return "".join(kept)


def _split_word(word: str, font: _Font, width: int) -> list[tuple[str, _Span]]:
    """Pieces of a word too wide for a line, each as long as fits (at least one character)."""
    pieces: list[tuple[str, _Span]] = []
    piece, span = "", _EMPTY
    for char in word:
        longer = font.join(span, font.span(char))
        if piece and font.width(longer) > width:
            pieces.append((piece, span))
            piece, longer = "", font.span(char)
        piece, span = piece + char, longer
    pieces.append((piece, span))
    return pieces


def _wrap(
    paragraphs: list[list[str]], font: _Font, width: int, *, split_words: bool, max_lines: int
) -> list[str] | None:
    """Greedy wrapping at spaces; None when a word is wider than a line and may not be split.

    Stops at ``max_lines + 1`` lines: that many already says the text is too
    long, and a huge caption then costs no more than one that just overflows.
    """
    space = font.span(" ")
    lines: list[str] = []
    for words in paragraphs:
        line: list[str] = []
        span = _EMPTY
        for word in words:
            word_span = font.span(word)
            if line:
                longer = font.join(font.join(span, space), word_span)
                if font.width(longer) <= width:
                    line.append(word)
                    span = longer
                    continue
                lines.append(" ".join(line))
            if font.width(word_span) <= width:
                line, span = [word], word_span
            elif split_words:
                *full, (last, span) = _split_word(word, font, width)
                lines.extend(piece for piece, _ in full)
                line = [last]
            else:
                return None
            if len(lines) > max_lines:
                return lines
        lines.append(" ".join(line))
        if len(lines) > max_lines:
            return lines
    return lines


def _ellipsize(text: str, font: _Font, width: int) -> str:
    """The longest prefix of ``text`` that fits ``width`` with an ellipsis after it ("" if none does)."""
    for end in range(len(text), -1, -1):
        candidate = text[:end].rstrip() + _ELLIPSIS
        if font.width(font.span(candidate)) <= width:
            return candidate
    return ""
