"""Fuzzing the reader and the engine: any bytes in, a picture, a meme or an ``InputError`` out.

Bounded in ``make test`` (``MEMEGEN_FUZZ_EXAMPLES``, 60 by default); ``make fuzz`` runs
thousands. Inputs are random bytes and real encoded images damaged at random (bytes flipped,
cut, spliced), which reach far deeper into the decoders than noise does.
"""

from __future__ import annotations

import io
import os

import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st
from PIL import Image

from memegen.errors import InputError
from memegen.meme.engine import Engine
from memegen.vision.reader import read_image

EXAMPLES = int(os.environ.get("MEMEGEN_FUZZ_EXAMPLES", "60"))
FUZZ = fuzz_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("MEMEGEN_FUZZ_RANDOM") is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = []
    for fmt, options in (("JPEG", {"quality": 80}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("BMP", {}), ("TIFF", {})):
        buffer = io.BytesIO()
        image = pixels.convert("P") if fmt == "GIF" else pixels
        image.save(buffer, fmt, **options)
        out.append(buffer.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "cut", "splice", "zero"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if action == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:]
        elif action == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif data:
            data[at : at + draw(st.integers(1, 32))] = b"\x00" * 4
        if not data:
            break
    return bytes(data)


uploads = st.one_of(st.binary(max_size=512), damaged_images())


@FUZZ
@given(data=uploads)
def test_the_reader_returns_a_picture_or_an_input_error(data: bytes) -> None:
    try:
        picture = read_image(data, max_pixels=4_000_000)
    except InputError as refused:
        assert str(refused) and "\n" not in str(refused)
        return
    assert picture.rgb.ndim == 3 and picture.rgb.shape[2] == 3 and picture.rgb.dtype == np.uint8


@FUZZ
@given(data=uploads)
def test_the_engine_returns_a_meme_or_an_input_error(engine: Engine, data: bytes) -> None:
    try:
        meme = engine.make(data)
    except InputError:
        return
    assert meme.image[:2] == b"\xff\xd8"
