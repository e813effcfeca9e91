"""The records in the output bucket, as a JSON Schema: what an integrator reads from the events topic.

Every record is ``records/<id>/<name>.json`` (``memegen.contract``): ``0.json`` when the api
issues an upload URL (pending), ``<generation>.json`` when the upload is done or failed. When its
uploader deletes a meme, its records are deleted with it (the events topic carries those deletions).
``python -m memegen.cloud.records`` prints the schema;
``docs/record.schema.json`` is that output, and a test keeps the two equal.
"""

from __future__ import annotations

import json
from typing import Any

from memegen.contract import ID_PATTERN, MEME_EXTENSIONS, MEME_FORMATS, MEME_PREFIX
from memegen.labels import LABELS

_ID = {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}


def closed(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object schema with exactly these properties, all required but the ``optional`` ones."""
    required = [name for name in properties if name not in optional]
    return {
        "type": "object",
        **({"required": required} if required else {}),
        "additionalProperties": False,
        "properties": properties,
    }


def record_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) every record the api and the worker write fits."""
    face = closed(
        {
            "box": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 4,
                "maxItems": 4,
                "description": "x, y, width, height in pixels of the uploaded photo (upright)",
            },
            "label": {"enum": list(LABELS)},
            "scores": closed({label: _PROBABILITY for label in LABELS}),
            "detector_score": _PROBABILITY,
        }
    )
    meme_box = {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 4,
        "maxItems": 4,
        "description": "x, y, width, height in pixels of the meme (bars included)",
    }
    layout = closed(
        {
            "faces": {"type": "array", "items": meme_box, "description": "The faces, in the order of faces"},
            "lines": {
                "type": "array",
                "items": closed({"text": {"type": "string"}, "box": meme_box}),
                "description": "Each caption line as drawn (upper case), top caption first; none covers a face",
            },
            "odd_one_out": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "The index in faces of the face the caption singles out, circled in the meme",
            },
        }
    )
    pending = closed(
        {
            "status": {"const": "pending"},
            "id": _ID,
            "expires": {"type": "integer", "description": "Unix time the upload URL expires"},
            "delete_sha256": {"type": "string", "description": "SHA-256 of the deletion token (it cannot delete)"},
            "source": {**_ID, "description": "Another caption of this upload's photo"},
            "format": {"enum": list(MEME_FORMATS), "description": "The meme's format, where not jpeg"},
        },
        optional=("source", "format"),
    )
    done = closed(
        {
            "status": {"const": "done"},
            "id": _ID,
            "meme": {"type": "string", "pattern": f"^{MEME_PREFIX}", "description": "The meme's object"},
            "faces": {"type": "array", "items": face, "description": "Biggest first"},
            "caption": closed(
                {
                    "top": {"type": "string"},
                    "bottom": {"type": "string"},
                    "bank": {"type": "string", "description": "A label, group:<kind>, no_face, or user"},
                }
            ),
            "content_type": {"enum": list(MEME_EXTENSIONS)},
            "size": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
            "layout": {**layout, "description": "Where the faces are and the caption lines went"},
            "model_version": {"type": "string"},
            "input_sha256": {"type": "string"},
            "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
            "source": {**_ID, "description": "Another caption: the upload whose photo it is"},
            "variant": {"type": "integer", "minimum": 1},
            "zoom": closed(
                {
                    "face": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The face zoomed onto: its index in faces",
                    },
                    "frames": {"type": "integer", "minimum": 2},
                }
            )
            | {"description": "A zoom meme's (gif, webp-zoom); its layout is the last frame's, the one that holds"},
        },
        # layout: records written before it was added lack it.
        optional=("input_sha256", "timings_ms", "source", "variant", "layout", "zoom"),
    )
    failed = closed({"status": {"const": "failed"}, "id": _ID, "error": {"type": "string"}})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "MemeGen record",
        "oneOf": [pending, done, failed],
    }


if __name__ == "__main__":
    print(json.dumps(record_schema(), indent=1))
