"""The contract between MemeGen's parts: bucket layout, object names, ids, media types, the event, limits.

The page, the api, the ``on_upload`` worker, the storage module, the local event bridge and the
infrastructure all agree on these; each imports them from here and defines none of its own.
Standard library only: the infrastructure's environment imports it without the run-time stack.

Object layout (every output name derives from the server-side upload id, never from a name a
user chose):

- input bucket: ``{UPLOAD_PREFIX}{id}`` (api uploads), or any other name under the prefix;
- output bucket: ``{MEME_PREFIX}{id}/{generation}.{jpg|png|webp|gif}`` and
  ``{RECORD_PREFIX}{id}/{generation}.json``, one pair per generation of the upload, each
  written once; ``{RECORD_PREFIX}{id}/0.json`` is the record written when the api issues an upload.
  When its uploader deletes it, every object of the upload goes, in both buckets.
"""

from __future__ import annotations

import re
from typing import Final

# --- the buckets' layout ----------------------------------------------------------------------------
UPLOAD_PREFIX: Final = "uploads/"
MEME_PREFIX: Final = "memes/"
RECORD_PREFIX: Final = "records/"
# The generation in the name of the record written when an upload URL is issued: below any real one.
ISSUED_GENERATION: Final = 0
# An upload id: 32 lowercase hex digits (a uuid4 from the api, or a hash of another object name).
ID_PATTERN: Final = re.compile(r"[0-9a-f]{32}")
RECORD_NAME_PATTERN: Final = re.compile(r"(\d+)\.json")
# Custom object metadata: the person's caption on an upload (percent-encoded UTF-8, as header values
# must be ASCII), and on an output the random token of the write that made it.
TOP_KEY: Final = "memegen-top"
BOTTOM_KEY: Final = "memegen-bottom"
WRITER_KEY: Final = "memegen-writer"
# The meme's format on an upload (a ``MEME_FORMATS`` name); without it, or with any other value, a JPEG.
FORMAT_KEY: Final = "memegen-format"
DEFAULT_FORMAT: Final = "jpeg"


def meme_object(upload_id: str, generation: int, content_type: str) -> str:
    """The output object of the meme of that upload generation (``ValueError`` for a type no meme has)."""
    try:
        extension = MEME_EXTENSIONS[content_type]
    except KeyError:
        raise ValueError(f"no meme extension for {content_type!r}; expected one of {sorted(MEME_EXTENSIONS)}") from None
    return f"{MEME_PREFIX}{upload_id}/{generation}.{extension}"


def record_object(upload_id: str, generation: int) -> str:
    """The output object of the record of that upload generation."""
    return f"{RECORD_PREFIX}{upload_id}/{generation}.json"


def versions_prefix(source_id: str) -> str:
    """Where the markers of a photo's other captions are, one per caption (``version_marker``)."""
    return f"{RECORD_PREFIX}{source_id}/{VERSIONS_FOLDER}"


def version_marker(source_id: str, variant: int) -> str:
    """The output object that says which upload is the photo's ``variant``-th other caption (``{"id": ...}``)."""
    return f"{versions_prefix(source_id)}{variant}.json"


VERSIONS_FOLDER: Final = "versions/"
# Another caption of an uploaded photo is an upload of its own, ``{UPLOAD_PREFIX}{id}``, that holds no
# photo but this JSON, ``{"source": <the photo's upload id>, "variant": n}``: the worker reads the photo.
VERSION_TYPE: Final = "application/vnd.memegen.version+json"
MAX_VERSION_BYTES: Final = 1024
# The HTTP header that carries a meme's deletion token: ``Authorization: Bearer <token>``.
DELETE_AUTH_SCHEME: Final = "Bearer"
# A deletion token as the store issues it (``secrets.token_urlsafe(32)``): 43 characters of URL-safe base64.
DELETE_TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")


# --- the event ------------------------------------------------------------------------------------------
# The CloudEvent type of a new object in the input bucket (Eventarc, and the local bridge).
FINALIZED: Final = "google.cloud.storage.object.v1.finalized"

# --- media types ------------------------------------------------------------------------------------------
# What the api takes as a photo's type; the reader's Pillow formats are the same set.
UPLOAD_TYPES: Final = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff")
READER_FORMATS: Final = tuple(media_type.removeprefix("image/").upper() for media_type in UPLOAD_TYPES)
# Photos straight off an iPhone: the reader cannot decode them, so the api says what to do instead.
CONVERT_FIRST: Final = frozenset({"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"})
# The file names the command line and the dataset readers take for images.
IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
# The meme's formats, by the name a caller asks for: Pillow's codec and the media type.
MEME_CODECS: Final = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
# The zoom meme's formats: animated, from the whole photo onto one face. An animated WebP is still
# image/webp, so it has a name of its own; plain "webp" stays the still meme.
ZOOM_CODECS: Final = {"gif": "GIF", "webp-zoom": "WEBP"}
MEME_TYPES: Final = {name: f"image/{codec.lower()}" for name, codec in {**MEME_CODECS, **ZOOM_CODECS}.items()}
# Every format a caller may ask for, in the order the command line, the api and the page offer them.
MEME_FORMATS: Final = tuple(MEME_TYPES)
# The zoom meme's long side at most: a GIF frame of a photo takes about a byte a pixel, so a dozen
# frames at 1600 px would be several MB; at 480 px they stay under the 2 MB a zoom meme may take.
ZOOM_SIDE: Final = 480
MEME_EXTENSIONS: Final = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}
JSON_TYPE: Final = "application/json"

# --- the api's routes -----------------------------------------------------------------------------------
UPLOADS_PATH: Final = "/v1/uploads"
MEMES_PATH: Final = "/v1/memes/"
OPENAPI_PATH: Final = "/v1/openapi.json"
# A meme's share page (``/m/{id}``) and its image address (``/m/{id}/image``, a redirect to a fresh
# signed URL): links that last as long as the meme, while the bucket stays private.
SHARE_PATH: Final = "/m/"
# ``POST {MEMES_PATH}{id}{VERSIONS_PATH}``: another caption of the same photo, a new meme with its own id.
VERSIONS_PATH: Final = "/versions"
SHARE_IMAGE: Final = "/image"

# --- limits -------------------------------------------------------------------------------------------------
# A V4 signed URL may live 7 days, but the page's upload and meme links need minutes: 15 at most.
MAX_URL_TTL_SECONDS: Final = 900
# Eventarc retries an event for 24 hours at most: older deliveries are dropped, and the events
# topic keeps a message as long.
MAX_EVENT_AGE_SECONDS: Final = 86_400
