"""Drawing the laid-out captions (and optional face marks) onto the photo, and encoding the meme.

The classic style: upper-case white text with a black outline, where ``memegen.meme.layout``
puts it; a caption laid out on a bar added above or below the picture is black on white. The
photo is resized before anything is drawn, so text sizes are relative to what the user gets.

The image is drawn into a fresh Pillow image made from the pixel array and
saved with no metadata arguments, so nothing of the upload (EXIF, GPS, ICC
profile, comments) can reach the output.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memegen.contract import MEME_CODECS
from memegen.meme.fonts import caption_fonts
from memegen.meme.layout import Layout as Layout
from memegen.meme.layout import Sizing as Sizing
from memegen.meme.layout import _Block
from memegen.meme.layout import _font as _font
from memegen.meme.layout import _layout as _layout
from memegen.meme.layout import _margin as _margin
from memegen.meme.layout import lay_out as lay_out
from memegen.meme.text import _clean, _ellipsize

_MARK = (255, 221, 0)  # a yellow that stands out on skin, sky and foliage alike
_MARK_TEXT = (0, 0, 0)
# The odd one out's ring: the classic red circle of reaction memes, outlined in the captions' black
# so that it shows on red too.
_ODD = (230, 0, 0)
_ODD_EDGE = (0, 0, 0)
_BAR = (255, 255, 255)
_BAR_TEXT = (0, 0, 0)


@dataclass(frozen=True)
class Mark:
    """An optional label drawn on a face (the ``--boxes`` option).

    ``box`` is x, y, width, height in pixels of the image passed to ``render``.
    """

    box: tuple[int, int, int, int]
    label: str


def font_path() -> Path | None:
    """The first caption font (Fjalla One, from the font-fjallaone package), or None when it is not installed."""
    fonts = [font for font in caption_fonts() if font.name == "Fjalla One"]
    return fonts[0].path if fonts else None


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


def _draw_mark(draw: ImageDraw.ImageDraw, mark: Mark, scale: float, width: int, height: int, *, offset: int) -> None:
    x, y, w, h = mark.box
    left, top = max(0, round(x * scale)), max(0, round(y * scale) + offset)
    right, bottom = min(width, round((x + w) * scale)), min(height, round((y + h) * scale) + offset)
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


def draw_layout(canvas: Image.Image, layout: Layout, *, marks: Sequence[Mark] = (), scale: float = 1.0) -> None:
    """Draw ``layout`` on ``canvas`` (RGB, ``layout.size``: the picture and its bars): marks, ring, captions.

    ``marks`` are in the picture's pixels before ``scale`` (the meme's width over the picture's).
    A frame of an animated meme of the same layout is drawn the same way.
    """
    draw = ImageDraw.Draw(canvas)
    width, height = layout.size
    for mark in marks:
        _draw_mark(draw, mark, scale, width, height, offset=layout.bar_above)
    if layout.odd_one_out is not None:
        _draw_ring(draw, layout.faces[layout.odd_one_out], width, height)
    # Captions last: they stay readable where a mark's tag runs under them.
    for block, top, bar in layout.placed():
        if bar:
            _draw_plain(draw, block, top)
        else:
            _draw_caption(canvas, block, top)


def _draw_plain(draw: ImageDraw.ImageDraw, block: _Block, top: int) -> None:
    """A caption block black on a bar: no outline is needed on the plain white."""
    for line in block.lines:
        draw.text((line.x, top + line.y), line.text, font=block.font, anchor="la", fill=_BAR_TEXT)


def _draw_ring(draw: ImageDraw.ImageDraw, face: tuple[int, int, int, int], width: int, height: int) -> None:
    """The classic circle around a face (meme pixels): red, edged in black, a little wider than the face box."""
    x, y, w, h = face
    thickness = max(3, round(min(width, height) / 150))
    # Wide enough to circle the whole head, not cut through the cheeks; Pillow draws it inwards.
    grow_x, grow_y = round(0.2 * w) + thickness, round(0.2 * h) + thickness
    box = (x - grow_x, y - grow_y, x + w + grow_x, y + h + grow_y)
    edge = max(1, thickness // 3)
    draw.ellipse(box, outline=_ODD_EDGE, width=thickness + 2 * edge)
    draw.ellipse((box[0] + edge, box[1] + edge, box[2] - edge, box[3] - edge), outline=_ODD, width=thickness)


def _resized(image: np.ndarray, sizing: Sizing) -> np.ndarray:
    if sizing.meme == sizing.picture:
        return image
    # Area averaging against aliasing and moiré where the photo shrinks by 2 or more; below
    # that bilinear is as clean and several times faster.
    return cv2.resize(image, sizing.meme, interpolation=cv2.INTER_AREA if sizing.scale < 0.5 else cv2.INTER_LINEAR)


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
    """Resize ``image`` as ``layout.sizing`` says, add its bars, draw ``marks`` and the captions, and encode it.

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
    scale = pixels.shape[1] / image.shape[1]
    canvas = Image.fromarray(pixels)
    if layout.size != layout.sizing.meme:
        picture, canvas = canvas, Image.new("RGB", layout.size, _BAR)
        canvas.paste(picture, (0, layout.bar_above))
    draw_layout(canvas, layout, marks=marks, scale=scale)

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
