"""Where the caption lines go: the bands, sizes and wrapping of a meme's two captions, faces kept clear.

The classic style: one caption at the top and one at the bottom, each as large as fits.
Where the photo has faces, no line may cover one: each caption goes in the free band
(the full width of the picture above, below or between the faces) it fits legibly, and
where none does, in a plain bar added above or below the picture (the "modern" meme).
``lay_out`` gives a plain value (``Layout``: blocks, where they go, boxes in the meme's
pixels) that ``memegen.meme.render`` draws onto a picture, or any frame of one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import ImageFont

from memegen.errors import CaptionRefused
from memegen.meme.fonts import font_for, undrawable
from memegen.meme.text import _clean, _ellipsize, _Font, _wrap
from memegen.meme.text import _font as _font

# Below this the text is unreadable anyway; a caption that does not fit even
# here is broken inside words and, if still too long, cut with an ellipsis.
_MIN_SIZE = 8
# A caption whose words fit whole only below this share of the image height has its
# longest words broken across lines instead, if that draws it larger.
_READABLE_SHARE = 0.05
# A person's own caption is refused (Layout.cut_short) rather than drawn below this share of the height.
_READABLE_MIN_SHARE = 0.04
# Each caption may take this share of the height, so the two never meet and
# most of the photo stays visible.
_MAX_BLOCK_SHARE = 0.4

# On a phone the meme is shown at the screen's width (about 400 points): letters of 1/25 of the
# meme's width come out about 16 points tall there, the size of body text. A caption in a band
# between faces is only kept at that size or more (or at the classic size, if that is smaller).
_PHONE_SHARE = 1 / 25
# The detector's box runs from the brows to the chin; to a viewer the forehead above is the face
# too (text there reads as "on their head"), so the bands keep this share of the box's height
# clear above it as well.
_FOREHEAD = 0.25

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass(frozen=True)
class _Line:
    text: str
    x: int  # where Pillow's "la" anchor goes for the line's box to be centred
    y: int  # the same, relative to the top of the block
    box: tuple[int, int, int, int]  # left, top, right, bottom about the anchor, outline included


@dataclass(frozen=True)
class _Block:
    font: ImageFont.FreeTypeFont
    stroke: int
    lines: tuple[_Line, ...]
    height: int  # from the top of the first line's box to the bottom of the last, outline included
    shortened: bool = False  # lines dropped for an ellipsis: the text did not fit


def _block(lines: list[str], font: _Font, width: int) -> _Block:
    boxes = [font.box(text) for text in lines]
    ink_top = min(top + index * font.pitch for index, (_, top, _, _) in enumerate(boxes))
    ink_bottom = max(bottom + index * font.pitch for index, (_, _, _, bottom) in enumerate(boxes))
    return _Block(
        font=font.freetype,
        stroke=font.stroke,
        # Centred on the box drawn in, outline included, so the outline stays inside the margins
        # exactly; each line's y is where its anchor goes, measured from the top of the block.
        lines=tuple(
            _Line(text, (width - box[0] - box[2]) // 2, index * font.pitch - ink_top, box)
            for index, (text, box) in enumerate(zip(lines, boxes, strict=True))
        ),
        height=ink_bottom - ink_top,
    )


# Kept: bank captions recur on photos of one size.
@lru_cache(maxsize=256)
def _layout(text: str, width: int, height: int, margin: int, room: int | None = None) -> _Block | None:
    """The largest caption block that fits; None when there is nothing to draw.

    ``room`` bounds the block's height further: the height of a free band, less its margins.
    """
    cleaned = _clean(text)
    typeface = font_for(cleaned)
    if typeface is None:
        # Never boxes: the engine refuses such text first (own_caption); this guards other callers.
        raise CaptionRefused(f"the caption has characters MemeGen cannot draw ({undrawable(cleaned)})")
    paragraphs = [words for words in (p.split() for p in cleaned.upper().split("\n")) if words]
    if not paragraphs:
        return None
    line_width = width - 2 * margin
    # The second bound keeps the two captions apart even when the margin is large.
    max_height = min(int(_MAX_BLOCK_SHARE * height), (height - 2 * margin) // 2)
    if room is not None:
        max_height = min(max_height, room)
    max_pitch = height / 9
    if line_width <= 0 or max_height <= 0:
        return None

    def attempt(size: int, split_words: bool) -> _Block | None:
        font = _font(size, typeface.path)
        if font.pitch > max_pitch and size > _MIN_SIZE:
            return None
        # Lines start a pitch apart, so no more than this many can fit.
        most = max_height // font.pitch + 1
        lines = _wrap(paragraphs, font, line_width, split_words=split_words, max_lines=most)
        if lines is None or len(lines) > most:
            return None
        block = _block(lines, font, width)
        return block if block.height <= max_height else None

    def largest(split_words: bool) -> _Block | None:
        # The pitch is about the font size (1.2 times for Fjalla One, 0.95 for Roboto
        # Black), so no size above this bound can pass.
        low, high = _MIN_SIZE, max(_MIN_SIZE, int(1.25 * max_pitch) + 1)
        best = attempt(low, split_words)
        if best is None:
            return None
        # Binary search: fitting is monotone in the size but for the odd wrap that
        # happens to fit one size up; missing that costs nothing visible.
        while low < high:
            middle = (low + high + 1) // 2
            block = attempt(middle, split_words)
            if block is None:
                high = middle - 1
            else:
                low, best = middle, block
        return best

    # Words are kept whole where that leaves the text readable; a word too long for that
    # (a URL, a 120-letter shout) is broken across lines as the classic meme does, rather
    # than the whole caption shrinking to one unreadable line.
    whole = largest(split_words=False)
    if whole is not None and whole.font.size >= _READABLE_SHARE * height:
        return whole
    broken = largest(split_words=True)
    if broken is not None and (whole is None or broken.font.size > whole.font.size):
        return broken
    return whole or _squeezed(paragraphs, width, line_width, max_height, typeface.path)


def _squeezed(paragraphs: list[list[str]], width: int, line_width: int, max_height: int, path: Path) -> _Block | None:
    """The smallest size, words broken where needed and lines beyond the room dropped for an ellipsis."""
    font = _font(_MIN_SIZE, path)
    # Lines start a pitch apart, so no more than this many can fit.
    most = max_height // font.pitch + 1
    lines = _wrap(paragraphs, font, line_width, split_words=True, max_lines=most) or []
    if any(font.width(font.span(line)) > line_width for line in lines):
        return None  # a single character is wider than the image: a sliver
    for count in range(min(len(lines), most), 0, -1):
        kept = lines[:count]
        if count < len(lines):
            kept[-1] = _ellipsize(kept[-1], font, line_width)
            if not kept[-1]:
                continue
        block = _block(kept, font, width)
        if block.height <= max_height:
            return dataclasses.replace(block, shortened=count < len(lines))
    return None  # not even one line fits: the image is a few pixels tall


@dataclass(frozen=True)
class Sizing:
    """How a picture becomes a meme: its long side capped at ``max_side``, never upscaled.

    Worked out once (``Sizing.of``): the engine checks the meme is large enough and lays the
    captions out for ``meme``, and ``render_layout`` resizes the picture to exactly that.
    """

    picture: tuple[int, int]  # width, height of the picture drawn on
    meme: tuple[int, int]  # width, height of the meme: at least 1 px a side
    scale: float  # the meme's long side over the picture's; 1.0 where the picture is kept as it is

    @classmethod
    def of(cls, width: int, height: int, *, max_side: int) -> Sizing:
        """The meme's size for a ``width`` x ``height`` picture. ``ValueError`` for a side or ``max_side`` below 1."""
        if width < 1 or height < 1:
            raise ValueError(f"the picture is empty: {width}x{height} pixels")
        if max_side < 1:
            raise ValueError(f"max_side must be at least 1, got {max_side}")
        if max(width, height) <= max_side:
            return cls((width, height), (width, height), 1.0)  # never upscaled: that would only blur the photo
        scale = max_side / max(width, height)
        return cls((width, height), (max(1, round(width * scale)), max(1, round(height * scale))), scale)


def _margin(width: int, height: int) -> int:
    return max(1, round(0.02 * min(width, height)))


@dataclass(frozen=True)
class CaptionLine:
    """One line of a caption as drawn: its text (upper case) and box in the meme's pixels, outline included."""

    text: str
    box: Box

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box)}


@dataclass(frozen=True)
class Layout:
    """Both captions laid out for one meme: made once (``lay_out``), checked, then drawn (``render_layout``).

    Every position is in the meme's pixels: ``bar_above`` and ``bar_below`` px of plain white are
    added above and below the picture (0: none), so the picture starts ``bar_above`` px down.
    A caption in a bar is drawn black on the white; one on the picture white with a black outline.
    """

    sizing: Sizing
    margin: int
    top: _Block | None  # None: nothing to draw
    bottom: _Block | None
    top_y: int = 0  # where each block's first line's box starts
    bottom_y: int = 0
    bar_above: int = 0
    bar_below: int = 0
    faces: tuple[Box, ...] = ()  # the faces in the meme's pixels, in the order given to lay_out
    odd_one_out: int | None = None  # the index in faces of the face the caption singles out

    @property
    def size(self) -> tuple[int, int]:
        """The meme's width and height: the picture's ``sizing.meme`` and the bars."""
        width, height = self.sizing.meme
        return width, height + self.bar_above + self.bar_below

    def placed(self) -> tuple[tuple[_Block, int, bool], ...]:
        """Each caption to draw: its block, its top, and whether it sits on a bar (black on white)."""
        placed = [(self.top, self.top_y, self.bar_above > 0), (self.bottom, self.bottom_y, self.bar_below > 0)]
        return tuple((block, y, bar) for block, y, bar in placed if block is not None)

    def lines(self) -> tuple[CaptionLine, ...]:
        """Every caption line with its box in the meme's pixels, top caption first."""
        return tuple(
            CaptionLine(line.text, (line.x + left, y + line.y + top, right - left, bottom - top))
            for block, y, _ in self.placed()
            for line in block.lines
            for left, top, right, bottom in (line.box,)
        )

    def record(self) -> dict[str, Any]:
        """The layout as the metadata record states it (``memegen.cloud.records``)."""
        return {
            "faces": [list(face) for face in self.faces],
            "lines": [line.as_dict() for line in self.lines()],
            "odd_one_out": self.odd_one_out,
        }

    def cut_short(self) -> str | None:
        """The first caption (``"top"``, then ``"bottom"``) not drawn whole at a readable size, or None.

        Readable: letters at least ``_READABLE_MIN_SHARE`` of the height. Any other caption is drawn
        smaller, or shortened with "...", which the engine does not do to a person's own words.
        """
        height = self.sizing.meme[1]
        for which, block in (("top", self.top), ("bottom", self.bottom)):
            if block is not None and (block.shortened or block.font.size < _READABLE_MIN_SHARE * height):
                return which
        return None


def lay_out(
    top: str,
    bottom: str,
    *,
    sizing: Sizing,
    faces: Sequence[Box] = (),
    odd_one_out: int | None = None,
) -> Layout:
    """Lay out the captions for the meme ``sizing`` makes, each as large as fits, no line over a face.

    ``faces`` are x, y, width, height in the picture's pixels (before ``sizing``). Without faces
    the captions go in the classic places, top and bottom. With faces, each caption goes in a
    free band of the picture's full width that no face (nor its forehead) reaches: the top
    caption in the band above every face, the bottom one in the band below, else in the largest
    band between faces (the bottom caption below the top one), kept only where it is drawn whole
    and as large as ``_PHONE_SHARE`` of the width and ``_READABLE_MIN_SHARE`` of the height (or
    as the classic layout would draw it, if smaller). A caption with no such band goes in a plain
    bar above (top) or below (bottom) the picture, at its classic size. ``odd_one_out`` (an index
    in ``faces``) is carried for the mark drawn on that face.

    Raises ``CaptionRefused`` for text no caption font draws.
    """
    width, height = sizing.meme
    margin = _margin(width, height)
    classic_top, classic_bottom = _layout(top, width, height, margin), _layout(bottom, width, height, margin)
    boxes = tuple(box for box in (_scaled(face, sizing) for face in faces) if box[2] > 0 and box[3] > 0)
    if not boxes:
        bottom_y = height - margin - classic_bottom.height if classic_bottom is not None else 0
        return Layout(sizing, margin, classic_top, classic_bottom, margin, bottom_y)
    heads = [(x, y - round(_FOREHEAD * h), w, h + round(_FOREHEAD * h)) for x, y, w, h in boxes]
    bands = _free_bands(heads, height)
    legible = max(_PHONE_SHARE * width, _READABLE_MIN_SHARE * height)

    def fit(text: str, classic: _Block | None, band: tuple[int, int]) -> tuple[_Block, int] | None:
        start, end = band
        block = _layout(text, width, height, margin, end - start - 2 * margin)
        if block is None or classic is None or block.shortened:
            return None
        if block.font.size < min(legible, classic.font.size):
            return None
        if start == 0:
            return block, margin
        if end == height:
            return block, height - margin - block.height
        return block, start + (end - start - block.height) // 2

    middle = sorted((band for band in bands if band[0] > 0 and band[1] < height), key=lambda b: b[0] - b[1])
    top_block, top_y, bar_above, below = classic_top, margin, 0, 0
    if classic_top is not None:
        top_bands = [band for band in bands if band[0] == 0] + middle
        found = next(((band, placed) for band in top_bands if (placed := fit(top, classic_top, band))), None)
        if found is None:
            bar_above = classic_top.height + 2 * margin  # the classic block, black on a bar above
        else:
            (_, below), (top_block, top_y) = found
    bottom_block, bottom_y, bar_below = classic_bottom, height + margin, 0
    if classic_bottom is not None:
        # Below the top caption: the two read in order.
        bottom_bands = [band for band in [*(b for b in bands if b[1] == height), *middle] if band[0] >= below]
        found = next(((band, placed) for band in bottom_bands if (placed := fit(bottom, classic_bottom, band))), None)
        if found is None:
            bar_below = classic_bottom.height + 2 * margin  # the classic block, black on a bar below
        else:
            bottom_block, bottom_y = found[1]
    return Layout(
        sizing,
        margin,
        top_block,
        bottom_block,
        top_y,
        bottom_y + bar_above,
        bar_above,
        bar_below,
        tuple((x, y + bar_above, w, h) for x, y, w, h in boxes),
        odd_one_out,
    )


def _scaled(face: Box, sizing: Sizing) -> Box:
    """A face box from the picture's pixels to the meme's, cut to the picture."""
    width, height = sizing.meme
    x, y, w, h = face
    left, top = max(0, round(x * sizing.scale)), max(0, round(y * sizing.scale))
    right, bottom = min(width, round((x + w) * sizing.scale)), min(height, round((y + h) * sizing.scale))
    return left, top, max(0, right - left), max(0, bottom - top)


def _free_bands(faces: Sequence[Box], height: int) -> list[tuple[int, int]]:
    """The rows no face reaches, as start, end (exclusive) runs from the top down."""
    bands, start = [], 0
    for _, top, _, face_height in sorted(faces, key=lambda face: face[1]):
        if top > start:
            bands.append((start, top))
        start = max(start, top + face_height)
    if start < height:
        bands.append((start, height))
    return bands
