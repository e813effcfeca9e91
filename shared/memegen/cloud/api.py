"""The HTTP API: routing, validation and JSON responses, as a library.

The Cloud Function in ``functions/api`` is a thin adapter over :func:`handle`.
The browser never sends photo bytes here: it asks for a signed upload URL, PUTs
the photo straight to Cloud Storage, then polls the meme's status. The HTML it serves (the upload
page, a meme's share page) is in :mod:`memegen.cloud.pages`.
"""

from __future__ import annotations

import functools
import json
import re
import time
import traceback
import unicodedata
from dataclasses import dataclass
from typing import Any

import flask

from memegen.cloud.openapi import CONTROL_CATEGORIES, caption_pattern, openapi_document
from memegen.cloud.pages import page_response, share_page, shared_image
from memegen.cloud.responses import json_response, security_headers
from memegen.cloud.storage import Store
from memegen.contract import (
    CONVERT_FIRST,
    DEFAULT_FORMAT,
    DELETE_AUTH_SCHEME,
    DELETE_TOKEN_PATTERN,
    ID_PATTERN,
    JSON_TYPE,
    MEME_FORMATS,
    MEMES_PATH,
    OPENAPI_PATH,
    SHARE_IMAGE,
    SHARE_PATH,
    UPLOAD_TYPES,
    UPLOADS_PATH,
    VERSIONS_PATH,
)
from memegen.errors import (
    BodyTooLarge,
    CaptionRefused,
    DeleteRefused,
    MemeNotFound,
    MethodNotAllowed,
    Policy,
    RequestError,
    SigningUnavailable,
    TokenRequired,
    UnsupportedType,
    policy_of,
)
from memegen.logs import log
from memegen.meme.captions import MAX_CAPTION, own_caption
from memegen.meme.fonts import SCRIPTS
from memegen.settings import Settings

UPLOAD_FIELDS = frozenset({"content_type", "top", "bottom", "format"})
VERSION_FIELDS = frozenset({"top", "bottom"})
# The upload request is a few short strings: anything bigger is a mistake or abuse.
MAX_BODY_BYTES = 4096
# The on_upload function's timeout, with a minute to spare: its last retry may still be at work.
_WORKER_GRACE_SECONDS = 180
_LOG_PATH_CHARS = 200


@dataclass(frozen=True)
class UploadRequest:
    """A validated ``POST /v1/uploads`` body."""

    content_type: str
    top: str | None = None
    bottom: str | None = None
    format: str = DEFAULT_FORMAT  # a MEME_FORMATS name


def handle(request: flask.Request, *, store: Store, settings: Settings) -> flask.Response:
    """Answer one HTTP request: the upload page, a new signed upload, or a meme's status.

    Every error is a JSON ``{"error": "..."}`` with its status; every outcome is logged.
    """
    upload_id: str | None = None
    reason: str | None = None
    try:
        if request.path == "/":
            _allow(request, "GET", "HEAD")
            response = page_response(request, store=store, settings=settings)
        elif request.path == UPLOADS_PATH:
            _allow(request, "POST")
            upload = parse_upload_request(_read_body(request), content_type=request.mimetype)
            response, upload_id = _create_upload(upload, store=store)
        elif request.path == OPENAPI_PATH:
            _allow(request, "GET", "HEAD")
            response = json_response(openapi_document(settings), status=200)
            response.headers["Cache-Control"] = "public, max-age=300"
        elif request.path.startswith(SHARE_PATH):
            _allow(request, "GET", "HEAD")
            candidate = request.path.removeprefix(SHARE_PATH)
            image = candidate.endswith(SHARE_IMAGE)
            upload_id = _upload_id(candidate.removesuffix(SHARE_IMAGE))
            response = (
                shared_image(upload_id, store=store)
                if image
                else share_page(request, upload_id, store=store, settings=settings)
            )
        elif request.path.startswith(MEMES_PATH) and request.path.endswith(VERSIONS_PATH):
            _allow(request, "POST")
            upload_id = _upload_id(request.path.removeprefix(MEMES_PATH).removesuffix(VERSIONS_PATH))
            version = parse_version_request(_read_body(request), content_type=request.mimetype)
            response = _new_version(upload_id, version, token=_bearer_token(request), store=store)
        elif request.path.startswith(MEMES_PATH):
            _allow(request, "GET", "HEAD", "DELETE")
            upload_id = _upload_id(request.path.removeprefix(MEMES_PATH))
            if request.method == "DELETE":
                store.delete(upload_id, token=_bearer_token(request))
                response = flask.Response(status=204)
                security_headers(response)
            else:
                response = _meme_status(upload_id, store=store, settings=settings)
        else:
            raise MemeNotFound("no such route")
    except RequestError as exc:
        response, reason = error_response(exc), str(exc)
    except SigningUnavailable as exc:
        response, reason = (
            json_response({"error": "the service cannot sign URLs (misconfigured)"}, status=500),
            str(exc),
        )
    except Exception as exc:
        if policy_of(exc) is Policy.TRANSIENT:
            # Storage or IAM failed, or stayed out of reach through the client's own retries: the
            # request itself was fine, so the browser may try again.
            response, reason = (
                json_response({"error": "storage is unavailable right now; try again shortly"}, status=503),
                repr(exc),
            )
            response.headers["Retry-After"] = "5"
        else:
            # A bug (or a corrupt record): JSON with the security headers like every answer, and its
            # traceback in the log, never in the response.
            log("ERROR", "internal error", path=request.path, error=repr(exc), traceback=traceback.format_exc())
            response, reason = json_response({"error": "internal error"}, status=500), repr(exc)
    _log_outcome(request, response, upload_id=upload_id, reason=reason)
    return response


def _json_object(body: bytes, *, content_type: str, fields: frozenset[str]) -> dict[str, Any]:
    """A request body as strict JSON: an object of known ``fields``, no duplicate keys, no NaN."""
    if content_type != JSON_TYPE:
        raise UnsupportedType("send the request as application/json")
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        # json's parser recurses once per nesting level: 1,000 "[" exhaust the stack.
        raise RequestError("the body is not valid JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    unknown = sorted(set(data) - fields)
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(unknown)}; the fields are {', '.join(sorted(fields))}")
    return data


def parse_version_request(body: bytes, *, content_type: str) -> tuple[str | None, str | None]:
    """Validate a ``POST /v1/memes/{id}/versions`` body: ``{}`` for the next caption, or your own ``top``/``bottom``."""
    if not body.strip():
        return None, None
    data = _json_object(body, content_type=content_type, fields=VERSION_FIELDS)
    return _caption(data.get("top"), "top"), _caption(data.get("bottom"), "bottom")


def parse_upload_request(body: bytes, *, content_type: str) -> UploadRequest:
    """Validate a ``POST /v1/uploads`` body: strict JSON, known fields, an image type MemeGen reads.

    ``content_type`` is the request's media type (without parameters); it must be JSON.
    """
    data = _json_object(body, content_type=content_type, fields=UPLOAD_FIELDS)
    if "content_type" not in data:
        raise RequestError("content_type is required (the photo's type, image/jpeg say)")
    photo_type = data["content_type"]
    if not isinstance(photo_type, str):
        raise RequestError("content_type must be a string")
    # Exactly one of the document's values: what is signed is what the PUT must send, to the byte.
    if photo_type.strip().lower() in CONVERT_FIRST:
        raise UnsupportedType("HEIC/HEIF photos are not supported: convert the photo to JPEG, or upload a JPEG")
    if photo_type not in UPLOAD_TYPES:
        raise UnsupportedType(f"content_type must be one of {', '.join(UPLOAD_TYPES)}")
    format = data.get("format", DEFAULT_FORMAT)
    if format not in MEME_FORMATS:
        raise RequestError(f"format must be one of {', '.join(MEME_FORMATS)} (gif and webp-zoom: the zoom meme)")
    return UploadRequest(
        content_type=photo_type,
        top=_caption(data.get("top"), "top"),
        bottom=_caption(data.get("bottom"), "bottom"),
        format=format,
    )


def error_response(exc: RequestError) -> flask.Response:
    """The JSON error response for ``exc``: ``{"error": message}`` with its status."""
    response = json_response({"error": str(exc)}, status=exc.status)
    if isinstance(exc, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, TokenRequired):
        # RFC 9110: a 401 names the scheme that would do.
        response.headers["WWW-Authenticate"] = f'{DELETE_AUTH_SCHEME} realm="memegen"'
    return response


def _create_upload(upload: UploadRequest, *, store: Store) -> tuple[flask.Response, str]:
    signed = store.new_upload(
        content_type=upload.content_type, top=upload.top, bottom=upload.bottom, format=upload.format
    )
    body = {"upload_url": signed.url, "upload_headers": signed.headers}
    return _created(signed.id, signed.delete_token, body), signed.id


def _new_version(upload_id: str, caption: tuple[str | None, str | None], *, token: str, store: Store) -> flask.Response:
    top, bottom = caption
    version = store.new_version(upload_id, token=token, top=top, bottom=bottom)
    return _created(version.id, version.delete_token, {})


def _created(upload_id: str, delete_token: str, body: dict[str, Any]) -> flask.Response:
    """201 for a new upload (a photo's, or another caption's): its id, where to poll, its deletion token."""
    status_url = MEMES_PATH + upload_id
    response = json_response(
        {"id": upload_id, **body, "status_url": status_url, "delete_token": delete_token}, status=201
    )
    response.headers["Location"] = status_url
    return response


def _meme_status(upload_id: str, *, store: Store, settings: Settings) -> flask.Response:
    record = store.latest_record(upload_id)
    body: dict[str, Any]
    if record is None:
        raise MemeNotFound("no such meme")
    if record.get("status") == "done":
        # What the meme itself shows, and no more: anyone who was sent its link can read the
        # id in it. Face boxes and scores stay in the record, for the event's integrators.
        caption = record.get("caption") or {}
        body = {
            "status": "done",
            "id": upload_id,
            "meme_url": store.signed_meme_url(record["meme"]),
            "caption": {"top": caption.get("top", ""), "bottom": caption.get("bottom", "")},
        }
    elif record.get("status") == "failed":
        body = {"status": "failed", "id": upload_id, "error": record.get("error") or "the meme could not be made"}
    elif _never_arrived(record, settings):
        body = {"status": "failed", "id": upload_id, "error": "the photo never arrived: upload it again"}
    else:
        # Issued and not done yet, or a status this version does not know (a newer worker's
        # "processing", say): still on its way.
        body = {"status": "pending", "id": upload_id}
    response = json_response(body, status=200)
    # Each answer is a snapshot (and a done one carries a signed URL): never cache it anywhere.
    response.headers["Cache-Control"] = "no-store"
    return response


def _never_arrived(record: dict[str, Any], settings: Settings) -> bool:
    """Whether an upload's issued record is all there will ever be.

    A photo can arrive until its URL expires; its event is retried for ``retry_window_seconds``
    after that, and the worker then records it either way (a few minutes of work to spare).
    Past all that, a lone issued record means the photo never came.
    """
    expires = record.get("expires")
    if not isinstance(expires, int | float):
        return False
    return time.time() > expires + settings.retry_window_seconds + _WORKER_GRACE_SECONDS


def _upload_id(candidate: str) -> str:
    """The upload id a path names; a malformed one never reaches storage: it cannot name an upload this api issued."""
    if not ID_PATTERN.fullmatch(candidate):
        raise MemeNotFound("no such meme")
    return candidate


def _allow(request: flask.Request, *methods: str) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(f"{request.method} is not allowed here; use {' or '.join(methods)}", allowed=methods)


def _bearer_token(request: flask.Request) -> str:
    """The deletion token of ``Authorization: Bearer <token>``, if it has the form the store issues.

    ``TokenRequired`` (401) without Bearer credentials, ``DeleteRefused`` (403) for a token no meme
    could have: both before any storage read, whether the meme exists or not, since neither request
    could ever be granted. A well-formed token is the store's to check against the meme's.
    """
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    token = token.strip()
    if scheme != DELETE_AUTH_SCHEME or not token:
        raise TokenRequired(
            "send the meme's deletion token (Authorization: Bearer <delete_token>): only its uploader may delete it"
            " or ask for another"
        )
    if not DELETE_TOKEN_PATTERN.fullmatch(token):
        raise DeleteRefused("the meme's deletion token is wrong: only its uploader may delete it or ask for another")
    return token


def _read_body(request: flask.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    # Bounded read: a chunked body announces no length, so never read more than the limit allows.
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    return body


def _caption(value: object, name: str) -> str | None:
    """A caption line as the document describes it (null, or a string of its pattern and length), stripped."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string or null")
    # The limits hold for the line as sent: own_caption strips it first, so that a control
    # character or a space past the limit at either end would pass where the document says no.
    if len(value) > MAX_CAPTION:
        raise RequestError(f"{name} is {len(value)} characters long; the limit is {MAX_CAPTION}")
    try:
        text = own_caption(value, name=name)
    except CaptionRefused as exc:
        raise RequestError(str(exc)) from exc
    if not _caption_re().fullmatch(value):
        # What own_caption lets through and the published pattern does not: a control character at
        # either end, or a character beyond the Basic Multilingual Plane that a font happens to draw.
        if any(unicodedata.category(char) in CONTROL_CATEGORIES for char in value):
            raise RequestError(f"{name} must not contain control characters (newlines and tabs included)")
        raise RequestError(f"{name} has characters MemeGen cannot draw: use {SCRIPTS}")
    return text


@functools.cache
def _caption_re() -> re.Pattern[str]:
    return re.compile(caption_pattern())


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        # Which copy wins differs between parsers: refuse rather than guess.
        raise ValueError(f"duplicate key(s) {', '.join(duplicates)}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _log_outcome(
    request: flask.Request, response: flask.Response, *, upload_id: str | None, reason: str | None = None
) -> None:
    status = response.status_code
    severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    fields: dict[str, Any] = {
        "method": request.method,
        # The path is whatever the client sent: bounded so that a log line stays a line.
        "path": request.path[:_LOG_PATH_CHARS],
        "status": status,
        "upload_id": upload_id,
    }
    if reason is not None:
        fields["reason"] = reason
    log(severity, f"{request.method} {fields['path']} -> {status}", **fields)
