"""The api's OpenAPI 3.1 document, built from the contract and the settings so that it cannot drift.

Served at ``GET /v1/openapi.json``; the api's tests check every JSON answer they see against it.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

from memegen.cloud.records import closed
from memegen.contract import (
    DEFAULT_FORMAT,
    ID_PATTERN,
    MEME_FORMATS,
    MEMES_PATH,
    OPENAPI_PATH,
    SHARE_IMAGE,
    SHARE_PATH,
    UPLOAD_TYPES,
    UPLOADS_PATH,
    VERSIONS_PATH,
    ZOOM_SIDE,
)
from memegen.meme.captions import MAX_CAPTION
from memegen.meme.fonts import SCRIPTS, caption_fonts
from memegen.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"$ref": "#/components/schemas/Id"}}
# Cc: C0/C1 controls (newline and tab included); Zl/Zp: the line and paragraph separators. Never in a caption
# (memegen.meme.captions refuses them too, after stripping; the api, as the pattern says, before).
CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# The Basic Multilingual Plane: one UTF-16 unit a character, so that a pattern's class reads the same
# in every regular expression dialect (ECMA-262 without the u flag counts UTF-16 units).
_BMP = 0x10000
_SURROGATES = range(0xD800, 0xE000)


def _answer(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _answer(description, _ERROR, headers)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


_ALLOW = {"Allow": _header("The methods this path takes")}
_RETRY_AFTER = {"Retry-After": _header("Seconds to wait before trying again")}
_LOCATION = {"Location": _header("Where to poll the new meme's status (its status_url)")}
_NO_TOKEN = _error(
    "No Bearer credentials: send the deletion token", {"WWW-Authenticate": _header("The scheme to use: Bearer")}
)


def _drawable(font_chars: frozenset[int]) -> frozenset[int]:
    """The characters of the Basic Multilingual Plane a caption may hold when this font draws it.

    As the engine draws a caption: upper case (one character may become two, "ß" becomes "SS"),
    whitespace needing no glyph, and never a control or line separator.
    """
    chars = set()
    for code in range(_BMP):
        if code in _SURROGATES:
            continue
        char = chr(code)
        if unicodedata.category(char) in CONTROL_CATEGORIES:
            continue
        if char.isspace() or all(ord(shown) in font_chars for shown in char.upper() if not shown.isspace()):
            chars.add(code)
    return frozenset(chars)


def _char_class(chars: frozenset[int]) -> str:
    """A regular expression character class of exactly ``chars``, as ranges, escaped alike in ECMA-262 and Python."""
    ranges: list[list[int]] = []
    for code in sorted(chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def one(code: int) -> str:
        char = chr(code)
        return char if char.isascii() and char.isalnum() else f"\\u{code:04X}"

    return "[" + "".join(one(low) if low == high else f"{one(low)}-{one(high)}" for low, high in ranges) + "]"


@functools.cache
def caption_pattern() -> str:
    """The pattern every caption line fits: the characters one caption font draws, all from the same font.

    The api refuses any caption that does not fit it (``memegen.cloud.api``), and the document publishes it,
    so that both say the same. A font whose characters another font has too adds nothing.
    """
    kept: list[frozenset[int]] = []
    for chars in sorted((_drawable(font.chars) for font in caption_fonts()), key=len, reverse=True):
        if not any(chars <= other for other in kept):
            kept.append(chars)
    classes = [_char_class(chars) + "*" for chars in kept]
    return "^" + (classes[0] if len(classes) == 1 else "(?:" + "|".join(classes) + ")") + "$"


_UNAVAILABLE = "Storage is unavailable for now: try again shortly (Retry-After)"
_INTERNAL = "An internal error"


def _usual(*, internal: str = _INTERNAL, unavailable: str = _UNAVAILABLE) -> dict[str, Any]:
    """The answers every storage-backed route may give: 503, 405 and 500."""
    return {
        "503": _error(unavailable, _RETRY_AFTER),
        "405": _error("Another method (the Allow header lists this path's)", _ALLOW),
        "500": _error(internal),
    }


@functools.cache
def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of the api as deployed with ``settings``."""
    caption = {
        "type": ["string", "null"],
        "maxLength": MAX_CAPTION,
        "pattern": caption_pattern(),
        "description": f"Your own caption line: at most {MAX_CAPTION} characters, each one the caption fonts draw"
        f" ({SCRIPTS}, and spaces; as drawn, in upper case), all drawn by the same font; no control characters,"
        " newlines, tabs or line separators, not even at either end (the pattern says which characters, to the"
        " character). Leading and trailing spaces are dropped. Empty, null or absent: no line of your own, the"
        " photo's caption bank chooses.",
    }
    # What a new meme's answer links to: the id and the deletion token that operations on it need.
    token = "Bearer {$response.body#/delete_token}"
    links = {
        "status": {"operationId": "getMeme", "parameters": {"path.id": "$response.body#/id"}},
        "share": {"operationId": "getSharePage", "parameters": {"path.id": "$response.body#/id"}},
        "shareImage": {"operationId": "getShareImage", "parameters": {"path.id": "$response.body#/id"}},
        "anotherCaption": {
            "operationId": "createVersion",
            "parameters": {"path.id": "$response.body#/id", "header.Authorization": token},
            "description": "The token goes in the Authorization header (the deleteToken scheme).",
        },
        "delete": {
            "operationId": "deleteMeme",
            "parameters": {"path.id": "$response.body#/id", "header.Authorization": token},
            "description": "The token goes in the Authorization header (the deleteToken scheme).",
        },
    }
    pending = closed({"status": {"const": "pending"}, "id": {"$ref": "#/components/schemas/Id"}})
    done = closed(
        {
            "status": {"const": "done"},
            "id": {"$ref": "#/components/schemas/Id"},
            "meme_url": {
                "type": "string",
                "format": "uri",
                "description": f"A signed GET URL of the meme, valid {settings.url_ttl_seconds} s; ask again for a"
                f" fresh one (a meme is kept {settings.meme_retention_days} days).",
            },
            "caption": closed({"top": {"type": "string"}, "bottom": {"type": "string"}}),
        }
    )
    failed = closed(
        {
            "status": {"const": "failed"},
            "id": {"$ref": "#/components/schemas/Id"},
            "error": {"type": "string", "description": "Why, in words for the person who uploaded."},
        }
    )
    signing = "An internal error, or the service cannot sign URLs"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MemeGen",
            "version": "1",
            "description": "Photos in, memes out. Ask for an upload URL, PUT the photo there with exactly the headers"
            " given, then poll the meme's status until it is done or failed.",
        },
        "paths": {
            UPLOADS_PATH: {
                "post": {
                    "operationId": "createUpload",
                    "summary": "A new upload: its id, a signed PUT URL and the headers the PUT must carry",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}},
                    },
                    "responses": {
                        "201": {
                            **_answer(
                                "The upload, ready for the photo's PUT",
                                {"$ref": "#/components/schemas/Upload"},
                                _LOCATION,
                            ),
                            "links": links,
                        },
                        "400": _error("The body is not valid JSON, or a field is wrong"),
                        "413": _error("The body is too large"),
                        "415": _error("The request is not JSON, or the photo's type is not one MemeGen reads"),
                        **_usual(internal=signing),
                    },
                }
            },
            MEMES_PATH + "{id}": {
                "get": {
                    "operationId": "getMeme",
                    "summary": "The meme's status: pending, done (with a signed URL of the meme) or failed (and why)",
                    "parameters": [_ID_PARAMETER],
                    "responses": {
                        "200": _answer("The status", {"oneOf": [pending, done, failed]}),
                        "404": _error("No such meme, or deleted"),
                        **_usual(internal=signing),
                    },
                },
                "delete": {
                    "operationId": "deleteMeme",
                    "summary": "Delete the meme, its records and the photo, with the upload's deletion token",
                    "description": "Send `Authorization: Bearer <delete_token>` (the token the upload's creation"
                    " returned, to the uploader only). Afterwards the status, the share page and its image answer"
                    " 404, and the events topic carries the records' deletion events (OBJECT_DELETE and"
                    " OBJECT_ARCHIVE on `records/<id>/`).",
                    "parameters": [_ID_PARAMETER],
                    "security": [{"deleteToken": []}],
                    "responses": {
                        "204": {"description": "Deleted: nothing of the photo is kept"},
                        "401": _NO_TOKEN,
                        "403": _error("The deletion token is wrong"),
                        "404": _error("No such meme, or deleted"),
                        **_usual(unavailable="Storage is unavailable for now: try again (the delete can be repeated)"),
                    },
                },
            },
            MEMES_PATH + "{id}" + VERSIONS_PATH: {
                "post": {
                    "operationId": "createVersion",
                    "summary": "Another caption of the same photo: a new meme with its own id, link and deletion token",
                    "description": "Send `Authorization: Bearer <delete_token>` of the meme (only its uploader asks)."
                    " An empty body (or `{}`) takes the photo's next caption from its bank, a different one each"
                    " time until the bank is used up (then the new meme fails, saying so); `top`/`bottom` are your"
                    " own words. Works while the photo is kept (a day after its upload). Poll `status_url`.",
                    "parameters": [_ID_PARAMETER],
                    "security": [{"deleteToken": []}],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/VersionRequest"}}},
                    },
                    "responses": {
                        "201": {
                            **_answer("The new meme, on its way", {"$ref": "#/components/schemas/Version"}, _LOCATION),
                            "links": links,
                        },
                        "400": _error("The body is not valid JSON, or a field is wrong"),
                        "401": _NO_TOKEN,
                        "403": _error("The deletion token is wrong"),
                        "404": _error("No such meme, or deleted"),
                        "409": _error(f"The photo already has {settings.max_versions} other captions"),
                        "413": _error("The body is too large"),
                        "415": _error("The request is not JSON"),
                        **_usual(),
                    },
                }
            },
            SHARE_PATH + "{id}": {
                "get": {
                    "operationId": "getSharePage",
                    "summary": "The meme's share page: the meme, with Open Graph and Twitter card tags (HTML)",
                    "description": f"Works as long as the meme is kept ({settings.meme_retention_days} days).",
                    "parameters": [_ID_PARAMETER],
                    "responses": {
                        "200": {"description": "The page", "content": {"text/html": {}}},
                        "404": _error("No such meme, not made yet, failed, or deleted"),
                        **_usual(),
                    },
                }
            },
            SHARE_PATH + "{id}" + SHARE_IMAGE: {
                "get": {
                    "operationId": "getShareImage",
                    "summary": "The meme's image: a redirect to a freshly signed URL of it, short-lived",
                    "parameters": [_ID_PARAMETER],
                    "responses": {
                        "302": {
                            "description": "Location: the signed URL of the meme",
                            "headers": {"Location": _header("The signed URL of the meme")},
                        },
                        "404": _error("No such meme, not made yet, failed, or deleted"),
                        **_usual(internal=signing),
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "The OpenAPI document", "content": {"application/json": {}}},
                        "405": _error("Another method (the Allow header lists this path's)", _ALLOW),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "deleteToken": {"type": "http", "scheme": "bearer", "description": "The upload's delete_token."}
            },
            "schemas": {
                "Id": {
                    "type": "string",
                    "pattern": f"^{ID_PATTERN.pattern}$",
                    "description": "An upload's id (random).",
                },
                "UploadRequest": closed(
                    {
                        "content_type": {
                            "enum": list(UPLOAD_TYPES),
                            "description": "The photo's media type, exactly as listed (lower case).",
                        },
                        "top": caption,
                        "bottom": caption,
                        "format": {
                            "enum": list(MEME_FORMATS),
                            "default": DEFAULT_FORMAT,
                            "description": "The meme's format. gif and webp-zoom are the zoom meme: an animation"
                            " from the whole photo onto the face the caption is about, the last frame held, at"
                            f" most {ZOOM_SIDE} px long and 2 MB. A photo without a face fails (its record says why).",
                        },
                    },
                    optional=("top", "bottom", "format"),
                )
                | {
                    "examples": [
                        {"content_type": "image/jpeg", "top": "Me explaining the meme", "bottom": "to Mum"},
                        {"content_type": "image/jpeg", "format": "gif"},
                    ]
                },
                "Upload": closed(
                    {
                        "id": {"$ref": "#/components/schemas/Id"},
                        "upload_url": {
                            "type": "string",
                            "format": "uri",
                            "description": f"PUT the photo here within {settings.url_ttl_seconds} s, once, with"
                            f" upload_headers; at most {settings.max_bytes} bytes.",
                        },
                        "upload_headers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "status_url": {"type": "string", "description": "Where to poll: GET it."},
                        "delete_token": {
                            "type": "string",
                            "description": "Deletes the meme and the photo (DELETE status_url); given only here,"
                            " never in a share link: keep it to yourself.",
                        },
                    }
                ),
                "VersionRequest": closed({"top": caption, "bottom": caption}, optional=("top", "bottom"))
                | {"examples": [{}, {"top": "Ещё одна подпись", "bottom": None}]},
                "Version": closed(
                    {
                        "id": {"$ref": "#/components/schemas/Id"},
                        "status_url": {"type": "string", "description": "Where to poll: GET it."},
                        "delete_token": {"type": "string", "description": "Deletes this meme (keep it to yourself)."},
                    }
                ),
                "Error": closed({"error": {"type": "string"}}),
            },
        },
    }
