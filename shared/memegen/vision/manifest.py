"""The ensemble's manifest (``models/ensemble.json``), typed: what the build writes and inference reads.

One ``MemberEntry`` per member and one ``Manifest`` around them. The build (``models.train``)
writes the file through ``Manifest.dumps``, the model card adds its figures through it, and
``memegen.vision.ensemble`` loads the members from it, so the file's shape is written down once, here.

Every key of a member's entry is a field of ``MemberEntry`` named as in the file, in the file's
order: ``from_dict`` and ``to_dict`` are driven by the fields, so a new key (a member's own input
colour or crop, say) is one field here, ``None`` while a file lacks it, and ``Member.from_entry``
is where inference reads it. Keys this module does not know are kept in ``extra`` and written back
after the known ones.

Standard library only (like ``memegen.errors``): the training tools and tests read it without
the run-time stack.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from memegen.errors import ModelError

MANIFEST = "ensemble.json"

# A view of the face a member reads: shifted by (dx, dy) of its side and zoomed; (0, 0, 1) is the face as cut.
View = tuple[float, float, float]
SINGLE_VIEW: tuple[View, ...] = ((0.0, 0.0, 1.0),)

# The keys without which a member cannot be loaded at all.
_REQUIRED = ("name", "file", "sha256", "input_size")


def _plain(value: Any) -> Any:
    """``value`` as JSON writes it: mappings as dicts, tuples as lists (a copy, never the field itself)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def parse_views(name: object, raw: Any) -> tuple[View, ...]:
    """A member's ``views`` as (dx, dy, zoom) float triples; ``ModelError`` for anything else.

    Their ranges are ``memegen.vision.ensemble.Member``'s to check.
    """
    try:
        return tuple((float(v[0]), float(v[1]), float(v[2])) for v in raw)
    except (TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"member {name}: views {raw!r} are not (dx, dy, zoom) triples") from exc


@dataclass(frozen=True, kw_only=True)
class MemberEntry:
    """One member of the manifest: its file, how it reads a face, and what the build recorded of it.

    ``name``, ``file``, ``sha256`` and ``input_size`` are what loading needs; ``flip`` and ``views``
    (how it reads a face) are always written, with their defaults where a file lacks them; every other
    field is ``None`` where the file lacks its key, and then not written.
    """

    name: str
    file: str
    sha256: str
    bytes: int | None = None
    float_bytes: int | None = None
    input_size: int
    # The side its face is cut at (``align_crop``) before it is resized to ``input_size``; ``None``:
    # the ensemble's ``crop`` size. A member that reads a finer face than the others asks for its own cut.
    crop_size: int | None = None
    input: str | None = None  # what the member reads, in words
    flip: bool = False
    population: str | None = None
    datasets: str | None = None
    config: Mapping[str, Any] | None = None  # ``models.train.net.Config.to_dict()``
    init: str | None = None
    macs: int | None = None
    recipe: str | None = None  # the FER2013 recipe it was trained by (``models.train.fer``)
    public_test: Mapping[str, float] | None = None  # the model card's figures
    val_accuracy: float | None = None
    views: tuple[View, ...] = SINGLE_VIEW
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MemberEntry:
        """The entry of a manifest's member; ``ModelError`` for one that cannot be loaded."""
        if not isinstance(raw, Mapping):
            raise ModelError(f"a member of the manifest is {raw!r}, not an object")
        name = raw.get("name")
        if missing := [key for key in _REQUIRED if key not in raw]:
            raise ModelError(f"member {name}: the manifest gives no {', '.join(missing)}")
        known = _keys(cls)
        values = {key: copy.deepcopy(raw[key]) for key in known if key in raw}
        try:
            values["input_size"] = int(raw["input_size"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"member {name}: input_size {raw['input_size']!r} is not a number") from exc
        if raw.get("crop_size") is not None:
            try:
                values["crop_size"] = int(raw["crop_size"])
            except (TypeError, ValueError) as exc:
                raise ModelError(f"member {name}: crop_size {raw['crop_size']!r} is not a number") from exc
        values["flip"] = bool(raw.get("flip", False))
        if "views" in raw:
            values["views"] = parse_views(name, raw["views"])
        extra = {key: copy.deepcopy(value) for key, value in raw.items() if key not in known}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The entry as the manifest's JSON holds it, in the file's key order."""
        out = {key: _plain(getattr(self, key)) for key in _keys(type(self)) if getattr(self, key) is not None}
        return out | _plain(self.extra)


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The whole manifest: the labels, the crop the members read, the members and their weights.

    ``crop`` is kept as written (``memegen.vision.crop.Crop.from_manifest`` owns its rules); ``weights`` holds
    one row a member, one weight a label; ``combination`` and ``metrics`` are the build's and the
    card's records, ``None`` where a file lacks them.
    """

    labels: tuple[str, ...]
    crop: Mapping[str, Any] | None = None
    members: tuple[MemberEntry, ...]
    weights: tuple[tuple[float, ...], ...]
    combination: str | None = None
    metrics: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Manifest:
        """The manifest of a parsed ``ensemble.json``; ``ModelError`` for one whose shape cannot work."""
        if not isinstance(raw, Mapping):
            raise ModelError(f"the manifest is {type(raw).__name__}, not an object")
        labels, members, weights = raw.get("labels"), raw.get("members"), raw.get("weights", ())
        if not isinstance(labels, list | tuple) or not all(isinstance(label, str) for label in labels):
            raise ModelError(f"ensemble labels {labels} are not a list of names")
        if not isinstance(members, list | tuple):
            raise ModelError(f"the manifest's members {members!r} are not a list")
        try:
            rows = tuple(tuple(float(w) for w in row) for row in weights)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"ensemble weights {weights!r} are not rows of numbers") from exc
        known = _keys(cls)
        return cls(
            labels=tuple(labels),
            crop=copy.deepcopy(raw["crop"]) if "crop" in raw else None,
            members=tuple(MemberEntry.from_dict(entry) for entry in members),
            weights=rows,
            combination=raw.get("combination"),
            metrics=copy.deepcopy(raw["metrics"]) if "metrics" in raw else None,
            extra={key: copy.deepcopy(value) for key, value in raw.items() if key not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest as ``ensemble.json`` holds it, in the file's key order."""
        out: dict[str, Any] = {}
        for key in _keys(type(self)):
            value = getattr(self, key)
            if key == "members":
                out[key] = [entry.to_dict() for entry in value]
            elif value is not None:
                out[key] = _plain(value)
        return out | _plain(self.extra)

    def dumps(self) -> str:
        """The text of ``ensemble.json``: the one JSON layout the build and the card write."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest in ``directory`` (``ensemble.json``)."""
        return cls.from_dict(json.loads((directory / MANIFEST).read_text()))

    def write(self, directory: Path) -> None:
        """Write the manifest into ``directory`` (``ensemble.json``)."""
        (directory / MANIFEST).write_text(self.dumps())

    def member(self, name: str) -> MemberEntry:
        """The member called ``name``; ``KeyError`` where there is none."""
        for entry in self.members:
            if entry.name == name:
                return entry
        raise KeyError(name)


def _keys(cls: type) -> list[str]:
    """The JSON keys a dataclass writes, in order: its fields but ``extra``."""
    return [f.name for f in fields(cls) if f.name != "extra"]
