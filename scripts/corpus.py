"""Bad and odd uploads, each made here (nothing downloaded), with the outcome MemeGen documents.

``CASES`` holds at least 30 kinds. Each has the bytes, the object name it is uploaded under
(after ``uploads/``), its content type, and what must come of it: ``"meme"`` (a meme and a
``done`` record) or ``"failed"`` (a ``failed`` record whose error says why; the CLI skips it
with one line). Photos with faces come from the test photos where present.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    """One upload and its documented outcome."""

    kind: str
    data: bytes
    expect: str  # "meme" or "failed"
    name: str = "upload"
    content_type: str = "image/jpeg"
    says: str = ""  # a word the failure's reason must hold
    faces: int = 0  # the faces a meme must find (the README's table states them)
    skip: str = ""  # why the case cannot be made here (its photos are missing): tests skip it, saying so


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _scene(width: int = 320, height: int = 240) -> Image.Image:
    """A smooth colourful picture without faces."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(side: int = 100_000) -> bytes:
    """A valid PNG header for side x side pixels (10 gigapixels) with a tiny compressed body."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # a few rows: never decoded that far
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def _with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(image, "JPEG", exif=exif.tobytes(), quality=90)


def _huge_exif(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: nearly the 64 KB an APP1 segment holds
    exif[0x0112] = 1
    return _encode(image, "JPEG", exif=exif.tobytes())


def _gps_exif(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 28.0)}
    exif[0x010F] = "SecretPhoneMaker"
    return _encode(image, "JPEG", exif=exif.tobytes())


def _corrupt_huffman(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    start = data.find(b"\xff\xda") + 20
    for i in range(start, min(start + 400, len(data) - 2), 7):
        data[i] = 0xFF if data[i] != 0xFF else 0x00
    return bytes(data)


def _faces(photos: Path | None, count: int) -> Image.Image | None:
    """``count`` copies of a real face in a row, or None without the photos."""
    if photos is None or not (photos / "obama-240p.jpg").exists():
        return None
    face = Image.open(photos / "obama-240p.jpg").convert("RGB")
    face = face.crop((face.width // 2 - 60, 20, face.width // 2 + 60, 200)).resize((80, 120))
    columns = min(count, 10)
    rows = -(-count // columns)
    canvas = Image.new("RGB", (columns * 90, rows * 130), (200, 200, 200))
    for i in range(count):
        canvas.paste(face, ((i % columns) * 90 + 5, (i // columns) * 130 + 5))
    return canvas


def cases(photos: Path | None) -> list[Case]:
    """Every case; those that need a real face only where the photos are present."""
    scene = _scene()
    jpeg = _encode(scene, "JPEG", quality=90)
    out = [
        Case("empty file", b"", "failed", says="empty"),
        Case("text named .jpg", b"hello, this is not a photo\n" * 10, "failed", name="notes.jpg", says="text"),
        Case("truncated JPEG", jpeg[: len(jpeg) // 2], "failed", says="truncated"),
        Case("JPEG with corrupt huffman data", _corrupt_huffman(jpeg), "failed", says="corrupt"),
        Case("PNG bomb (100,000 x 100,000)", png_bomb(), "failed", content_type="image/png", says="too large"),
        Case(
            "100,000 x 1 image",
            _encode(Image.new("RGB", (100_000, 1), (9, 9, 9)), "PNG"),
            "failed",
            content_type="image/png",
            says="too thin",
        ),
        Case(
            "1 x 1 image",
            _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
            "failed",
            content_type="image/png",
            says="too small",
        ),
        Case(
            "20,000 x 40 panorama",
            _encode(_scene(20_000, 40), "PNG"),
            "failed",
            content_type="image/png",
            says="too thin",
        ),
        Case(
            "1,500,000 x 33 strip (a small file under the pixel limit)",
            _encode(Image.new("L", (1_500_000, 33), 128), "PNG"),
            "failed",
            content_type="image/png",
            says="too thin",
        ),
        Case(
            "16-bit PNG",
            _encode(Image.fromarray((np.arange(240 * 320).reshape(240, 320) % 65536).astype(np.uint16)), "PNG"),
            "meme",
            content_type="image/png",
        ),
        Case(
            "palette PNG with transparency",
            _encode(scene.convert("P"), "PNG", transparency=0),
            "meme",
            content_type="image/png",
        ),
        Case("CMYK JPEG", _encode(scene.convert("CMYK"), "JPEG"), "meme"),
        *(Case(f"EXIF orientation {o}", _with_orientation(scene, o), "meme") for o in range(1, 9)),
        Case(
            "animated GIF",
            _encode(scene.convert("P"), "GIF", save_all=True, append_images=[_scene(320, 240).rotate(90).convert("P")]),
            "meme",
            content_type="image/gif",
        ),
        Case("WebP", _encode(scene, "WEBP"), "meme", content_type="image/webp"),
        Case("TIFF", _encode(scene, "TIFF"), "meme", content_type="image/tiff"),
        Case(
            "HEIC bytes",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200,
            "failed",
            content_type="image/heic",
            says="HEIC",
        ),
        Case(
            "SVG",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>',
            "failed",
            content_type="image/svg+xml",
            says="SVG",
        ),
        Case("ZIP", _zip(), "failed", content_type="application/zip", says="ZIP"),
        Case("huge EXIF block", _huge_exif(scene), "meme"),
        Case("EXIF with GPS", _gps_exif(scene), "meme"),
        Case("name with ../", jpeg, "meme", name="../../etc/passwd.jpg"),
        Case("name with spaces and Unicode", jpeg, "meme", name="my phöto 🙂 ünïcode.jpg"),
        Case("name 1,000 characters long", jpeg, "meme", name="a" * 996 + ".jpg"),
        Case("wrong content type", jpeg, "meme", content_type="text/plain"),
        Case("over the size limit", b"\xff\xd8\xff" + b"\x00" * 21_000_000, "failed", says="limit"),
        Case("no face", jpeg, "meme"),
        Case(
            "PDF",
            b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            "failed",
            content_type="application/pdf",
            says="PDF",
        ),
    ]
    tiny = _faces(photos, 1)
    if tiny is None:
        # Listed all the same, so that a run without the photos says what it skipped.
        skip = "needs the test photos: set MEMEGEN_PHOTOS (CI sets it to ../shared/photos)"
        out += [
            Case("a face smaller than 20 px", b"", "meme", skip=skip),
            Case("a face smaller than 20 px in a big photo", b"", "meme", skip=skip),
            Case("30 faces", b"", "meme", faces=30, skip=skip),
        ]
        return out
    # A real face 12 px wide: too small to read, so the meme takes the no-face captions.
    small = Image.new("RGB", (64, 64), (120, 130, 140))
    small.paste(tiny.resize((12, 18)), (26, 23))
    out.append(Case("a face smaller than 20 px", _encode(small, "PNG"), "meme", content_type="image/png"))
    small_in_big = Image.new("RGB", (1600, 1200), (120, 130, 140))
    small_in_big.paste(tiny.resize((13, 19)), (800, 600))
    out.append(Case("a face smaller than 20 px in a big photo", _encode(small_in_big, "JPEG"), "meme"))
    out.append(Case("30 faces", _encode(_faces(photos, 30) or scene, "JPEG", quality=92), "meme", faces=30))
    return out


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", b"not really")
    return buffer.getvalue()


def main() -> int:
    """Print the corpus and what the engine makes of each case, as a Markdown table (for the README)."""
    import os

    from memegen.errors import InputError
    from memegen.meme.engine import Engine
    from memegen.settings import Settings

    engine = Engine.from_settings(Settings.from_env())
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", "../shared/photos"))
    print("| upload | outcome |")
    print("|---|---|")
    for case in cases(photos if photos.is_dir() else None):
        if case.skip:
            print(f"| {case.kind} | not made here: {case.skip} |")
            continue
        try:
            meme = engine.make(case.data)
            outcome = f"meme ({len(meme.faces)} face{'s' if len(meme.faces) != 1 else ''})"
        except InputError as refused:
            outcome = f"failed: {refused}"
        print(f"| {case.kind} | {outcome.replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
