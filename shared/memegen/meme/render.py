"""Drawing the captions (and optional face marks) onto the photo, and encoding the meme.

The classic style: upper-case white text with a black outline, one caption at
the top and one at the bottom, each as large as fits. The photo is resized
before anything is drawn, so text sizes are relative to what the user gets.

The image is drawn into a fresh Pillow image made from the pixel array and
saved with no metadata arguments, so nothing of the upload (EXIF, GPS, ICC
profile, comments) can reach the output.
"""

from __future__ import annotations

import dataclasses
import io
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memegen.contract import MEME_CODECS
from memegen.errors import CaptionRefused
from memegen.meme.fonts import caption_fonts, font_for, undrawable

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
# The distance between baselines, as a multiple of the capital height: close
# like classic memes, loose enough that outlines of adjacent lines do not merge.
_LINE_PITCH = 1.3
_ELLIPSIS = "..."  # three dots, not "…": every font has the full stop

_MARK = (255, 221, 0)  # a yellow that stands out on skin, sky and foliage alike
_MARK_TEXT = (0, 0, 0)


@dataclass(frozen=True)
class Mark:
    """An optional label drawn on a face (the ``--boxes`` option).

    ``box`` is x, y, width, height in pixels of the image passed to ``render``.
    """

    box: tuple[int, int, int, int]
    label: str


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


def font_path() -> Path | None:
    """The first caption font (Fjalla One, from the font-fjallaone package), or None when it is not installed."""
    fonts = [font for font in caption_fonts() if font.name == "Fjalla One"]
    return fonts[0].path if fonts else None


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
def _layout(text: str, width: int, height: int, margin: int) -> _Block | None:
    """The largest caption block that fits; None when there is nothing to draw."""
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


def _draw_caption(canvas: Image.Image, block: _Block, top: int) -> None:
    """Draw a caption block on ``canvas`` (RGB), its first line's box ``top`` px down.

    Only each line's box leaves Pillow for the blending: the photo is not copied again.
    """
    for line in block.lines:
        left, box_top, right, bottom = line.box
        x0, y0 = line.x + left, top + line.y + box_top
        fill = _text_mask(line.text, block.font, (right - left, bottom - box_top), (-left, -box_top))
        # Grown before clipping: on a photo narrower than a letter, the letter's part outside the
        # photo still draws the outline inside it.
        outline = _outline(fill, block.stroke)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + right - left, canvas.width), min(y0 + bottom - box_top, canvas.height)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        fill = fill[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        outline = outline[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        region = np.array(canvas.crop((cx0, cy0, cx1, cy1)))
        # Black through the outline's coverage, then white through the letters' own, as Pillow
        # blends a stroked text: region * (1 - outline), then + (255 - region) * fill.
        cv2.multiply(region, cv2.cvtColor(cv2.bitwise_not(outline), cv2.COLOR_GRAY2RGB), dst=region, scale=1 / 255)
        lift = cv2.multiply(cv2.bitwise_not(region), cv2.cvtColor(fill, cv2.COLOR_GRAY2RGB), scale=1 / 255)
        cv2.add(region, lift, dst=region)
        canvas.paste(Image.fromarray(region), (cx0, cy0))


def _text_mask(text: str, font: ImageFont.FreeTypeFont, size: tuple[int, int], anchor: tuple[int, int]) -> np.ndarray:
    """The letters' coverage (0-255) in a ``size`` box, the "la" anchor at ``anchor``: what Pillow would fill."""
    mask = Image.new("L", size)
    ImageDraw.Draw(mask).text(anchor, text, font=font, anchor="la", fill=255)
    return np.asarray(mask)


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SQUARE = np.ones((3, 3), dtype=np.uint8)


def _outline(fill: np.ndarray, stroke: int) -> np.ndarray:
    """The letters' coverage grown by ``stroke`` px on every side: the outline under them.

    Pillow's stroke is FreeType's, a round pen of radius ``stroke`` px along the glyph outlines;
    growing the coverage by a disk draws the same outline. A disk kernel costs its area per
    pixel; steps of 3x3 crosses and squares grow it by an octagon instead (crosses 1 px along
    the axes, squares 1.41 px along the diagonals: 0.41 of the steps squares reach ``stroke``
    both ways), several times faster and within a pixel of the disk at the sizes drawn.
    """
    diagonal = round(stroke * (math.sqrt(2) - 1))
    grown = cv2.dilate(fill, _CROSS, iterations=stroke - diagonal) if stroke > diagonal else fill
    return cv2.dilate(grown, _SQUARE, iterations=diagonal) if diagonal else grown


def _draw_mark(draw: ImageDraw.ImageDraw, mark: Mark, scale: float, width: int, height: int) -> None:
    x, y, w, h = mark.box
    left, top = max(0, round(x * scale)), max(0, round(y * scale))
    right, bottom = min(width, round((x + w) * scale)), min(height, round((y + h) * scale))
    if right <= left or bottom <= top:
        return  # empty, or entirely outside the image
    thickness = min(4, max(2, round(min(width, height) / 400)))
    # Pillow grows the outline inwards from the given edges, so it stays on the face box.
    draw.rectangle((left, top, right - 1, bottom - 1), outline=_MARK, width=thickness)
    label = _clean(mark.label).replace("\n", " ").strip()
    if not label:
        return
    font = _font(min(40, max(10, round(min(width, height) / 30))), caption_fonts()[0].path)
    pad = max(1, font.size // 8)
    # The label is drawn without an outline: the box measured with one leaves
    # that much more padding around it.
    room = width - 2 * pad
    fitted = label if font.width(font.span(label)) <= room else _ellipsize(label, font, room)
    if not fitted:
        return
    box_left, box_top, box_right, box_bottom = font.box(fitted)
    tag_w, tag_h = box_right - box_left + 2 * pad, box_bottom - box_top + 2 * pad
    # Above the box, sitting on its edge; pushed inside the image near the borders.
    tag_x = min(max(0, left), width - tag_w)
    tag_y = max(0, top - tag_h)
    draw.rectangle((tag_x, tag_y, tag_x + tag_w - 1, tag_y + tag_h - 1), fill=_MARK)
    draw.text((tag_x + pad - box_left, tag_y + pad - box_top), fitted, font=font.freetype, anchor="la", fill=_MARK_TEXT)


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


def _resized(image: np.ndarray, sizing: Sizing) -> np.ndarray:
    if sizing.meme == sizing.picture:
        return image
    # Area averaging against aliasing and moiré where the photo shrinks by 2 or more; below
    # that bilinear is as clean and several times faster.
    return cv2.resize(image, sizing.meme, interpolation=cv2.INTER_AREA if sizing.scale < 0.5 else cv2.INTER_LINEAR)


def _margin(width: int, height: int) -> int:
    return max(1, round(0.02 * min(width, height)))


@dataclass(frozen=True)
class Layout:
    """Both captions laid out for one meme size: made once (``lay_out``), checked, then drawn (``render_layout``)."""

    sizing: Sizing
    margin: int
    top: _Block | None  # None: nothing to draw
    bottom: _Block | None

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


def lay_out(top: str, bottom: str, *, sizing: Sizing) -> Layout:
    """Lay out the captions for the meme ``sizing`` makes: each as large as fits (see ``render``).

    Raises ``CaptionRefused`` for text no caption font draws.
    """
    width, height = sizing.meme
    margin = _margin(width, height)
    return Layout(sizing, margin, _layout(top, width, height, margin), _layout(bottom, width, height, margin))


def _check_encoding(format: str, quality: int) -> str:
    """The Pillow codec of ``format``, after checking both options (``ValueError``)."""
    codec = MEME_CODECS.get(format.lower())
    if codec is None:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(MEME_CODECS)}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1-100, got {quality}")
    return codec


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got shape {image.shape} of {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")


def render(
    image: np.ndarray,
    *,
    top: str,
    bottom: str,
    marks: Sequence[Mark] = (),
    max_side: int = 1600,
    format: str = "jpeg",
    quality: int = 88,
) -> bytes:
    """Draw the captions (and ``marks``) on ``image`` and encode it.

    ``image`` is an H x W x 3 uint8 RGB array; it is not modified. Its long side
    is first capped at ``max_side`` (smaller images keep their size), then the
    captions are drawn upper-case, white with a black outline, ``top`` at the
    top and ``bottom`` at the bottom, each as large as fits: wrapped at spaces,
    never wider than the image and never more than 40% of its height. An empty
    caption draws nothing. ``format`` is "jpeg" (or "jpg"), "png" or "webp",
    case-insensitive; ``quality`` (1-100) applies to JPEG and WebP. The result
    carries no metadata at all.

    The same as ``render_layout`` of ``lay_out`` for ``Sizing.of`` the image: a caller that
    checks the layout first (the engine) calls those three itself.

    Raises ValueError for an image that is not H x W x 3 uint8, an unknown
    format, a quality outside 1-100 or a ``max_side`` below 1.
    """
    _check_image(image)
    _check_encoding(format, quality)
    sizing = Sizing.of(image.shape[1], image.shape[0], max_side=max_side)
    layout = lay_out(top, bottom, sizing=sizing)
    return render_layout(image, layout, marks=marks, format=format, quality=quality)


def render_layout(
    image: np.ndarray,
    layout: Layout,
    *,
    marks: Sequence[Mark] = (),
    format: str = "jpeg",
    quality: int = 88,
) -> bytes:
    """Resize ``image`` as ``layout.sizing`` says, draw ``marks`` and the laid-out captions, and encode it.

    ``image`` (not modified) must be the picture ``layout`` was made for; ``marks`` are in its
    pixels. ``format`` and ``quality`` are ``render``'s. Raises ValueError for another image or
    a bad option.
    """
    _check_image(image)
    codec = _check_encoding(format, quality)
    if (image.shape[1], image.shape[0]) != layout.sizing.picture:
        width, height = layout.sizing.picture
        raise ValueError(f"the layout is for a {width}x{height} picture, not {image.shape[1]}x{image.shape[0]}")

    pixels = _resized(np.ascontiguousarray(image), layout.sizing)
    height, width = pixels.shape[:2]
    scale = width / image.shape[1]
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    for mark in marks:
        _draw_mark(draw, mark, scale, width, height)
    # Captions last: they stay readable where a mark's tag runs under them.
    if layout.top is not None:
        _draw_caption(canvas, layout.top, layout.margin)
    if layout.bottom is not None:
        _draw_caption(canvas, layout.bottom, height - layout.margin - layout.bottom.height)

    buffer = io.BytesIO()
    # Speed over the last few per cent of size: no optimize pass, no
    # progressive scans, the fast PNG deflate level and a quick WebP method.
    if codec == "JPEG":
        canvas.save(buffer, codec, quality=quality, optimize=False, progressive=False)
    elif codec == "PNG":
        canvas.save(buffer, codec, compress_level=1)
    else:
        canvas.save(buffer, codec, quality=quality, method=2)
    return buffer.getvalue()
