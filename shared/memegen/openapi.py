"""The api's OpenAPI 3.1 document, built from the contract and the settings so that it cannot drift.

Served at ``GET /v1/openapi.json``; the api's tests check every JSON answer they see against it.
"""

from __future__ import annotations

import functools
from typing import Any

from memegen.captions import MAX_CAPTION
from memegen.contract import (
    ID_PATTERN,
    MEMES_PATH,
    OPENAPI_PATH,
    SHARE_IMAGE,
    SHARE_PATH,
    UPLOAD_TYPES,
    UPLOADS_PATH,
    VERSIONS_PATH,
)
from memegen.records import closed
from memegen.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID_PARAMETER = {"name": "id", "in": "path", "required": True, "schema": {"$ref": "#/components/schemas/Id"}}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _answer(description, _ERROR)


_UNAVAILABLE = "Storage is unavailable for now: try again shortly (Retry-After)"
_INTERNAL = "An internal error"


def _usual(*, internal: str = _INTERNAL, unavailable: str = _UNAVAILABLE) -> dict[str, Any]:
    """The answers every storage-backed route may give: 503, 405 and 500."""
    return {
        "503": _error(unavailable),
        "405": _error("Another method (the Allow header lists this path's)"),
        "500": _error(internal),
    }


@functools.cache
def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of the api as deployed with ``settings``."""
    caption = {
        "type": "string",
        "maxLength": MAX_CAPTION,
        "description": "Your own caption line (no control characters).",
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
                    "summary": "A new upload: its id, a signed PUT URL and the headers the PUT must carry",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}},
                    },
                    "responses": {
                        "201": _answer(
                            "The upload, ready for the photo's PUT", {"$ref": "#/components/schemas/Upload"}
                        ),
                        "400": _error("The body is not valid JSON, or a field is wrong"),
                        "413": _error("The body is too large"),
                        "415": _error("The request is not JSON, or the photo's type is not one MemeGen reads"),
                        **_usual(internal=signing),
                    },
                }
            },
            MEMES_PATH + "{id}": {
                "get": {
                    "summary": "The meme's status: pending, done (with a signed URL of the meme) or failed (and why)",
                    "parameters": [_ID_PARAMETER],
                    "responses": {
                        "200": _answer("The status", {"oneOf": [pending, done, failed]}),
                        "404": _error("No such meme, or deleted"),
                        **_usual(internal=signing),
                    },
                },
                "delete": {
                    "summary": "Delete the meme, its records and the photo, with the upload's deletion token",
                    "description": "Send `Authorization: Bearer <delete_token>` (the token the upload's creation"
                    " returned, to the uploader only). Afterwards the status, the share page and its image answer"
                    " 404, and the events topic carries the records' deletion events (OBJECT_DELETE and"
                    " OBJECT_ARCHIVE on `records/<id>/`).",
                    "parameters": [_ID_PARAMETER],
                    "security": [{"deleteToken": []}],
                    "responses": {
                        "204": {"description": "Deleted: nothing of the photo is kept"},
                        "403": _error("The deletion token is missing or wrong"),
                        "404": _error("No such meme, or deleted"),
                        **_usual(unavailable="Storage is unavailable for now: try again (the delete can be repeated)"),
                    },
                },
            },
            MEMES_PATH + "{id}" + VERSIONS_PATH: {
                "post": {
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
                        "201": _answer("The new meme, on its way", {"$ref": "#/components/schemas/Version"}),
                        "400": _error("The body is not valid JSON, or a field is wrong"),
                        "403": _error("The deletion token is missing or wrong"),
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
                    "summary": "The meme's image: a redirect to a freshly signed URL of it, short-lived",
                    "parameters": [_ID_PARAMETER],
                    "responses": {
                        "302": {"description": "Location: the signed URL of the meme"},
                        "404": _error("No such meme, not made yet, failed, or deleted"),
                        **_usual(internal=signing),
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "The OpenAPI document", "content": {"application/json": {}}},
                        "405": _error("Another method (the Allow header lists this path's)"),
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
                        "content_type": {"enum": list(UPLOAD_TYPES), "description": "The photo's media type."},
                        "top": caption,
                        "bottom": caption,
                    },
                    optional=("top", "bottom"),
                ),
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
                "VersionRequest": closed({"top": caption, "bottom": caption}, optional=("top", "bottom")),
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
