"""Captions, marks and encoding, on synthetic images made here (never real photos).

The golden images are compared with a tolerance, not byte for byte, so a
different zlib or libjpeg does not fail them. To redraw them on purpose:
``MEMEGEN_REGENERATE_GOLDEN=1 pytest tests/meme/test_render.py``, then look at
every changed file before committing it.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from memegen.errors import CaptionRefused
from memegen.meme.captions import own_caption
from memegen.meme.fonts import caption_fonts, font_for
from memegen.meme.render import Mark, Sizing, _font, _layout, _margin, font_path, lay_out, render, render_layout
from tests.support import GOLDEN_DIR

FAILURE_DIR = GOLDEN_DIR.parent / "_failures"  # git-ignored (tests/_failures/)
REGENERATE = os.environ.get("MEMEGEN_REGENERATE_GOLDEN") == "1"
# Compared region by region (16 px tiles), so that a small change anywhere fails: a pixel counts
# as changed when a channel moved by more than GOLDEN_PIXEL (antialiasing of another FreeType moves
# glyph edges by less), and a tile fails when over GOLDEN_TILE_SHARE of its pixels changed. A face
# mark's 3 px outline is about a fifth of the tiles it crosses, a glyph stroke more.
GOLDEN_TILE = 16
GOLDEN_PIXEL = 64
GOLDEN_TILE_SHARE = 0.05

GREY = (128, 128, 128)
LONG_CAPTION = " ".join(
    ["when", "you", "finally", "understand", "the", "code", "you", "wrote", "three", "weeks", "ago"] * 6
)[:300]
MARK_COLOUR = (255, 221, 0)


def flat(width: int, height: int, colour: tuple[int, int, int] = GREY) -> np.ndarray:
    return np.full((height, width, 3), colour, dtype=np.uint8)


def gradient(width: int, height: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    red = xs * 255 // max(1, width - 1)
    green = ys * 255 // max(1, height - 1)
    blue = 255 - (xs + ys) * 255 // max(1, width + height - 2)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def checkerboard(width: int, height: int, cell: int = 20) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    light = ((xs // cell + ys // cell) % 2).astype(bool)
    image = flat(width, height, (40, 40, 40))
    image[light] = (220, 220, 220)
    return image


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """Left, top, right, bottom (inclusive) of the pixels that differ."""
    ys, xs = np.nonzero(np.any(before != after, axis=2))
    assert xs.size, "nothing was drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def png(image: np.ndarray, *, top: str, bottom: str, marks: list[Mark] | None = None) -> np.ndarray:
    """Rendered losslessly, so that unchanged pixels compare equal."""
    return decode(render(image, top=top, bottom=bottom, marks=marks or (), format="png"))


# --- encoding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "expected"),
    [("jpeg", "JPEG"), ("jpg", "JPEG"), ("JPG", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("WebP", "WEBP")],
)
def test_encodes_the_format_asked_for(option: str, expected: str) -> None:
    data = render(gradient(320, 240), top="top text", bottom="bottom text", format=option)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == expected
        assert image.size == (320, 240)
        image.load()


def test_jpeg_is_the_default_and_quality_counts() -> None:
    image = checkerboard(320, 240, cell=3)
    low, high = render(image, top="a", bottom="b", quality=30), render(image, top="a", bottom="b", quality=95)
    assert low[:2] == high[:2] == b"\xff\xd8"
    assert len(low) < len(high)


@pytest.mark.parametrize("option", ["gif", "tiff", "", "jpeg2000", "png "])
def test_unknown_format_is_refused(option: str) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(flat(32, 32), top="a", bottom="b", format=option)


@pytest.mark.parametrize(
    "call",
    [
        lambda: render(np.zeros((20, 20), np.uint8), top="a", bottom=""),
        lambda: render(np.zeros((20, 20, 4), np.uint8), top="a", bottom=""),
        lambda: render(np.zeros((20, 20, 3), np.float32), top="a", bottom=""),
        lambda: render(np.zeros((0, 20, 3), np.uint8), top="a", bottom=""),
        lambda: render(flat(20, 20), top="a", bottom="", quality=0),
        lambda: render(flat(20, 20), top="a", bottom="", quality=101),
        lambda: render(flat(20, 20), top="a", bottom="", max_side=0),
    ],
)
def test_bad_arguments_are_refused(call: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((4000, 3000), 1600, (1600, 1200)),
        ((1500, 3000), 1600, (800, 1600)),
        ((2000, 1000), 800, (800, 400)),
        ((320, 240), 1600, (320, 240)),  # small images are not upscaled
        ((1600, 900), 1600, (1600, 900)),
        ((3000, 2), 300, (300, 1)),  # a sliver keeps at least one pixel
    ],
)
def test_long_side_is_capped(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    data = render(flat(*size), top="hello", bottom="world", max_side=max_side, format="png")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == expected


@pytest.mark.parametrize(
    ("size", "max_side"), [((4000, 3000), 1600), ((1999, 3001), 1600), ((320, 240), 1600), ((3000, 2), 300)]
)
def test_the_sizing_is_the_size_drawn(size: tuple[int, int], max_side: int) -> None:
    """The engine states the meme's size from its Sizing: the one the meme is drawn at."""
    sizing = Sizing.of(*size, max_side=max_side)
    layout = lay_out("top", "bottom", sizing=sizing)
    data = render_layout(flat(*size), layout, format="png")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == sizing.meme
    assert data == render(flat(*size), top="top", bottom="bottom", max_side=max_side, format="png")


def test_a_layout_is_drawn_only_on_its_own_picture() -> None:
    layout = lay_out("top", "", sizing=Sizing.of(320, 240, max_side=1600))
    with pytest.raises(ValueError, match="320x240 picture, not 240x320"):
        render_layout(flat(240, 320), layout)


@pytest.mark.parametrize(
    ("top", "bottom", "cut"),
    [
        ("fits", "fits too", None),
        ("", "", None),
        ("W" * 120, "fits", "top"),  # 120 letters fit a 600 px wide meme only small
        ("fits", LONG_CAPTION, "bottom"),  # 300 letters: drawn small
        (LONG_CAPTION, "W" * 120, "top"),  # the first that does not fit
    ],
)
def test_cut_short_names_the_caption_not_drawn_whole_and_readable(top: str, bottom: str, cut: str | None) -> None:
    layout = lay_out(top, bottom, sizing=Sizing.of(600, 1600, max_side=1600))
    assert layout.cut_short() == cut


def test_the_input_array_is_left_alone() -> None:
    image = gradient(320, 240)
    before = image.copy()
    render(image, top="top", bottom="bottom", marks=[Mark((50, 50, 60, 60), "face")])
    assert np.array_equal(image, before)


# The only metadata a file may carry is what its format cannot do without: the
# JFIF header of a JPEG (version and a 1:1 pixel aspect, no units), and the
# defaults Pillow reports for every WebP.
HARMLESS_INFO = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "loop", "background"}


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of the header segments, up to the start of the scan."""
    markers, offset = [], 2
    while True:
        assert data[offset] == 0xFF
        marker = data[offset + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return markers
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        offset += 2 + length


def png_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 12
    while offset < len(data):
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        chunks.append(data[offset : offset + 4])
        offset += 8 + length + (length & 1)
    return chunks


@pytest.mark.parametrize("option", ["jpeg", "png", "webp"])
def test_output_carries_no_metadata(option: str) -> None:
    marks = [Mark((40, 40, 100, 100), "happy")]
    data = render(gradient(640, 480), top="top text", bottom="bottom text", marks=marks, format=option)
    with Image.open(io.BytesIO(data)) as image:
        assert set(image.info) <= HARMLESS_INFO, image.info
        assert not image.getexif()
        assert "icc_profile" not in image.info
    if option == "jpeg":
        # APP0 (JFIF), quantisation and Huffman tables, frame header: no APP1 (EXIF, XMP),
        # APP2 (ICC) or any other application segment, and no comment (0xFE).
        assert set(jpeg_markers(data)) <= {0xE0, 0xDB, 0xC4, 0xC0, 0xDD, 0xDA}
        assert data[6:11] == b"JFIF\x00"
    elif option == "png":
        assert set(png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}
    else:
        assert set(webp_chunks(data)) <= {b"VP8 ", b"VP8L"}


# --- captions ----------------------------------------------------------------


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0)])
def test_text_is_readable_on_white_and_on_black(colour: tuple[int, int, int]) -> None:
    image = flat(320, 240, colour)
    out = png(image, top="readable", bottom="everywhere")
    for region in (out[: int(0.4 * 240)], out[int(0.6 * 240) :]):
        near_white = np.all(region >= 230, axis=2).sum()
        near_black = np.all(region <= 25, axis=2).sum()
        assert near_white > 100 and near_black > 100, (near_white, near_black)


@pytest.mark.parametrize("size", [(320, 240), (640, 120), (200, 600), (1600, 1200)])
@pytest.mark.parametrize(
    "caption",
    [
        LONG_CAPTION,
        "SUPERCALIFRAGILISTICEXPIALIDOCIOUS_ANTIDISESTABLISHMENTARIANISM",  # one word, wider than the image
        "X" * 300,  # one word that does not fit even at the smallest size
        "top\nof\nthe\nworld\nin\nlines",
    ],
)
def test_captions_fit_inside_the_image_and_apart(size: tuple[int, int], caption: str) -> None:
    width, height = size
    image = flat(width, height)
    top_box = changed_box(image, png(image, top=caption, bottom=""))
    low_box = changed_box(image, png(image, top="", bottom=caption))
    # Inside with a margin on every side, so nothing was cut off at an edge.
    for left, top, right, bottom in (top_box, low_box):
        assert left >= 1 and top >= 1 and right <= width - 2 and bottom <= height - 2
        assert bottom - top + 1 <= 0.4 * height
    assert top_box[3] < low_box[1]
    # Centred: the ink is about as far from the left edge as from the right (the
    # glyphs' boxes are centred exactly, their antialiased ink a pixel or two off).
    assert abs(top_box[0] - (width - 1 - top_box[2])) <= 2 + width // 200


@pytest.mark.parametrize("size", [8, 11, 19, 26, 47, 90, 133])
def test_the_fast_measure_is_pillows(size: int) -> None:
    # Layout adds up cached character boxes instead of asking Pillow for every
    # candidate line; a Pillow that kerns or measures differently must fail here.
    texts = ["ONE DOES NOT SIMPLY", "WALK INTO MORDOR.", "Y", "JQ,", "ÇA VA ÊTRE TRÈS LONG, NON?", "😀 中文 …", " X "]
    for font in caption_fonts():  # every caption font: Roboto Black draws Greek and Cyrillic
        sized = _font(size, font.path)
        for text in [*texts, "ПРИВЕТ, ΓΕΙΆ"]:
            expected = sized.freetype.getbbox(text, stroke_width=sized.stroke, anchor="la")
            assert sized.box(text) == expected, (font.name, text)


def test_a_short_caption_is_large() -> None:
    image = flat(320, 240)
    _, top, _, bottom = changed_box(image, png(image, top="", bottom="big"))
    # The line height is capped at a ninth of the height; the ink is nearly that.
    assert bottom - top + 1 >= 0.6 * 240 / 9
    assert top > 240 / 2


def test_a_long_word_gets_a_smaller_font_on_one_line() -> None:
    image = flat(320, 240)
    word = "ANTIDISESTABLISHMENTARIANISM"
    left, top, right, bottom = changed_box(image, png(image, top=word, bottom=""))
    assert right - left + 1 >= 0.85 * 320  # as wide as fits
    assert bottom - top + 1 < 240 / 9  # one line, not a word broken over several


def test_long_captions_shrink_rather_than_overflow() -> None:
    image = flat(320, 240)
    short = changed_box(image, png(image, top="a few words", bottom=""))
    long = changed_box(image, png(image, top=LONG_CAPTION, bottom=""))
    assert long[3] - long[1] > short[3] - short[1]  # more lines
    assert long[3] < 0.4 * 240 + 5


@pytest.mark.parametrize(("top", "bottom"), [("", ""), ("   ", "\n\t "), ("\u200b", "")])
def test_empty_captions_leave_the_image_unchanged(top: str, bottom: str) -> None:
    image = gradient(320, 240)
    assert np.array_equal(png(image, top=top, bottom=bottom), image)


def test_captions_are_upper_case() -> None:
    image = flat(320, 240)
    assert np.array_equal(png(image, top="meme", bottom=""), png(image, top="MEME", bottom=""))


@pytest.mark.parametrize(
    "caption",
    [
        "ÇA VA? Ünïcödé ß",
        "zero\u200bwidth\u202eright-to-left",
        "\x00\x07\r\t",
        "\ud800 lone",
        "Привет, мир",
        "Γειά σου",
    ],
)
def test_any_drawable_text_renders(caption: str) -> None:
    image = flat(320, 240)
    assert png(image, top=caption, bottom=caption).shape == image.shape


@pytest.mark.parametrize(
    ("caption", "font"), [("Привет, мир!", "Roboto Black"), ("ΓΕΙΆ ΣΟΥ", "Roboto Black"), ("ÇA VA", "Fjalla One")]
)
def test_greek_and_cyrillic_are_drawn_as_letters_never_boxes(caption: str, font: str) -> None:
    chosen = font_for(caption)
    assert chosen is not None and chosen.name == font
    freetype = _font(40, chosen.path).freetype
    # The font's own empty box (.notdef), drawn for a character it lacks: no letter may look like it.
    notdef = bytes(freetype.getmask("\U0010fffd"))
    assert all(bytes(freetype.getmask(char)) != notdef for char in caption.upper() if not char.isspace())
    image = flat(320, 240)
    assert changed_box(image, png(image, top=caption, bottom="")) is not None


@pytest.mark.parametrize("caption", ["emoji 😀👍🏽", "中文", "مرحبا"])
def test_text_no_font_draws_is_refused_not_boxed(caption: str) -> None:
    with pytest.raises(CaptionRefused, match="cannot draw"):
        png(flat(320, 240), top=caption, bottom="")
    with pytest.raises(CaptionRefused, match="Latin, Greek and Cyrillic"):
        own_caption(caption, name="top")


@pytest.mark.parametrize("size", [(1, 1), (5, 40), (40, 5), (30, 600), (600, 30)])
def test_tiny_images_do_not_break(size: tuple[int, int]) -> None:
    image = flat(*size)
    out = png(image, top="hello world", bottom="goodbye world", marks=[Mark((0, 0, 3, 3), "face")])
    assert out.shape == image.shape


# --- marks -------------------------------------------------------------------


def test_a_mark_outlines_the_box_and_labels_it() -> None:
    image = flat(320, 240)
    out = png(image, top="", bottom="", marks=[Mark((100, 80, 80, 90), "happy 93%")])
    for x, y in [(100, 125), (179, 125), (140, 80), (140, 169), (101, 125), (178, 125)]:  # on the edges
        assert tuple(out[y, x]) == MARK_COLOUR, (x, y)
    assert tuple(out[125, 140]) == GREY  # the face itself is not covered
    assert tuple(out[125, 99]) == GREY and tuple(out[125, 180]) == GREY  # nor what is outside
    tag = out[60:80, 100:180]
    assert np.all(tag == MARK_COLOUR, axis=2).sum() > 200  # the filled tag above the box
    assert np.all(tag < 60, axis=2).sum() > 20  # with dark text on it


def test_marks_follow_the_resize_and_stay_inside() -> None:
    image = flat(3200, 2400)
    marks = [Mark((1000, 1000, 400, 400), "scaled"), Mark((3000, 0, 400, 300), "at the corner")]
    out = png(image, top="", bottom="", marks=marks)
    assert out.shape == (1200, 1600, 3)
    assert tuple(out[600, 500]) == MARK_COLOUR  # the box at half the size
    assert tuple(out[600, 499]) == GREY
    # The second box runs off the corner: clipped, its tag pushed into the image.
    assert tuple(out[50, 1599]) == MARK_COLOUR
    assert np.all(out[0:40, 1400:1600] == MARK_COLOUR, axis=2).sum() > 500


def test_marks_outside_or_empty_are_skipped() -> None:
    image = flat(320, 240)
    marks = [Mark((400, 300, 50, 50), "away"), Mark((10, 10, 0, 0), "empty"), Mark((10, 10, -5, 20), "negative")]
    assert np.array_equal(png(image, top="", bottom="", marks=marks), image)


# --- golden images -----------------------------------------------------------


SCENES: dict[str, Callable[[], bytes]] = {
    "gradient": lambda: render(gradient(320, 240), top="one does not simply", bottom="walk into mordor", format="png"),
    "checkerboard": lambda: render(
        checkerboard(320, 240),
        top=LONG_CAPTION[:140],
        bottom="",
        marks=[Mark((150, 110, 70, 80), "happy 93%")],
        format="png",
    ),
    "dark": lambda: render(flat(320, 240, (24, 26, 38)), top="ok", bottom="ça va être très long, non?", format="png"),
}


@pytest.mark.parametrize("name", sorted(SCENES))
def test_matches_the_golden_image(name: str) -> None:
    assert font_path() is not None, "the goldens are drawn in Fjalla One: pip install font-fjallaone (requirements.txt)"
    actual = decode(SCENES[name]())
    golden = GOLDEN_DIR / f"{name}.png"
    if REGENERATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        # Saved smallest rather than fastest: these are committed.
        Image.fromarray(actual).save(golden, optimize=True)
        return
    assert golden.is_file(), f"{golden} is missing: regenerate with MEMEGEN_REGENERATE_GOLDEN=1"
    expected = decode(golden.read_bytes())
    worst = worst_tile(actual, expected)
    if worst is not None:
        FAILURE_DIR.mkdir(exist_ok=True)
        Image.fromarray(actual).save(FAILURE_DIR / f"{name}.png")
        pytest.fail(
            f"{name}: {worst}; the image drawn is in {FAILURE_DIR / name}.png. "
            "If the change is intended, regenerate with MEMEGEN_REGENERATE_GOLDEN=1 and review the diff."
        )


def worst_tile(actual: np.ndarray, expected: np.ndarray) -> str | None:
    """Where ``actual`` differs from ``expected`` past the tolerance, in words, or None where it does not."""
    if actual.shape != expected.shape:
        return f"shape {actual.shape} instead of {expected.shape}"
    changed = (np.abs(actual.astype(np.int16) - expected.astype(np.int16)).max(axis=2) > GOLDEN_PIXEL).astype(float)
    height, width = changed.shape
    rows, cols = -(-height // GOLDEN_TILE), -(-width // GOLDEN_TILE)
    padded = np.zeros((rows * GOLDEN_TILE, cols * GOLDEN_TILE))
    padded[:height, :width] = changed
    shares = padded.reshape(rows, GOLDEN_TILE, cols, GOLDEN_TILE).mean(axis=(1, 3))
    row, col = np.unravel_index(int(np.argmax(shares)), shares.shape)
    if shares[row, col] <= GOLDEN_TILE_SHARE:
        return None
    return (
        f"{shares[row, col]:.0%} of the pixels changed in the {GOLDEN_TILE} px tile at x={col * GOLDEN_TILE},"
        f" y={row * GOLDEN_TILE} (tolerance {GOLDEN_TILE_SHARE:.0%}); {int((shares > GOLDEN_TILE_SHARE).sum())} tiles"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"top": ""},  # the top caption gone
        {"marks": [Mark((150, 110, 70, 80), "sad 93%")]},  # another label
        {"marks": []},  # the face mark gone
        {"marks": [Mark((152, 110, 70, 80), "happy 93%")]},  # the mark moved by 2 px
    ],
    ids=["no-top-caption", "other-label", "no-mark", "mark-moved"],
)
def test_the_golden_comparison_sees_small_changes(change: dict[str, object]) -> None:
    """The tolerance lets antialiasing through, not a missing caption, label or mark."""
    options: dict[str, object] = {
        "top": LONG_CAPTION[:140],
        "bottom": "",
        "marks": [Mark((150, 110, 70, 80), "happy 93%")],
        **change,
    }
    changed = decode(render(checkerboard(320, 240), format="png", **options))  # type: ignore[arg-type]
    expected = decode((GOLDEN_DIR / "checkerboard.png").read_bytes())
    assert worst_tile(changed, expected) is not None


@pytest.mark.parametrize(("width", "height"), [(1600, 1200), (1600, 900), (1200, 1200), (900, 1200)])
def test_one_long_word_is_broken_across_lines_not_shrunk_to_one_unreadable_line(width: int, height: int) -> None:
    # Measured: 6.4 to 9.2% of the height once broken; kept whole it was 1.3 to 3.2% (one line).
    block = _layout("W" * 60 + "x" * 60, width, height, 20)
    assert block is not None and len(block.lines) >= 3
    assert block.font.size >= 0.05 * height
    # Ordinary words stay whole: no line of a sentence starts mid-word.
    sentence = _layout("when the build is green and nobody touched anything since friday", width, height, 20)
    assert sentence is not None and sentence.font.size >= 0.06 * height
    words = ["WHEN", "THE", "BUILD", "IS", "GREEN", "AND", "NOBODY", "TOUCHED", "ANYTHING", "SINCE", "FRIDAY"]
    assert " ".join(line.text for line in sentence.lines).split() == words


@pytest.mark.parametrize(
    ("size", "caption"),
    [
        ((1600, 1200), "when the code works on the first try"),
        ((900, 1600), "ok"),
        ((1200, 1200), "so @ gq"),
        ((320, 240), "ça va, non?"),
        ((30, 900), "w"),  # narrower than the letter: the outline of its parts outside still shows
    ],
)
def test_captions_look_as_pillows_stroked_text(size: tuple[int, int], caption: str) -> None:
    """The outline grown from the letters (render._outline) draws about what Pillow's stroked text draws.

    The white letters are the same pixels; the black outline is grown by an octagon, not
    FreeType's round pen, so it covers a little more (measured: 0.9 to 3.0% more dark pixels on
    these five). One pixel less or more of outline all round is 2.8 to 9% less or more.
    """
    width, height = size
    image = flat(width, height)
    drawn = png(image, top=caption, bottom=caption)
    reference = Image.fromarray(image)
    draw = ImageDraw.Draw(reference)
    margin = _margin(width, height)
    block = _layout(caption, width, height, margin)
    assert block is not None
    for top in (margin, height - margin - block.height):
        for line in block.lines:
            draw.text(
                (line.x, top + line.y),
                line.text,
                font=block.font,
                anchor="la",
                fill=(255, 255, 255),
                stroke_width=block.stroke,
                stroke_fill=(0, 0, 0),
            )
    expected = np.asarray(reference)
    white, expected_white = drawn.min(axis=2) >= 192, expected.min(axis=2) >= 192
    assert (white != expected_white).sum() <= 0.005 * expected_white.sum()
    dark, expected_dark = (drawn.max(axis=2) < 64).sum(), (expected.max(axis=2) < 64).sum()
    assert 0.99 * expected_dark <= dark <= 1.04 * expected_dark
