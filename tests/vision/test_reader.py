"""Reading uploads: every accepted format and colour mode, EXIF orientation, refusals, bombs, draft decoding.

Every test image is made here with Pillow and numpy; the real photos come from MEMEGEN_PHOTOS.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from memegen.errors import ImageTooLarge, InputError, UnsupportedImage
from memegen.vision.reader import ACCEPTED_FORMATS, Picture, read_image

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 40), (40, 50, 210), (240, 220, 20)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def quadrants(width: int = 64, height: int = 48) -> np.ndarray:
    """Four flat colours, one per quadrant: any flip or rotation moves them."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = YELLOW
    return pixels


def quadrant_colours(rgb: np.ndarray) -> list[tuple[int, ...]]:
    """The colour at the centre of each quadrant: top left, top right, bottom left, bottom right."""
    h, w = rgb.shape[:2]
    return [tuple(int(c) for c in rgb[y, x]) for y in (h // 4, 3 * h // 4) for x in (w // 4, 3 * w // 4)]


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tolerance, (actual, expected)


def assert_well_formed(picture: Picture, height: int, width: int) -> None:
    assert picture.rgb.shape == (height, width, 3)
    assert picture.rgb.dtype == np.uint8
    assert picture.rgb.flags.c_contiguous
    assert not picture.rgb.flags.writeable


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def zeros_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of zeros: all of it compresses to a few hundred bytes per megapixel."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def textured_photo(width: int, height: int) -> Image.Image:
    """Smooth noise, photo-like enough that JPEG decodes at any scale look alike."""
    rng = np.random.default_rng(7)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8))
    return coarse.resize((width, height), Image.Resampling.BICUBIC)


# What each EXIF orientation means, written independently of Pillow's table: the
# transformation that turns the stored pixels into the upright picture.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored about the main diagonal
    6: lambda a: np.rot90(a, -1),  # stored turned left: turn clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored about the other diagonal
    8: lambda a: np.rot90(a, 1),  # stored turned right: turn anticlockwise
}


# Accepted formats and colour modes


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 12),
        ("PNG", {}, 0),
        ("WEBP", {"quality": 90}, 20),
        ("WEBP", {"lossless": True}, 0),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("TIFF", {"compression": "tiff_deflate"}, 0),
    ],
)
def test_each_accepted_format_round_trips(fmt: str, options: dict[str, Any], tolerance: int) -> None:
    picture = read_image(encode(Image.fromarray(quadrants()), fmt, **options))
    assert picture.format == fmt
    assert picture.original_size == (64, 48)
    assert picture.scale == 1.0
    assert_well_formed(picture, 48, 64)
    for actual, expected in zip(quadrant_colours(picture.rgb), [RED, GREEN, BLUE, YELLOW], strict=True):
        assert_close(actual, expected, tolerance)


def test_a_multi_picture_jpeg_reads_as_jpeg() -> None:
    first, second = Image.fromarray(quadrants()), Image.new("RGB", (64, 48), "black")
    data = encode(first, "MPO", save_all=True, append_images=[second])
    picture = read_image(data)
    assert picture.format == "JPEG"
    assert_close(quadrant_colours(picture.rgb)[0], RED, 12)


def test_16_bit_png_is_scaled_down_not_clipped() -> None:
    values = np.linspace(0, 65535, 256 * 4, dtype=np.uint16).reshape(4, 256)
    picture = read_image(encode(Image.fromarray(values), "PNG"))
    assert Image.open(io.BytesIO(encode(Image.fromarray(values), "PNG"))).mode == "I;16"
    grey = picture.rgb[..., 0].astype(int)
    assert (picture.rgb == grey[..., np.newaxis]).all()
    assert np.abs(grey - values.astype(int) / 257).max() <= 0.5
    assert grey.min() == 0 and grey.max() == 255
    assert 126 <= grey.ravel()[512] <= 129  # half way; clipping would make all but the darkest 1/256 white


def test_16_bit_png_transparency_key_is_white() -> None:
    values = np.full((4, 4), 30000, np.uint16)
    values[0, 0] = 1234
    picture = read_image(encode(Image.fromarray(values), "PNG", transparency=1234))
    assert tuple(picture.rgb[0, 0]) == (255, 255, 255)
    assert tuple(picture.rgb[1, 1]) == (117, 117, 117)  # 30000 / 257


def test_palette_png_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([*RED, *GREEN, *BLUE])
    image.putpixel((1, 0), 1)
    image.putpixel((2, 0), 2)
    # tRNS: index 0 opaque, index 1 fully transparent, index 2 half transparent
    picture = read_image(encode(image, "PNG", transparency=bytes([255, 0, 128])))
    assert tuple(picture.rgb[0, 0]) == RED
    assert tuple(picture.rgb[0, 1]) == (255, 255, 255)
    assert_close(tuple(picture.rgb[0, 2]), tuple((c * 128 + 255 * 127) // 255 for c in BLUE), 1)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_transparent_palette_index_is_white(fmt: str) -> None:
    image = Image.new("P", (4, 2), 0)
    image.putpalette([*RED, *GREEN])
    image.putpixel((3, 1), 1)
    picture = read_image(encode(image, fmt, transparency=1))
    assert tuple(picture.rgb[0, 0]) == RED
    assert tuple(picture.rgb[1, 3]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(mode: str) -> None:
    colour = (200, 40, 0) if mode == "RGBA" else (60, 60, 60)
    pixels = np.empty((2, 3, 4), np.uint8)
    pixels[..., :3] = colour
    pixels[..., 3] = [[255, 128, 0], [255, 128, 0]]
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    picture = read_image(encode(image, "PNG"))
    assert tuple(picture.rgb[0, 0]) == colour
    assert_close(tuple(picture.rgb[0, 1]), tuple((c * 128 + 255 * 127) // 255 for c in colour), 1)
    assert tuple(picture.rgb[0, 2]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_colour_key_transparency_is_white(mode: str) -> None:
    key: int | tuple[int, int, int] = 7 if mode == "L" else (1, 2, 3)
    image = Image.new(mode, (3, 1), key)
    image.putpixel((2, 0), 100 if mode == "L" else (100, 100, 100))
    picture = read_image(encode(image, "PNG", transparency=key))
    assert tuple(picture.rgb[0, 0]) == (255, 255, 255)
    assert tuple(picture.rgb[0, 2]) == (100, 100, 100)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(fmt: str) -> None:
    # Pillow writes CMYK JPEGs the Adobe way (inverted, with an Adobe marker) and undoes it on reading.
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), fmt)
    picture = read_image(data)
    assert_well_formed(picture, 16, 16)
    assert_close(tuple(picture.rgb[8, 8]), (255, 0, 0), 3)


@pytest.mark.parametrize(("fmt", "mode"), [("JPEG", "L"), ("PNG", "L"), ("BMP", "1"), ("TIFF", "L")])
def test_grayscale_becomes_grey_rgb(fmt: str, mode: str) -> None:
    value = 90 if mode == "L" else 255
    picture = read_image(encode(Image.new(mode, (16, 8), value), fmt))
    assert_well_formed(picture, 8, 16)
    assert_close(tuple(picture.rgb[4, 8]), (value, value, value), 1)


@pytest.mark.parametrize(
    "values",
    [np.arange(12, dtype=np.int32) * 70_000 - 100_000, np.linspace(0, 1, 12, dtype=np.float32)],
    ids=["int32", "float32"],
)
def test_32_bit_integer_and_float_tiffs_are_stretched(values: np.ndarray) -> None:
    picture = read_image(encode(Image.fromarray(values.reshape(3, 4)), "TIFF"))
    grey = picture.rgb[..., 0]
    assert grey.min() == 0 and grey.max() == 255
    assert (np.diff(grey.ravel().astype(int)) > 0).all()


# EXIF orientation


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(fmt: str, orientation: int) -> None:
    stored = quadrants(64, 32)
    stored[:8, :8] = 0  # a black corner: orientations 1..8 all put it somewhere else or mirror around it
    exif = Image.Exif()
    exif[0x0112] = orientation
    options: dict[str, Any] = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    if fmt == "WEBP":
        options = {"lossless": True}
    picture = read_image(encode(Image.fromarray(stored), fmt, exif=exif, **options))

    expected = UPRIGHT[orientation](stored)
    assert picture.rgb.shape == expected.shape
    assert picture.original_size == (expected.shape[1], expected.shape[0])
    assert np.abs(picture.rgb.astype(int) - expected).mean() < 3
    for actual, wanted in zip(quadrant_colours(picture.rgb), quadrant_colours(expected), strict=True):
        assert_close(actual, wanted, 8)


def test_the_upright_table_matches_the_exif_definition() -> None:
    # EXIF 2.3, tag 0x0112: for 5..8, where the stored top row (the "0th row") ends up.
    stored = np.arange(6).reshape(2, 3, 1)  # top row 0 1 2, bottom row 3 4 5
    assert UPRIGHT[5](stored)[:, 0, 0].tolist() == [0, 1, 2]  # top row -> left column, downwards
    assert UPRIGHT[6](stored)[:, -1, 0].tolist() == [0, 1, 2]  # top row -> right column, downwards
    assert UPRIGHT[7](stored)[:, -1, 0].tolist() == [2, 1, 0]  # top row -> right column, upwards
    assert UPRIGHT[8](stored)[:, 0, 0].tolist() == [2, 1, 0]  # top row -> left column, upwards
    assert all(UPRIGHT[k](stored).shape == (3, 2, 1) for k in (5, 6, 7, 8))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "exif",
    [
        pytest.param(b"Exif\x00\x00MM", id="cut-short"),
        pytest.param(b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(range(40)), id="bad-entry-count"),
        # one entry: Orientation (0x0112), SHORT, count 1, value 99
        pytest.param(
            b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00c" + bytes(6),
            id="orientation-99",
        ),
    ],
)
def test_garbled_exif_leaves_the_photo_as_stored(exif: bytes) -> None:
    picture = read_image(encode(Image.fromarray(quadrants()), "JPEG", exif=exif, quality=95))
    assert picture.rgb.shape == (48, 64, 3)
    assert_close(quadrant_colours(picture.rgb)[0], RED, 12)


# GIF


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in (GREEN, RED, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    picture = read_image(data)
    assert picture.format == "GIF"
    assert_well_formed(picture, 10, 20)
    assert (picture.rgb == GREEN).all()


# Refusals


def fake_heic() -> bytes:
    ftyp = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return ftyp + struct.pack(">I", 16) + b"meta" + bytes(8)


def fake_avif() -> bytes:
    ftyp = struct.pack(">I", 32) + b"ftypavif" + b"\x00\x00\x00\x00" + b"avifmif1miafMA1B"
    return ftyp + struct.pack(">I", 16) + b"meta" + bytes(8)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", encode(Image.fromarray(quadrants()), "JPEG"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "empty file", id="empty"),
        pytest.param(b"JFIF photo.jpg - not really a jpeg, just text\n", "the file is text", id="text"),
        pytest.param("un café, s'il vous plaît ☕\n".encode(), "the file is text", id="utf8-text"),
        pytest.param(b"\xff\xd8\xff" + b"this only starts like a JPEG", "corrupt JPEG", id="jpeg-magic-then-text"),
        pytest.param(fake_heic(), "HEIC", id="heic"),
        pytest.param(fake_avif(), "AVIF", id="avif"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF documents", id="pdf"),
        pytest.param(b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>\n', "SVG", id="svg"),
        pytest.param(b'<svg width="10" height="10"><rect/></svg>', "SVG", id="bare-svg"),
        pytest.param(b"<!DOCTYPE html><html><body><svg></svg></body></html>", "the file is text", id="html"),
        pytest.param(zip_bytes(), "ZIP archives", id="zip"),
        pytest.param(encode(Image.new("RGB", (32, 32)), "ICO"), "ICO", id="ico"),
        pytest.param(b"8BPS\x00\x01" + bytes(40), "PSD", id="psd"),
        pytest.param(encode(Image.new("RGB", (8, 8)), "PCX"), "not one MemeGen reads", id="pcx"),
        pytest.param(encode(Image.new("RGB", (8, 8)), "JPEG2000"), "not one MemeGen reads", id="jpeg2000"),
        pytest.param(bytes(range(256)) * 4, "not an image", id="binary-noise"),
    ],
)
def test_refuses_what_is_not_a_readable_image(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedImage, match=message) as caught:
        read_image(data)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")
def test_refuses_a_real_avif_even_though_pillow_reads_it() -> None:
    with pytest.raises(UnsupportedImage, match="AVIF"):
        read_image(encode(Image.fromarray(quadrants()), "AVIF"))


def test_refuses_a_truncated_jpeg() -> None:
    data = encode(textured_photo(640, 480), "JPEG", quality=90)
    for cut in (len(data) // 2, len(data) - 200):
        with pytest.raises(UnsupportedImage, match="truncated JPEG"):
            read_image(data[:cut])
    with pytest.raises(UnsupportedImage, match="JPEG"):
        read_image(data[:100])  # inside the header


def test_refuses_a_truncated_png() -> None:
    data = encode(textured_photo(320, 240), "PNG")
    with pytest.raises(UnsupportedImage, match="truncated PNG"):
        read_image(data[: len(data) // 2])


def test_truncation_is_not_papered_over() -> None:
    # Pillow would hand back a half-grey picture for a truncated JPEG if this were True.
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("damage", ["scattered-bit-flips", "dense-0xff-runs"])
def test_corrupt_jpeg_scan_data_raises_or_decodes_without_crashing(damage: str) -> None:
    # libjpeg-turbo only warns about most damage in the entropy-coded data and
    # resynchronises: Pillow then returns wrong pixels without an error, and nothing
    # can tell them apart from right ones. With this Pillow the scattered flips decode
    # (garbage), the dense 0xFF bytes (false markers) make the decoder give up and
    # Pillow raise OSError. Either outcome is acceptable; a crash or a hang is not.
    data = bytearray(encode(textured_photo(320, 240), "JPEG", quality=90))
    scan = data.index(b"\xff\xda") + 200
    if damage == "scattered-bit-flips":
        for position in np.random.default_rng(0).integers(scan, len(data) - 2, 30):
            data[position] ^= 0xA5
    else:
        for position in range(scan, len(data) - 100, 97):
            data[position] ^= 0xFF
    try:
        picture = read_image(bytes(data))
    except UnsupportedImage as error:
        assert "corrupt JPEG" in str(error)
    else:
        assert_well_formed(picture, 240, 320)


def test_degenerate_sizes_are_refused() -> None:
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    empty_png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b""))
    with pytest.raises(UnsupportedImage):
        read_image(empty_png + png_chunk(b"IEND", b""))
    flat_gif = b"GIF89a" + struct.pack("<HHBBB", 0, 0, 0, 0, 0) + b"\x2c" + bytes(8) + b"\x00\x02\x02\x44\x01\x00\x3b"
    with pytest.raises(UnsupportedImage):
        read_image(flat_gif)


def test_over_max_bytes_is_too_large() -> None:
    data = encode(Image.fromarray(quadrants()), "PNG")
    with pytest.raises(ImageTooLarge, match="bytes"):
        read_image(data, max_bytes=len(data) - 1)
    assert read_image(data, max_bytes=len(data)).rgb.shape == (48, 64, 3)


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_png_bomb_is_refused_from_its_header(no_pixel_decoding: None) -> None:
    bomb = zeros_png(8_000, 8_000)  # 64 megapixels in under 10 kB
    assert len(bomb) < 20_000
    with pytest.raises(ImageTooLarge, match="8000x8000"):
        read_image(bomb)  # over the default 50 MP, under Pillow's own warning limit


def test_png_bomb_over_pillows_hard_limit_is_too_large(no_pixel_decoding: None) -> None:
    bomb = zeros_png(20_000, 20_000)  # 400 megapixels: Pillow itself refuses it in Image.open
    with pytest.raises(ImageTooLarge):
        read_image(bomb, max_pixels=10**12)


def test_pixel_limit_is_inclusive() -> None:
    data = encode(Image.new("RGB", (40, 25)), "PNG")
    assert read_image(data, max_pixels=1000).rgb.shape == (25, 40, 3)
    with pytest.raises(ImageTooLarge, match="40x25"):
        read_image(data, max_pixels=999)


def test_input_errors_are_input_errors() -> None:
    assert issubclass(UnsupportedImage, InputError) and issubclass(ImageTooLarge, InputError)
    with pytest.raises(ValueError, match="min_long_side"):
        read_image(encode(Image.new("RGB", (8, 8)), "PNG"), min_long_side=0)


def test_picture_holds_pixels_only() -> None:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0)}  # GPS
    picture = read_image(encode(Image.fromarray(quadrants()), "JPEG", exif=exif, icc_profile=b"\x00" * 128))
    assert [field.name for field in dataclasses.fields(picture)] == ["rgb", "format", "original_size", "scale"]


# Reduced-size JPEG decoding


@pytest.mark.parametrize(
    ("size", "min_long_side", "divisor"),
    [
        ((2000, 1500), 400, 4),  # 2000/4 = 500 >= 400 > 2000/8
        ((2000, 1500), 250, 8),
        ((2000, 1500), 1001, 1),  # half would be 1000: too small, full size
        ((2001, 1503), 501, 4),  # partial blocks round up: 2001 / 4 -> 501
        ((1500, 2000), 700, 2),  # portrait: the long side is the height
    ],
)
def test_draft_decodes_jpeg_at_the_smallest_scale_keeping_min_long_side(
    size: tuple[int, int], min_long_side: int, divisor: int
) -> None:
    width, height = size
    data = encode(textured_photo(width, height), "JPEG", quality=90)
    picture = read_image(data, min_long_side=min_long_side)
    assert picture.scale == 1 / divisor
    assert picture.original_size == size
    assert picture.rgb.shape == (-(-height // divisor), -(-width // divisor), 3)
    assert max(picture.rgb.shape[:2]) >= min_long_side
    # Each decoded pixel is the mean of a divisor x divisor block of the full decode.
    rows, cols = height // divisor, width // divisor
    full = read_image(data).rgb[: rows * divisor, : cols * divisor].astype(float)
    blocks = full.reshape(rows, divisor, cols, divisor, 3).mean(axis=(1, 3))
    assert np.abs(blocks - picture.rgb[:rows, :cols]).mean() < 2


def test_draft_of_a_sideways_phone_photo_swaps_after_decoding() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(textured_photo(2000, 1500), "JPEG", quality=90, exif=exif)
    picture = read_image(data, min_long_side=480)
    assert picture.scale == 0.25
    assert picture.original_size == (1500, 2000)
    assert picture.rgb.shape == (500, 375, 3)


def test_min_long_side_leaves_other_formats_at_full_size() -> None:
    picture = read_image(encode(textured_photo(400, 300), "PNG"), min_long_side=50)
    assert picture.scale == 1.0
    assert picture.rgb.shape == (300, 400, 3)


# Real photos


def test_every_real_photo_reads(photos_dir: Path) -> None:
    paths = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(paths) >= 40
    for path in paths:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            if header.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
        picture = read_image(data)
        assert picture.format == ("PNG" if path.suffix.lower() == ".png" else "JPEG"), path.name
        assert picture.format in ACCEPTED_FORMATS
        assert picture.scale == 1.0
        assert picture.original_size == (width, height), path.name
        assert_well_formed(picture, picture.original_size[1], picture.original_size[0])
        assert 20 < picture.rgb.mean() < 235, path.name  # a photo, not a blank


def test_real_rgba_png_reads_as_its_colour_channels(photos_dir: Path) -> None:
    data = (photos_dir / "32bit.png").read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
        rgba = np.asarray(image)
    picture = read_image(data)
    # The file's alpha is opaque everywhere, so compositing on white must change nothing.
    assert (picture.rgb == rgba[..., :3]).all()


def test_real_photo_draft_decode(photos_dir: Path) -> None:
    data = (photos_dir / "portrait-img4.jpg").read_bytes()  # 2500x1728, progressive
    picture = read_image(data, min_long_side=600)
    assert picture.original_size == (2500, 1728)
    assert picture.scale == 0.25
    assert picture.rgb.shape == (432, 625, 3)
