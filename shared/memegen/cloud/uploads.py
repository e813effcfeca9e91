"""An upload and the names of what it becomes: its id, its captions, its output objects.

Values only, no bucket: ``memegen.cloud.storage.Store`` reads and writes the objects these name.
The bucket layout and object names are :mod:`memegen.contract`'s.

Custom metadata ``memegen-top`` / ``memegen-bottom`` carries the user's caption as percent-encoded
UTF-8: the signed PUT sends it as an HTTP header, and header values must be ASCII.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from memegen.contract import (
    BOTTOM_KEY,
    DEFAULT_FORMAT,
    FORMAT_KEY,
    ID_PATTERN,
    MEME_FORMATS,
    TOP_KEY,
    meme_object,
    record_object,
)


def upload_id(name: str, *, prefix: str) -> str:
    """The upload's id, 32 lowercase hex digits, safe in any output object name.

    An API upload, ``{prefix}{id}``, carries one already (a server-chosen uuid4); any other name
    is hashed, so that no user-chosen text reaches an output path, and ``{prefix}a/{id}`` is not
    taken for the API upload ``{prefix}{id}``.
    """
    last = name[len(prefix) :] if name.startswith(prefix) else ""
    if ID_PATTERN.fullmatch(last):
        return last
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


def caption_metadata(top: str | None, bottom: str | None) -> dict[str, str]:
    """A person's caption as custom metadata: percent-encoded, as header values must be ASCII."""
    return {key: quote(value, safe="") for key, value in ((TOP_KEY, top), (BOTTOM_KEY, bottom)) if value}


def format_metadata(format: str) -> dict[str, str]:
    """The meme's format as custom metadata: none for the default, so that such uploads look as before."""
    return {} if format == DEFAULT_FORMAT else {FORMAT_KEY: format}


def _format(metadata: object) -> str:
    # Only the api's signed headers set it; any other value (an object written by hand) is the default.
    value = metadata.get(FORMAT_KEY) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value in MEME_FORMATS else DEFAULT_FORMAT


def _caption(metadata: object, key: str) -> str | None:
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(key)
    return unquote(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Upload:
    """One generation of an object in the input bucket.

    Made from the object's resource (``from_resource``) wherever it is read: the event's copy
    (the worker) and the stored object (``Store.read_upload``), so that both read it alike.
    """

    name: str
    generation: int
    size: int
    content_type: str
    id: str
    top: str | None
    bottom: str | None
    # Another caption of an earlier upload's photo (an upload of type VERSION_TYPE): which, and which one.
    source: str | None = None
    variant: int = 0
    # The meme's format, a MEME_FORMATS name: "gif" and "webp-zoom" are the zoom meme.
    format: str = DEFAULT_FORMAT

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any], *, prefix: str) -> Upload:
        """Read a Cloud Storage object resource: a JSON API object, or an event's StorageObjectData.

        ``prefix`` is where uploads go (``Settings.upload_prefix``): it tells an API upload's id.

        Raises ``KeyError`` or ``ValueError`` when the name or generation is missing or malformed.
        """
        name = resource["name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"object name {name!r} is not a non-empty string")
        metadata = resource.get("metadata")
        return cls(
            name=name,
            generation=int(resource["generation"]),
            # The JSON API writes int64 fields as strings.
            size=int(resource.get("size") or 0),
            content_type=str(resource.get("contentType") or ""),
            id=upload_id(name, prefix=prefix),
            top=_caption(metadata, TOP_KEY),
            bottom=_caption(metadata, BOTTOM_KEY),
            format=_format(metadata),
        )


@dataclass(frozen=True)
class SignedUpload:
    """Where and how the browser PUTs a new upload: every header listed is signed and must be sent.

    ``delete_token`` deletes the upload and its memes (``Store.delete``); only its hash is kept.
    """

    id: str
    url: str
    headers: dict[str, str]
    delete_token: str


@dataclass(frozen=True)
class NewVersion:
    """Another caption of a photo, on its way: its upload id and its own deletion token."""

    id: str
    delete_token: str


def token_hash(token: str) -> str:
    """What is kept of a deletion token: its SHA-256, which cannot delete."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def meme_name(upload: Upload, content_type: str) -> str:
    """The output object of the meme of that upload generation."""
    return meme_object(upload.id, upload.generation, content_type)


def record_name(upload: Upload) -> str:
    """The output object of the metadata record of that upload generation."""
    return record_object(upload.id, upload.generation)
