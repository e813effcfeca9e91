"""The zoom meme: the frames move from the whole photo onto one face, then the last frame holds.

The captions are laid out once, for the last frame (the one that holds) and clear of the face it
shows, and drawn on every frame: they stay where they are, readable, while the photo moves under
them. The picture is shrunk once to what the
closest frame needs (the meme's size times the zoom), and each frame is cut from that: never from
the full-size upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from memegen.contract import ZOOM_CODECS
from memegen.meme.layout import Layout, Sizing, lay_out
from memegen.meme.render import draw_layout

# How tall the last frame's crop is, in face heights: the face with its hair and chin, not just the eyes.
FACE_HEIGHTS = 2.5
# The least a zoom enlarges (a portrait's big face comes closer, down to FACE_MIN of its heights)...
MIN_ZOOM = 2.0
# ...without the last frame cutting into the face: it is at least this many face heights tall.
FACE_MIN = 1.25


@dataclass(frozen=True)
class Timing:
    """How the animation moves: ``frames`` frames (the whole photo first), each ``frame_ms``, the last ``hold_ms``."""

    frames: int = 12
    frame_ms: int = 70
    hold_ms: int = 2000

    def durations(self) -> list[int]:
        """Each frame's duration in milliseconds: the last holds."""
        return [self.frame_ms] * (self.frames - 1) + [self.hold_ms]


Box = tuple[float, float, float, float]  # left, top, width, height in picture pixels


def zoom_boxes(picture: tuple[int, int], face: tuple[int, int, int, int], *, frames: int) -> list[Box]:
    """The part of the picture each frame shows: the whole picture first, a crop around ``face`` last.

    ``picture`` is width, height and ``face`` x, y, width, height, in the same pixels. Every crop
    has the picture's shape, so no frame is stretched. The last is ``FACE_HEIGHTS`` face heights
    tall, or less where that would zoom less than ``MIN_ZOOM`` (never under ``FACE_MIN`` face
    heights, nor over the whole height), centred on the face and moved inside the picture where the
    face is near an edge. The crop shrinks by the same factor frame over frame, eased in: slowly
    at first, then faster, the dramatic zoom's rush onto the face.
    """
    if frames < 2:
        raise ValueError(f"a zoom takes at least 2 frames, got {frames}")
    width, height = picture
    x, y, w, h = face
    end_h = min(float(height), max(FACE_MIN * h, min(FACE_HEIGHTS * h, height / MIN_ZOOM)))
    end_w = end_h * width / height
    end_left = min(max(x + w / 2 - end_w / 2, 0.0), width - end_w)
    end_top = min(max(y + h / 2 - end_h / 2, 0.0), height - end_h)
    boxes: list[Box] = []
    for index in range(frames):
        eased = (index / (frames - 1)) ** 2
        # The crop's height shrinks geometrically (each step the same zoom factor), and its corners
        # move in step with it from the whole picture's to the end crop's: always inside the picture.
        shown = height * (end_h / height) ** eased
        done = (height - shown) / (height - end_h) if end_h < height else 0.0
        boxes.append(
            (done * end_left, done * end_top, width + done * (end_w - width), height + done * (end_h - height))
        )
    return boxes


def lay_out_zoom(top: str, bottom: str, *, sizing: Sizing, face: tuple[int, int, int, int]) -> Layout:
    """The captions of a zoom meme, laid out for its last frame: ``lay_out`` with that frame's face.

    ``sizing`` is the whole picture's (``sizing.meme``: each frame's size) and ``face`` is in its
    picture's pixels. The layout's own sizing is the last frame's: the crop ``zoom_boxes`` ends
    on, shown at ``sizing.meme``. Raises ``CaptionRefused`` as ``lay_out`` does.
    """
    left, top_edge, width, height = zoom_boxes(sizing.picture, face, frames=2)[-1]
    crop = (max(1, round(width)), max(1, round(height)))
    last = Sizing(crop, sizing.meme, sizing.meme[1] / height)
    x, y, w, h = face
    return lay_out(top, bottom, sizing=last, faces=[(round(x - left), round(y - top_edge), w, h)])


def zoom_frames(
    image: np.ndarray, layout: Layout, *, face: tuple[int, int, int, int], timing: Timing
) -> list[Image.Image]:
    """The frames, each ``layout.size`` with the captions drawn: ``image`` (H x W x 3 RGB uint8, not
    modified) zooming onto ``face`` (in its pixels). ``layout`` is ``lay_out_zoom``'s for them."""
    picture, meme = (image.shape[1], image.shape[0]), layout.sizing.meme
    boxes = zoom_boxes(picture, face, frames=timing.frames)
    last = (max(1, round(boxes[-1][2])), max(1, round(boxes[-1][3])))
    if layout.sizing.picture != last:
        raise ValueError(f"the layout is for a {layout.sizing.picture} crop, not this zoom's last {last}")
    # Shrunk once to what the closest frame shows at the meme's size (never enlarged): the frames
    # are cut from that, each a resize of a few hundred pixels rather than of the whole upload.
    scale = min(1.0, meme[1] / boxes[-1][3])
    base_size = (max(1, round(picture[0] * scale)), max(1, round(picture[1] * scale)))
    base = image if scale == 1.0 else _shrunk(image, base_size)
    # The captions' drawing is linear in the pixels under them (the outline darkens, the letters
    # lighten): drawn once on black and once on white, that gives each pixel's gain and offset,
    # and each frame is then one multiply-add instead of drawing the text again.
    # Captions on a bar (where no band of the last frame had room) are drawn on plain white.
    black, white = Image.new("RGB", layout.size), Image.new("RGB", layout.size, (255, 255, 255))
    draw_layout(black, layout)
    draw_layout(white, layout)
    offset = np.asarray(black)
    gain = cv2.subtract(np.asarray(white), offset)
    canvas = np.full((layout.size[1], layout.size[0], 3), 255, dtype=np.uint8)
    picture_rows = slice(layout.bar_above, layout.bar_above + meme[1])
    frames = []
    for left, top, width, height in boxes:
        x0, y0 = round(left * scale), round(top * scale)
        x1, y1 = min(base.shape[1], round((left + width) * scale)), min(base.shape[0], round((top + height) * scale))
        cut = base[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
        canvas[picture_rows] = _shrunk(cut, meme)
        frames.append(Image.fromarray(cv2.add(cv2.multiply(canvas, gain, scale=1 / 255), offset)))
    return frames


def _shrunk(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size``: halved by area averaging while that stays above it, then bilinear.

    Bilinear alone aliases below half the size; area averaging at any other ratio costs several
    times what halving does.
    """
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return (
        image if (image.shape[1], image.shape[0]) == size else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    )


def encode_zoom(frames: list[Image.Image], *, format: str, timing: Timing, quality: int = 80) -> bytes:
    """Encode the frames as an animation that plays forever: ``format`` is a ``ZOOM_CODECS`` name.

    A GIF's frames share one palette, worked out once from the first and last frames (the whole
    photo and the face, both with the captions): quantizing each frame on its own would cost as
    much again and make the colours flicker. Nothing but the pixels and the timing is written.
    """
    codec = ZOOM_CODECS.get(format.lower())
    if codec is None:
        raise ValueError(f"unknown zoom format {format!r}: expected one of {', '.join(ZOOM_CODECS)}")
    if len(frames) != timing.frames:
        raise ValueError(f"{len(frames)} frames for a timing of {timing.frames}")
    buffer = io.BytesIO()
    durations = timing.durations()
    if codec == "GIF":
        first, last = frames[0], frames[-1]
        both = Image.new("RGB", (first.width, first.height * 2))
        both.paste(first, (0, 0))
        both.paste(last, (0, first.height))
        palette = both.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
        indexed[0].save(
            buffer, "GIF", save_all=True, append_images=indexed[1:], duration=durations, loop=0, optimize=False
        )
    else:
        frames[0].save(
            buffer,
            "WEBP",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
            quality=quality,
            method=2,
        )
    return buffer.getvalue()
