"""The meme engine: upload bytes in, meme bytes and a metadata record out.

Each stage is a plain function or a small class from its own module; the
engine only wires them together and times them.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memegen.contract import MEME_TYPES, ZOOM_CODECS, ZOOM_SIDE
from memegen.errors import CaptionRefused, NoFaceToZoom, UnsupportedImage
from memegen.meme.captions import ODD_ONE_OUT, USER, Caption, CaptionBank, choose_caption, odd_one_out, own_caption
from memegen.meme.layout import Layout, Sizing, lay_out
from memegen.meme.render import Mark, render_layout
from memegen.meme.zoom import Timing, encode_zoom, lay_out_zoom, zoom_frames
from memegen.settings import Settings
from memegen.vision.crop import align_crops
from memegen.vision.detect import Face, FaceDetector
from memegen.vision.ensemble import Ensemble, Scores
from memegen.vision.reader import read_image

# The smallest side of a meme, once its long side is capped at max_side: below it there is no
# face to read nor room for a caption (a thumbnail, or a panorama a few pixels high).
MIN_SIDE = 32


@dataclass(frozen=True)
class FaceReading:
    """One face: where it is in the upload (upright, full-resolution pixels) and what it shows."""

    box: tuple[int, int, int, int]
    detector_score: float
    scores: Scores

    @property
    def label(self) -> str:
        return self.scores.label

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "label": self.label,
            "scores": self.scores.as_dict(),
            "detector_score": round(self.detector_score, 3),
        }


@dataclass(frozen=True)
class Meme:
    """The finished meme and everything the metadata record says about it."""

    image: bytes
    content_type: str
    size: tuple[int, int]
    faces: list[FaceReading]
    caption: Caption
    model_version: str
    input_sha256: str
    layout: Layout
    timings_ms: dict[str, float] = field(default_factory=dict)
    # A zoom meme's: the face it zooms onto (its index in ``faces``) and how many frames it has.
    zoom: tuple[int, int] | None = None

    def metadata(self) -> dict[str, Any]:
        """The metadata record: JSON-ready, with nothing the upload carried beyond its pixels."""
        zoom = {} if self.zoom is None else {"zoom": {"face": self.zoom[0], "frames": self.zoom[1]}}
        return {
            "faces": [face.as_dict() for face in self.faces],
            "caption": {"top": self.caption.top, "bottom": self.caption.bottom, "bank": self.caption.bank},
            "content_type": self.content_type,
            "size": list(self.size),
            "layout": self.layout.record(),
            "model_version": self.model_version,
            "input_sha256": self.input_sha256,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            **zoom,
        }


def zoom_face(found: list[tuple[Face, Scores]], caption: Caption, *, odd_one_out: int | None) -> int | None:
    """The face a zoom meme moves onto, as its index in ``found``; None where there is no face.

    The face that carries the caption's expression: ``odd_one_out`` (an index in ``found``) where
    the caption singles one out, else the face that weighs most (area times the ensemble's
    confidence, as the caption was chosen) among those showing the caption's label, if any do.
    """
    if not found:
        return None
    if odd_one_out is not None:
        return odd_one_out
    wanted = caption.bank.removeprefix("group:all_")
    showing = [index for index, (_, scores) in enumerate(found) if scores.label == wanted]

    def weight(index: int) -> float:
        face, scores = found[index]
        return face.w * face.h * max(scores.probabilities)

    return max(showing or range(len(found)), key=weight)


class Engine:
    """Loads nothing itself: the detector, ensemble and captions are passed in, loaded once.

    Safe to share between threads: a TFLite interpreter is not (its tensors are one buffer, and a
    second thread's invoke fails or mixes two photos' faces), so the model stage runs one photo
    at a time while reading, captioning and rendering run side by side.
    """

    def __init__(
        self, *, detector: FaceDetector, ensemble: Ensemble, captions: CaptionBank, settings: Settings
    ) -> None:
        self.detector = detector
        self.ensemble = ensemble
        self.captions = captions
        self.settings = settings
        self._models = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """Load every model and the caption bank named by the settings."""
        return cls(
            detector=FaceDetector.from_dir(settings.detector_dir, threads=settings.threads, min_face=settings.min_face),
            ensemble=Ensemble.from_dir(settings.models_dir, threads=settings.threads),
            captions=CaptionBank.load(),
            settings=settings,
        )

    def read_faces(self, rgb: np.ndarray, *, scale: float) -> list[tuple[Face, Scores]]:
        """Detect every face of an upright RGB image and read its expression."""
        # min_face is in upload pixels; the picture may have been decoded smaller.
        smallest = self.settings.smallest_face(rgb.shape[1], rgb.shape[0], scale=scale)
        crop = self.ensemble.crop
        with self._models:
            faces = self.detector.detect(rgb, min_face=smallest)
            # Each face is cut once at every side a member reads it at, nothing twice.
            sides = self.ensemble.crop_sizes
            return [
                (
                    face,
                    self.ensemble.classify(
                        align_crops(rgb, face, sizes=sides, scale=crop.scale, shift=crop.shift, gray=True)
                    ),
                )
                for face in faces
            ]

    def make(
        self,
        data: bytes,
        *,
        top: str | None = None,
        bottom: str | None = None,
        format: str = "jpeg",
        boxes: bool = False,
        variant: int = 0,
    ) -> Meme:
        """Turn an upload into a meme.

        ``variant`` n > 0 is another caption of the same photo (see ``choose_caption``).

        ``format`` is a ``MEME_TYPES`` name. A ``ZOOM_CODECS`` one ("gif", "webp-zoom") makes the
        zoom meme, an animation from the whole photo onto the face ``zoom_face`` picks, at most
        ``ZOOM_SIDE`` pixels long; a photo without a face raises ``NoFaceToZoom``, an
        ``InputError``: a zoom needs a face, and a still frame would not be what was asked for.

        Raises ``CaptionRefused`` for a caption of over ``MAX_CAPTION`` characters or with
        control characters, and ``UnsupportedImage`` or ``ImageTooLarge`` (all ``InputError``)
        for an upload that is not a readable image within the limits, or whose
        meme would be under ``MIN_SIDE`` pixels on a side (a thumbnail, or a panorama
        so long that capping it at ``max_side`` leaves a sliver).
        """
        if format.lower() not in MEME_TYPES:
            raise ValueError(f"unknown output format {format!r}; choose one of {sorted(MEME_TYPES)}")
        top, bottom = own_caption(top, name="top"), own_caption(bottom, name="bottom")
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1000
            clock = now

        picture = read_image(
            data,
            max_bytes=self.settings.max_bytes,
            max_pixels=self.settings.max_pixels,
            # A JPEG is decoded no smaller than the meme it becomes: at least max_side on its long side.
            min_long_side=self.settings.max_side,
            # Refused from the header, before a strip of 1,500,000 x 33 pixels is decoded.
            max_aspect=self.settings.max_side / MIN_SIDE,
        )
        height, width = picture.rgb.shape[:2]
        zoom = format.lower() in ZOOM_CODECS
        max_side = min(self.settings.max_side, ZOOM_SIDE) if zoom else self.settings.max_side
        sizing = Sizing.of(width, height, max_side=max_side)
        if min(height, width) * sizing.scale < MIN_SIDE:
            # Checked before detection too: a 1,500,000 x 33 strip would cost the detector
            # thousands of tiles and gigabytes for a meme of 1600 x 0 pixels.
            raise UnsupportedImage(
                f"the picture is {width}x{height} pixels: too small or too thin for a meme,"
                f" which needs at least {MIN_SIDE} pixels on each side at {max_side} px long"
            )
        lap("read")
        found = self.read_faces(picture.rgb, scale=picture.scale)
        lap("faces")
        if zoom and not found:
            raise NoFaceToZoom(
                f"there is no face to zoom onto in this photo: a {format} is a zoom meme; make a jpg, png or webp"
            )
        digest = hashlib.sha256(data).hexdigest()
        # Biggest face first; each face weighs its area times the ensemble's confidence.
        ranked = sorted(found, key=lambda f: -f[0].w * f[0].h)
        labels = [scores.label for _, scores in ranked]
        weights = [face.w * face.h * max(scores.probabilities) for face, scores in ranked]
        caption = choose_caption(
            labels,
            weights=weights,
            bank=self.captions,
            seed=bytes.fromhex(digest),
            top=top,
            bottom=bottom,
            variant=variant,
        )
        odd = odd_one_out(labels, weights=weights) if caption.bank == ODD_ONE_OUT else None
        # An index in found, the order of the record's faces.
        odd_index = None if odd is None else next(i for i, item in enumerate(found) if item is ranked[odd])
        onto = zoom_face(found, caption, odd_one_out=odd_index) if zoom else None
        # Laid out once, clear of every face: what is checked here is what is drawn. A zoom's
        # captions are laid out for its last frame, the one that holds, clear of the face it shows.
        if onto is not None:
            layout = lay_out_zoom(caption.top, caption.bottom, sizing=sizing, face=found[onto][0].box)
        else:
            layout = lay_out(
                caption.top,
                caption.bottom,
                sizing=sizing,
                faces=[face.box for face, _ in found],
                odd_one_out=odd_index,
            )
        # A person's own words are drawn whole or not at all: never silently cut short.
        if caption.bank == USER and (which := layout.cut_short()) is not None:
            meme_width, meme_height = sizing.meme
            raise CaptionRefused(f"the {which} caption is too long for a {meme_width}x{meme_height} meme: shorten it")
        lap("caption")
        if onto is not None:
            # Marks would have to move with the photo under them: a zoom's frames carry none.
            timing = Timing()
            frames = zoom_frames(picture.rgb, layout, face=found[onto][0].box, timing=timing)
            image = encode_zoom(frames, format=format, timing=timing)
        else:
            marks = [Mark(box=face.box, label=scores.label) for face, scores in found] if boxes else []
            image = render_layout(picture.rgb, layout, marks=marks, format=format)
        lap("render")
        inverse = 1.0 / picture.scale
        readings = [
            FaceReading(
                box=tuple(round(v * inverse) for v in face.box),  # type: ignore[arg-type]
                detector_score=face.score,
                scores=scores,
            )
            for face, scores in found
        ]
        return Meme(
            image=image,
            content_type=MEME_TYPES[format.lower()],
            size=layout.size,
            faces=readings,
            caption=caption,
            model_version=self.ensemble.version,
            input_sha256=digest,
            layout=layout,
            timings_ms=timings,
            zoom=None if onto is None else (onto, Timing().frames),
        )
