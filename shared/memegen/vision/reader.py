"""Stage 1 of the meme engine: the uploaded bytes become an upright 8-bit RGB array.

Every upload is untrusted. The reader refuses what it does not read with a one-line
reason (``UnsupportedImage``), refuses decompression bombs from the header alone,
before any pixel data is decoded (``ImageTooLarge``), applies the EXIF orientation,
flattens transparency onto white and brings every colour mode to 8-bit RGB. Only
pixels leave this module: EXIF (GPS included) and ICC profiles are dropped here.

Pillow is only ever asked to parse the six accepted formats, so the header parsers
of the forty others (EPS, which runs Ghostscript, among them) never see user data.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from memegen.contract import READER_FORMATS
from memegen.errors import ImageTooLarge, UnsupportedImage

# Pillow's names of the formats MemeGen reads, in the order Pillow tries them.
ACCEPTED_FORMATS: Final = READER_FORMATS
# Pillow opens multi-picture JPEGs (stereo and burst shots from some cameras) as
# MPO: the first picture is an ordinary JPEG.
_FORMAT_ALIASES: Final = {"MPO": "JPEG"}
_ACCEPTED_TEXT: Final = "JPEG, PNG, WebP, GIF, BMP or TIFF"

# What Pillow raises on malformed input: the set its own fuzz tests accept, plus the
# IndexError, TypeError and struct.error that Image.open itself treats as "this
# plugin cannot read these bytes". Only Pillow calls are wrapped, so a bug in this
# module still surfaces as one.
_PILLOW_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    NotImplementedError,
    OverflowError,
)

# First bytes of formats users upload by mistake, so that the refusal can say what
# the file is. Checked before Pillow sees anything.
_REFUSED_MAGIC: Final = (
    (b"%PDF-", "PDF documents are not supported: upload a photo (JPEG or PNG)"),
    (b"PK\x03\x04", "ZIP archives are not supported: upload one photo, not an archive"),
    (b"PK\x05\x06", "ZIP archives are not supported: upload one photo, not an archive"),
    (b"\x00\x00\x01\x00", "ICO icons are not supported: upload a photo (JPEG or PNG)"),
    (b"\x00\x00\x02\x00", "CUR cursors are not supported: upload a photo (JPEG or PNG)"),
    (b"8BPS", "Photoshop (PSD) files are not supported: export a JPEG or PNG"),
)
# ISO media (ftyp box) brands. An AVIF file also lists mif1, so AVIF is looked for first.
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
# First bytes of the accepted formats: when Pillow cannot open such a file, it is
# a damaged one of those, not some other kind of file.
_ACCEPTED_MAGIC: Final = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
_SNIFF_BYTES: Final = 4096

# EXIF orientation -> the transpose that makes the picture upright; the same table
# as ImageOps.exif_transpose, which also rewrites metadata this module drops anyway.
_UPRIGHT: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# libjpeg's DCT scaling decodes at 1/8, 1/4 or 1/2 of full size nearly for free.
_DCT_DIVISORS: Final = (8, 4, 2)
_WHITE: Final = (255, 255, 255)


@dataclass(frozen=True)
class Picture:
    """An uploaded image as pixels only: no EXIF, GPS or ICC data survives reading.

    ``rgb`` is an H x W x 3 uint8 array in RGB order, upright (the EXIF orientation
    applied), C-contiguous and read-only, as the Picture is frozen: copy it to draw
    on it. ``format`` is one of ``ACCEPTED_FORMATS``. ``original_size`` is the
    (width, height) of the full-resolution upright image. ``scale`` is the decoded
    size over the original size: 1.0, or 1/2, 1/4 or 1/8 when a JPEG was decoded at
    reduced size, so a point (x, y) of ``rgb`` is (x / scale, y / scale) in the
    original. A reduced decode rounds partial 8x8 blocks up, so ``rgb`` may be one
    pixel wider or taller than ``original_size * scale``.
    """

    rgb: np.ndarray
    format: str
    original_size: tuple[int, int]
    scale: float


def read_image(
    data: bytes,
    *,
    max_bytes: int = 20_000_000,
    max_pixels: int = 50_000_000,
    min_long_side: int | None = None,
    max_aspect: float | None = None,
) -> Picture:
    """Decode an uploaded image into an upright 8-bit RGB ``Picture``.

    Reads JPEG, PNG (8- or 16-bit, any colour type), WebP, GIF (first frame only),
    BMP and TIFF. Transparent pixels become white.

    ``max_bytes`` and ``max_pixels`` bound the file and the image it declares; the
    pixel count comes from the header, so a decompression bomb is refused before its
    pixel data is decoded. With ``min_long_side``, a JPEG is decoded at the smallest DCT
    scale whose long side is still at least ``min_long_side`` pixels (``scale`` says
    which); other formats, and JPEGs too small to shrink, are decoded at full size.
    With ``max_aspect``, an image whose long side is more than that many times its
    short side is refused from its header too (``UnsupportedImage``, "too thin").

    Raises ``ImageTooLarge`` when over a limit, and ``UnsupportedImage`` with a
    one-line reason for anything else it cannot or will not read: an empty file,
    text, HEIC, AVIF, PDF, SVG, ZIP, ICO, PSD, a truncated or corrupt image, a
    0-pixel image or a format outside the accepted six. ``ValueError`` means a bad
    argument, not a bad upload.
    """
    if min_long_side is not None and min_long_side < 1:
        raise ValueError(f"min_long_side must be a positive number of pixels, not {min_long_side}")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is {len(data):,} bytes; the limit is {max_bytes:,}")
    if not data:
        raise UnsupportedImage("empty file: no image data was uploaded")
    head = data[:_SNIFF_BYTES]
    reason = _refused_kind(head)
    if reason is not None:
        raise UnsupportedImage(reason)

    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_large_for_pillow(exc) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage(_unidentified_reason(head)) from exc
    except _PILLOW_ERRORS as exc:
        # Image.open reads the header only: an error here is a damaged header.
        raise UnsupportedImage(_damaged_reason(exc, _magic_format(head))) from exc
    with image:
        return _decode(image, max_pixels=max_pixels, min_long_side=min_long_side, max_aspect=max_aspect)


def _decode(image: Image.Image, *, max_pixels: int, min_long_side: int | None, max_aspect: float | None) -> Picture:
    fmt = _FORMAT_ALIASES.get(image.format or "", image.format or "")
    if fmt not in ACCEPTED_FORMATS:  # cannot happen with formats=..., kept as a guard
        raise UnsupportedImage(f"{fmt or 'this'} images are not supported: upload a {_ACCEPTED_TEXT}")
    width, height = image.size
    if width < 1 or height < 1:
        raise UnsupportedImage(f"degenerate image: {width}x{height} pixels")
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        raise UnsupportedImage(
            f"the image is {width}x{height} pixels: too thin for a meme"
            f" (its sides differ more than {max_aspect:g} to 1)"
        )
    # Image.open has read the header only; this is the last point before pixel
    # data is decoded, where a bomb costs nothing to refuse.
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:g} megapixels"
        )

    scale = 1.0
    try:
        if min_long_side is not None and fmt == "JPEG":
            divisor = _dct_divisor(width, height, min_long_side)
            if divisor > 1:
                # Asking for exactly size // divisor makes Pillow pick that divisor
                # (it takes the largest power of two <= full // requested).
                drafted = image.draft("RGB", (width // divisor, height // divisor))
                if drafted is not None:
                    scale = drafted[1][2] / width
        # Truncation raises here only because ImageFile.LOAD_TRUNCATED_IMAGES stays
        # False (Pillow's default, never changed here): with it True, a truncated
        # JPEG would load as a picture whose lower part is grey.
        image.load()
    except Image.DecompressionBombError as exc:
        raise _too_large_for_pillow(exc) from exc
    except _PILLOW_ERRORS as exc:
        raise UnsupportedImage(_damaged_reason(exc, fmt)) from exc

    # Read after load: PNG may keep its eXIf chunk after the pixel data, and Pillow
    # uprights TIFFs itself while loading and then drops their orientation tag.
    orientation = _orientation(image)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    mode = image.mode
    try:
        if orientation in _UPRIGHT:
            image = image.transpose(_UPRIGHT[orientation])
        rgb = _to_rgb(image)
    except ValueError as exc:  # Pillow's "conversion from ... not supported"
        raise UnsupportedImage(f"unsupported {fmt} image: its colour mode {mode} cannot be read") from exc
    rgb.flags.writeable = False
    return Picture(rgb=rgb, format=fmt, original_size=(width, height), scale=scale)


def _too_large_for_pillow(exc: Image.DecompressionBombError) -> ImageTooLarge:
    # Pillow's own hard limit (twice Image.MAX_IMAGE_PIXELS) only fires first when
    # max_pixels is set above it. Its warning, between the two, is left alone:
    # max_pixels is the limit that counts, and the filter that would turn the
    # warning into an error is process-wide state, unsafe across threads.
    return ImageTooLarge(f"the image is too large to decode safely: {exc}")


def _dct_divisor(width: int, height: int, min_long_side: int) -> int:
    """The largest DCT divisor whose decoded long side is still at least min_long_side."""
    long_side = max(width, height)
    for divisor in _DCT_DIVISORS:
        # The short side must keep a pixel too: Pillow divides by the requested size.
        if -(-long_side // divisor) >= min_long_side and min(width, height) >= divisor:
            return divisor
    return 1


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _PILLOW_ERRORS:
        # A photo with a garbled EXIF block is still a photo: use it as stored.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    transparent = "transparency" in image.info
    if mode == "RGB" and not transparent:
        # The path of every colour JPEG: one copy, from Pillow's 4-byte pixels to 3.
        return np.asarray(image)
    if mode.startswith("I;16"):
        return _from_16_bit(image)
    if mode in ("I", "F"):
        return _stretched(image)
    if mode in _ALPHA_MODES or transparent:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", image.size, _WHITE)
        flat.paste(rgba, mask=rgba)
        return np.asarray(flat)
    # L, 1, P, CMYK (Pillow undoes Adobe's inverted CMYK when it reads the JPEG), YCbCr...
    return np.asarray(image.convert("RGB"))


def _from_16_bit(image: Image.Image) -> np.ndarray:
    values = np.asarray(image).astype(np.uint32)
    # Rounded values / 257 maps 0..65535 onto 0..255 exactly; Pillow's own
    # conversion to L clips everything above 255 to white instead.
    grey = ((values + 128) // 257).astype(np.uint8)
    key = image.info.get("transparency")
    if isinstance(key, int):
        grey[values == key] = 255
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _stretched(image: Image.Image) -> np.ndarray:
    # 32-bit integer and float pixels have no agreed white point (TIFFs from
    # scientific tools), so their own range is stretched onto 0..255.
    values = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        grey = np.zeros(values.shape, np.uint8)
    else:
        low, high = float(values[finite].min()), float(values[finite].max())
        values = np.where(finite, values, low)
        if high > low:
            grey = np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)
        else:
            grey = np.full(values.shape, np.clip(round(low), 0, 255), np.uint8)
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _refused_kind(head: bytes) -> str | None:
    """Why a file whose first bytes are those of a format MemeGen refuses is refused."""
    if head[4:8] == b"ftyp":
        return _iso_media_reason(head)
    for magic, reason in _REFUSED_MAGIC:
        if head.startswith(magic):
            return reason
    start, lowered = head.removeprefix(b"\xef\xbb\xbf").lstrip(), head.lower()
    # An HTML page may hold inline <svg> icons; it is refused as text instead.
    if start.startswith(b"<") and b"<svg" in lowered and b"<html" not in lowered:
        return "SVG images are not supported: upload a photo (JPEG or PNG)"
    return None


def _iso_media_reason(head: bytes) -> str:
    # The ftyp box: size, "ftyp", major brand, minor version, compatible brands.
    box_end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF images are not supported: upload a JPEG or PNG"
    if brands & _HEIF_BRANDS:
        return "HEIC/HEIF images are not supported: upload a JPEG or PNG (iPhone: Camera > Formats > Most Compatible)"
    return "videos and other MP4/QuickTime files are not supported: upload a photo"


def _magic_format(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _ACCEPTED_MAGIC if head.startswith(magic)), None)


def _unidentified_reason(head: bytes) -> str:
    if _is_text(head):
        return "not an image: the file is text"
    fmt = _magic_format(head)
    if fmt is not None:
        return f"corrupt {fmt} image: its header cannot be read"
    return f"not an image, or not one MemeGen reads: upload a {_ACCEPTED_TEXT}"


def _damaged_reason(exc: BaseException, fmt: str | None) -> str:
    what = f"{fmt} image" if fmt else "image"
    # Pillow says "truncated" ("image file is truncated", "Truncated File Read")
    # when the data stops early; anything else is damage inside the file.
    if "truncated" in str(exc).lower():
        return f"truncated {what}: the file ends before its pixel data does"
    return f"corrupt {what}: its pixel data cannot be decoded"


def _is_text(head: bytes) -> bool:
    sample = head[:1024]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the sample's end is still text.
        if exc.start < len(sample) - 3:
            return False
        text = sample[: exc.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\n\r\f" for char in text)
