"""The expression ensemble: int8 TFLite members combined with one weight per member per class."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memegen.errors import ModelError
from memegen.labels import LABELS
from memegen.runtime import load_interpreter
from memegen.settings import MODELS_DIR
from memegen.vision.crop import Crop
from memegen.vision.manifest import MANIFEST, SINGLE_VIEW, Manifest, MemberEntry, View

__all__ = ["MANIFEST", "SINGLE_VIEW", "Ensemble", "Member", "Scores", "View", "read_manifest", "sha256", "view_of"]


def read_manifest(directory: Path = MODELS_DIR) -> dict[str, Any]:
    """The manifest of the ensemble in ``directory`` as parsed JSON (``Manifest.read`` gives it typed)."""
    manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    return manifest


@dataclass(frozen=True)
class Scores:
    """The probability of each label in ``LABELS`` order, for one face."""

    probabilities: tuple[float, ...]

    @property
    def label(self) -> str:
        """The most likely label."""
        return LABELS[int(np.argmax(self.probabilities))]

    def as_dict(self) -> dict[str, float]:
        return {label: round(p, 4) for label, p in zip(LABELS, self.probabilities, strict=True)}


class Member:
    """One int8 TFLite classifier: a grayscale face in, seven logits out (softmax here).

    It reads each of its ``views`` of the face (and, with ``flip``, their mirror images) and
    averages the probabilities: the manifest says which, the build chose them on validation faces.
    """

    def __init__(
        self,
        name: str,
        model: bytes,
        *,
        size: int,
        crop_size: int | None = None,
        flip: bool = False,
        views: tuple[View, ...] = SINGLE_VIEW,
        threads: int = 1,
    ) -> None:
        if crop_size is not None and not 16 <= crop_size <= 512:
            raise ModelError(f"member {name}: crop_size {crop_size} is not 16..512 px")
        if not views or any(len(v) != 3 or max(abs(v[0]), abs(v[1])) > 0.25 or not 0.5 <= v[2] <= 2 for v in views):
            raise ModelError(
                f"member {name}: views {views!r} must be (dx, dy, zoom) with |dx|, |dy| <= 0.25, zoom 0.5..2"
            )
        try:
            self._interpreter = load_interpreter(model, threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"member {name}: not a TFLite model ({exc})") from exc
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        if int(np.prod(inp["shape"])) != size * size or int(out["shape"][-1]) != len(LABELS):
            raise ModelError(
                f"member {name}: input {list(inp['shape'])} / output {list(out['shape'])} "
                f"do not match the manifest's {size}x{size} face and {len(LABELS)} labels"
            )
        self.name, self.size, self.flip = name, size, flip
        # None: the face is cut at the ensemble's crop size (``Ensemble.crop_sizes`` resolves it).
        self.crop_size = crop_size
        self.views: tuple[View, ...] = tuple((float(v[0]), float(v[1]), float(v[2])) for v in views)
        self._input, self._output = inp["index"], out["index"]
        self._in_dtype = inp["dtype"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self._in_shape = inp["shape"]

    @classmethod
    def from_entry(cls, entry: MemberEntry, model: bytes, *, threads: int = 1) -> Member:
        """The member a manifest's entry describes: where each of the entry's input fields reaches inference."""
        return cls(
            entry.name,
            model,
            size=entry.input_size,
            crop_size=entry.crop_size,
            flip=entry.flip,
            views=entry.views,
            threads=threads,
        )

    def predict(self, face: np.ndarray) -> np.ndarray:
        """Probabilities for one uint8 grayscale face of any size (resized to the member's input)."""
        face = at_size(face, self.size)
        total = np.zeros(len(LABELS), dtype=np.float32)
        for view in self.views:
            seen = view_of(face, view)
            total += self._run(seen)
            if self.flip:
                # And its mirror image: an expression reads the same both ways, and the average
                # of the two is steadier than either (measured in the model card).
                total += self._run(np.ascontiguousarray(seen[:, ::-1]))
        return total / (len(self.views) * (2 if self.flip else 1))

    def _run(self, face: np.ndarray) -> np.ndarray:
        x = face.astype(np.float32)
        if self._in_scale:
            x = np.round(x / self._in_scale + self._in_zero)
            info = np.iinfo(self._in_dtype)
            x = np.clip(x, info.min, info.max)
        self._interpreter.set_tensor(self._input, x.astype(self._in_dtype).reshape(self._in_shape))
        self._interpreter.invoke()
        y = self._interpreter.get_tensor(self._output).reshape(-1).astype(np.float32)
        if self._out_scale:
            y = (y - self._out_zero) * self._out_scale
        y = np.exp(y - y.max())
        return y / y.sum()


def at_size(face: np.ndarray, size: int) -> np.ndarray:
    """A square face resized to ``size`` (area interpolation when shrinking, as training's ``at_side``)."""
    if face.shape[:2] == (size, size):
        return face
    interpolation = cv2.INTER_AREA if face.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(face, (size, size), interpolation=interpolation)


def view_of(face: np.ndarray, view: View) -> np.ndarray:
    """The square ``face`` shifted by (dx, dy) of its side and zoomed about its centre (edges replicated)."""
    dx, dy, zoom = view
    if (dx, dy, zoom) == (0.0, 0.0, 1.0):
        return face
    size = face.shape[0]
    centre = (size - 1) / 2
    matrix = np.array([[zoom, 0.0, centre * (1 - zoom) + dx * size], [0.0, zoom, centre * (1 - zoom) + dy * size]])
    return cv2.warpAffine(face, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ensemble:
    """The members named by a manifest (``models/ensemble.json``), validated on load.

    Loading refuses a member whose file hash or tensor shapes do not match the
    manifest, with a ``ModelError`` that says which and why. ``spec`` is the manifest typed
    (``memegen.vision.manifest.Manifest``), ``manifest`` its JSON form as given.
    """

    def __init__(self, manifest: dict[str, Any] | Manifest, files: dict[str, bytes], *, threads: int = 1) -> None:
        spec = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
        if spec.labels != LABELS:
            raise ModelError(f"ensemble labels {list(spec.labels)} are not {list(LABELS)}")
        self.members: list[Member] = []
        for entry in spec.members:
            data = files.get(entry.file)
            if data is None:
                raise ModelError(f"member {entry.name}: file {entry.file} is missing")
            digest = sha256(data)
            if digest != entry.sha256:
                raise ModelError(
                    f"member {entry.name}: {entry.file} has hash {digest[:12]}, "
                    f"the manifest expects {entry.sha256[:12]}"
                )
            self.members.append(Member.from_entry(entry, data, threads=threads))
        self.weights = np.asarray(spec.weights, dtype=np.float32)
        if self.weights.shape != (len(self.members), len(LABELS)):
            raise ModelError(f"ensemble weights have shape {self.weights.shape}, expected {(len(self.members), 7)}")
        self.crop = Crop.from_manifest(dict(spec.crop or {}))
        # Each member's cut, by member: the sides the engine cuts every face at, once each.
        self.cuts: tuple[int, ...] = tuple(member.crop_size or self.crop.size for member in self.members)
        self.crop_sizes: tuple[int, ...] = tuple(sorted(set(self.cuts)))
        self.spec = spec
        # The manifest as given (its JSON form): what the version and the records name.
        self.manifest = manifest if isinstance(manifest, dict) else spec.to_dict()
        self.version = sha256(json.dumps(self.manifest, sort_keys=True).encode())[:12]

    @classmethod
    def from_dir(cls, directory: Path = MODELS_DIR, *, threads: int = 1) -> Ensemble:
        """Load ``ensemble.json`` and its member files from a folder."""
        try:
            manifest = read_manifest(directory)
            spec = Manifest.from_dict(manifest)
            files = {m.file: (directory / m.file).read_bytes() for m in spec.members}
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the ensemble from {directory}: {exc}") from exc
        return cls(manifest, files, threads=threads)

    def member_probabilities(self, face: np.ndarray | Mapping[int, np.ndarray]) -> np.ndarray:
        """(members, 7) probabilities of every member for one face.

        ``face``: the face cut at each of ``crop_sizes`` (side -> crop), or one crop that every
        member reads (resized to its input). Members that read the same cut at the same input
        side share one resized face: each input is computed once.
        """
        inputs: dict[tuple[int, int], np.ndarray] = {}
        out = []
        for member, cut in zip(self.members, self.cuts, strict=True):
            crop = face if isinstance(face, np.ndarray) else face[cut]
            key = (cut, member.size)
            if key not in inputs:
                inputs[key] = at_size(crop, member.size)
            out.append(member.predict(inputs[key]))
        return np.stack(out)

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        """The weighted sum over members, normalised; works on (members, 7) or (n, members, 7)."""
        mixed = (member_probs * self.weights).sum(axis=-2)
        return mixed / np.maximum(mixed.sum(axis=-1, keepdims=True), 1e-12)

    def classify(self, face: np.ndarray | Mapping[int, np.ndarray]) -> Scores:
        """The label probabilities for one uint8 grayscale face: its cuts by side, or one crop."""
        probs = self.combine(self.member_probabilities(face))
        return Scores(tuple(float(p) for p in probs))
