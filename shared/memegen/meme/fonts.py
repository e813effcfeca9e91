"""The caption fonts, and which characters each can draw (read from its ``cmap`` table).

A caption is drawn in the first font that has a glyph for every one of its characters: Fjalla
One (the classic condensed look, Latin) and then Roboto Black (Latin, Greek and Cyrillic), both
from registry packages under open licences (OFL, Apache 2.0). A caption with a character no
font has is refused before anything is drawn, so that no meme ever shows an empty box.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

from memegen.errors import ConfigurationError


@dataclass(frozen=True)
class CaptionFont:
    """One caption font: its file and the code points it has glyphs for."""

    name: str
    path: Path
    chars: frozenset[int]

    def draws(self, text: str) -> bool:
        """Whether every character of ``text`` (spaces aside) has a glyph here."""
        return all(ord(char) in self.chars for char in text if not char.isspace())


# What a person is told they may write: the scripts the fonts cover together.
SCRIPTS = "Latin, Greek and Cyrillic letters, digits and punctuation"


@functools.cache
def caption_fonts() -> tuple[CaptionFont, ...]:
    """The caption fonts, in the order they are tried. ``ConfigurationError`` when none is installed."""
    fonts = []
    for name, module, key in (
        ("Fjalla One", "font_fjallaone", "FjallaOne"),
        ("Roboto Black", "font_roboto", "RobotoBlack"),
    ):
        try:
            files = __import__(module).font_files
        except ImportError:
            continue
        path = Path(files[key])
        if path.is_file():
            fonts.append(CaptionFont(name, path, read_cmap(path.read_bytes())))
    if not fonts:
        raise ConfigurationError("no caption font is installed: pip install -r requirements.txt")
    return tuple(fonts)


def font_for(text: str) -> CaptionFont | None:
    """The first caption font that draws all of ``text`` (as drawn: upper case), or None."""
    shown = text.upper()
    return next((font for font in caption_fonts() if font.draws(shown)), None)


def undrawable(text: str) -> str:
    """The characters of ``text`` (as drawn: upper case) that no one caption font draws along with the rest."""
    if font_for(text) is not None:
        return ""
    widest = max(caption_fonts(), key=lambda font: len(font.chars))
    missing = dict.fromkeys(char for char in text.upper() if not char.isspace() and ord(char) not in widest.chars)
    return "".join(missing)


def read_cmap(data: bytes) -> frozenset[int]:
    """The code points a TrueType/OpenType font maps to a glyph (its Unicode ``cmap`` subtable, format 4 or 12)."""
    tables = {
        data[offset : offset + 4]: struct.unpack_from(">I", data, offset + 8)[0]
        for offset in range(12, 12 + 16 * struct.unpack_from(">H", data, 4)[0], 16)
    }
    if b"cmap" not in tables:
        raise ValueError("not a font with a cmap table")
    cmap = tables[b"cmap"]
    count = struct.unpack_from(">H", data, cmap + 2)[0]
    subtables = {}
    for index in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * index)
        subtables[(platform, encoding)] = cmap + offset
    # Full Unicode (format 12) where there is one, else the Basic Multilingual Plane (format 4).
    for key in ((3, 10), (0, 4), (0, 6), (3, 1), (0, 3), (0, 1), (0, 0)):
        if key in subtables:
            start = subtables[key]
            kind = struct.unpack_from(">H", data, start)[0]
            if kind == 12:
                return _format_12(data, start)
            if kind == 4:
                return _format_4(data, start)
    raise ValueError("the font has no Unicode cmap subtable of format 4 or 12")


def _format_4(data: bytes, start: int) -> frozenset[int]:
    segments = struct.unpack_from(">H", data, start + 6)[0] // 2
    ends = struct.unpack_from(f">{segments}H", data, start + 14)
    starts = struct.unpack_from(f">{segments}H", data, start + 16 + 2 * segments)
    deltas = struct.unpack_from(f">{segments}h", data, start + 16 + 4 * segments)
    range_at = start + 16 + 6 * segments
    ranges = struct.unpack_from(f">{segments}H", data, range_at)
    chars = set()
    for index, (first, last, delta, offset) in enumerate(zip(starts, ends, deltas, ranges, strict=True)):
        for char in range(first, last + 1):
            if char == 0xFFFF:
                continue
            if offset == 0:
                glyph = (char + delta) & 0xFFFF
            else:
                # idRangeOffset counts bytes from its own slot to the glyph id.
                at = range_at + 2 * index + offset + 2 * (char - first)
                glyph = struct.unpack_from(">H", data, at)[0]
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                chars.add(char)
    return frozenset(chars)


def _format_12(data: bytes, start: int) -> frozenset[int]:
    groups = struct.unpack_from(">I", data, start + 12)[0]
    chars: set[int] = set()
    for index in range(groups):
        first, last, glyph = struct.unpack_from(">III", data, start + 16 + 12 * index)
        chars.update(range(first if glyph else first + 1, last + 1))
    return frozenset(chars)
