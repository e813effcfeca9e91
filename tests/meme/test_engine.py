"""The meme engine end to end on real photos, with the real models."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import memegen
import memegen.meme.engine
from memegen.errors import CaptionRefused, ImageTooLarge, UnsupportedImage
from memegen.labels import LABELS
from memegen.meme.captions import CaptionBank
from memegen.meme.engine import Engine
from memegen.meme.render import Layout, lay_out, render_layout
from memegen.settings import Settings
from memegen.vision.detect import FaceDetector
from memegen.vision.ensemble import Ensemble


@pytest.fixture(scope="module")
def engine(detector: FaceDetector, ensemble: Ensemble) -> Engine:
    return Engine(detector=detector, ensemble=ensemble, captions=CaptionBank.load(), settings=Settings())


def test_a_portrait_becomes_a_captioned_meme(engine: Engine, photos_dir: Path) -> None:
    data = (photos_dir / "obama.jpg").read_bytes()
    meme = engine.make(data)
    assert meme.content_type == "image/jpeg"
    image = Image.open(io.BytesIO(meme.image))
    assert image.format == "JPEG" and image.size == meme.size
    assert not image.getexif() and "exif" not in image.info
    assert len(meme.faces) == 1 and meme.faces[0].label in LABELS
    assert meme.caption.bank == meme.faces[0].label
    record = meme.metadata()
    json.dumps(record)
    assert set(record) >= {"faces", "caption", "timings_ms", "model_version"}
    assert set(record["timings_ms"]) == {"read", "faces", "caption", "render"}


def test_the_same_upload_gives_the_same_meme(engine: Engine, photos_dir: Path) -> None:
    data = (photos_dir / "two_people.jpg").read_bytes()
    first, second = engine.make(data), engine.make(data)
    assert first.caption == second.caption and first.image == second.image
    assert first.caption.bank.startswith("group:")


def test_boxes_are_in_upload_pixels(engine: Engine, photos_dir: Path) -> None:
    data = (photos_dir / "portrait-img4.jpg").read_bytes()
    width, height = Image.open(io.BytesIO(data)).size
    meme = engine.make(data, boxes=True, format="png")
    assert meme.content_type == "image/png" and max(meme.size) == 1600
    (face,) = meme.faces
    x, y, w, h = face.box
    assert 0 <= x < x + w <= width and 0 <= y < y + h <= height
    assert w > 400  # the face in this portrait is about 800 px wide


def test_user_caption_wins(engine: Engine, photos_dir: Path) -> None:
    meme = engine.make((photos_dir / "biden.jpg").read_bytes(), top="my own", bottom="words", format="webp")
    assert (meme.caption.top, meme.caption.bottom, meme.caption.bank) == ("my own", "words", "user")
    assert Image.open(io.BytesIO(meme.image)).format == "WEBP"


def test_own_words_too_long_for_the_photo_are_refused_not_cut_or_shrunk(engine: Engine) -> None:
    tall = io.BytesIO()
    Image.fromarray(np.full((1600, 600, 3), 90, dtype=np.uint8)).save(tall, "PNG")
    # 120 letters with no space: on a 600x1600 meme they fit only below 4% of the height.
    with pytest.raises(CaptionRefused, match="too long for a 600x1600 meme"):
        engine.make(tall.getvalue(), top="W" * 120)
    # The same words fit a landscape photo, and a sentence fits the tall one.
    wide = io.BytesIO()
    Image.fromarray(np.full((600, 1600, 3), 90, dtype=np.uint8)).save(wide, "PNG")
    assert engine.make(wide.getvalue(), top="W" * 120).caption.top == "W" * 120
    assert engine.make(tall.getvalue(), bottom="when the build is green and nobody knows why").caption.bank == "user"


def test_a_persons_caption_is_laid_out_once_and_drawn_as_checked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout the engine checks a person's words against is the one drawn, at the size it states."""
    made: list[Layout] = []
    drawn: list[Layout] = []

    def laying_out(top: str, bottom: str, **options: Any) -> Layout:
        made.append(lay_out(top, bottom, **options))
        return made[-1]

    def drawing(image: np.ndarray, layout: Layout, **options: Any) -> bytes:
        drawn.append(layout)
        return render_layout(image, layout, **options)

    monkeypatch.setattr(memegen.meme.engine, "lay_out", laying_out)
    monkeypatch.setattr(memegen.meme.engine, "render_layout", drawing)
    photo = io.BytesIO()
    # Shrunk to 1600 x 1066: the short side's size is rounded, not cut.
    Image.fromarray(np.full((1999, 3001, 3), 90, dtype=np.uint8)).save(photo, "PNG")
    meme = engine.make(photo.getvalue(), top="my own", bottom="words")
    assert len(made) == 1 and len(drawn) == 1 and drawn[0] is made[0]
    assert meme.size == made[0].sizing.meme == Image.open(io.BytesIO(meme.image)).size == (1600, 1066)


def test_no_face_gets_its_own_caption(engine: Engine) -> None:
    sky = np.zeros((480, 640, 3), dtype=np.uint8)
    sky[..., 2] = np.linspace(120, 255, 640, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(sky).save(buffer, "PNG")
    meme = engine.make(buffer.getvalue())
    assert meme.faces == [] and meme.caption.bank == "no_face"


def test_bad_uploads_raise_input_errors(engine: Engine) -> None:
    with pytest.raises(UnsupportedImage):
        engine.make(b"hello, I am not a photo")
    small = Engine(
        detector=engine.detector,
        ensemble=engine.ensemble,
        captions=engine.captions,
        settings=Settings(max_bytes=1000),
    )
    with pytest.raises(ImageTooLarge):
        small.make(bytes(2000))
    with pytest.raises(ValueError, match="format"):
        engine.make(b"", format="bmp")


def test_one_engine_serves_several_threads_at_once(
    photos_dir: Path, detector: FaceDetector, ensemble: Ensemble, settings: Settings
) -> None:
    """The functions-framework server runs requests in threads; the models must not be shared mid-invoke."""
    engine = Engine(detector=detector, ensemble=ensemble, captions=CaptionBank.load(), settings=settings)
    photos = [(photos_dir / n).read_bytes() for n in ("obama-480p.jpg", "two_people.jpg", "biden.jpg")] * 4
    alone = [engine.make(p).metadata()["faces"] for p in photos]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda p: engine.make(p).metadata()["faces"], photos))
    assert together == alone


def test_make_meme_is_the_one_call_for_people_who_embed_the_library(engine: Engine, photos_dir: Path) -> None:
    data = (photos_dir / "obama.jpg").read_bytes()
    meme = memegen.make_meme(data, bottom="one call", format="png")
    assert meme.content_type == "image/png" and Image.open(io.BytesIO(meme.image)).format == "PNG"
    assert meme.caption.bottom == "one call" and len(meme.faces) == 1
    # The same reading as an engine built by hand from the default settings.
    assert meme.faces == engine.make(data, bottom="one call", format="png").faces
    with pytest.raises(UnsupportedImage):
        memegen.make_meme(b"not a photo")
