"""The storage server of local runs and tests: gcp-storage-emulator, in memory, with the buckets made.

gcp-storage-emulator (2026.7.19) lacks a few Cloud Storage behaviours that MemeGen relies on; this
module adds exactly those, by wrapping the emulator's own handlers, and nothing else:

1. Preconditions. ``ifGenerationMatch`` on JSON API uploads and ``x-goog-if-generation-match`` on
   XML API PUTs are ignored, so an existing object is overwritten. Here they are answered with 412
   when the live generation differs (for 0: when the object exists), as Cloud Storage does.
2. Reads of a generation. ``generation=`` on an object GET or media download is ignored and the
   live object comes back. Here it is 404 unless it names the live generation (the emulator keeps
   no older generations: a bucket without versioning).
3. The signed-URL upload (XML API PUT). ``x-goog-meta-*`` headers are dropped and
   ``x-goog-content-length-range`` is not enforced. Here custom metadata is kept, the size range
   is enforced (400 EntityTooLarge / EntityTooSmall), a header named in ``X-Goog-SignedHeaders``
   but missing from the request is refused (403 SignatureDoesNotMatch) and so is an expired URL
   (400 ExpiredToken). With ``--verify-key KEY.json`` (the key the URLs are signed with), every
   request by bucket and object path (the signed URLs' form) must carry a valid V4 signature
   over its method, path, query and signed header values, as Cloud Storage checks it (403
   SignatureDoesNotMatch, or AccessDenied for an unsigned one); without it, none is verified.
4. CORS. There is no OPTIONS handler and no CORS header. Here each bucket has the CORS rules
   the stack gives it in the cloud (``--cors BUCKET METHODS ORIGIN``: the input bucket takes PUTs
   from the page's origin, the output bucket GETs): a preflight or a request from an origin,
   with a method or a header no rule allows gets no ``Access-Control-Allow-Origin``, as Cloud
   Storage answers it, so the browser test fails where the cloud page would. A bucket without
   rules answers no browser at all, as in Cloud Storage.
5. Object names. Cloud Storage takes any UTF-8 name up to 1,024 bytes, ``../`` included; the
   emulator keeps each object at a path of its file store named after the object and refuses a
   name with a ``..`` segment (a 500 that clients retry). Here each object's bytes sit under one
   flat, quoted key, so every name Cloud Storage takes is taken.

``python -m local.emulator --port 9023 --bucket memegen-input --bucket memegen-output
--cors memegen-input PUT http://127.0.0.1:8080 --cors memegen-output GET,HEAD http://127.0.0.1:8080``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http import HTTPStatus
from http.server import HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import buckets, objects
from gcp_storage_emulator.storage import Storage

# The emulator's handlers take (request, response, storage), all untyped.
Handler = Callable[[Any, Any, Any], None]

_META = "x-goog-meta-"
_NOT_MET = "At least one of the pre-conditions you specified did not hold."


def _live_generation(storage: Any, bucket: str, name: str) -> int:
    try:
        return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return 0


def _json_error(response: Any, status: HTTPStatus, reason: str, message: str) -> None:
    response.status = status
    response.json({"error": {"code": status.value, "message": message, "errors": [{"reason": reason}]}})


def _xml_error(response: Any, status: HTTPStatus, code: str, message: str) -> None:
    response.status = status
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    response.write_file(body.encode("utf-8"), content_type="application/xml")


def _insert_name(request: Any) -> str | None:
    if "name" in request.query:
        return str(request.query["name"][0])
    data = request.data
    if isinstance(data, dict):
        # Multipart uploads carry the resource under "meta"; resumable ones are the resource.
        name = data.get("meta", data).get("name")
        return str(name) if name else None
    return None


def _insert(request: Any, response: Any, storage: Any) -> None:
    """JSON API upload with ``ifGenerationMatch`` honoured (checked when a resumable upload starts)."""
    wanted = request.query.get("ifGenerationMatch")
    if wanted and "upload_id" not in request.query:
        name = _insert_name(request)
        live = _live_generation(storage, request.params["bucket_name"], name) if name else 0
        if name and live != int(wanted[0]):
            _json_error(
                response,
                HTTPStatus.PRECONDITION_FAILED,
                "conditionNotMet",
                _NOT_MET,
            )
            return
    objects.insert(request, response, storage)


def _pinned(handler: Handler) -> Handler:
    """An object GET or download that answers 404 unless ``generation=`` names the live generation."""

    def pinned(request: Any, response: Any, storage: Any) -> None:
        wanted = request.query.get("generation")
        if wanted and not request.query.get("softDeleted"):
            live = _live_generation(storage, request.params["bucket_name"], request.params["object_id"])
            if live != int(wanted[0]):
                _json_error(response, HTTPStatus.NOT_FOUND, "notFound", "No such object.")
                return
        handler(request, response, storage)

    return pinned


_EXPIRED = (HTTPStatus.BAD_REQUEST, "ExpiredToken", "the signed URL has expired")


def _expired(signed_at: str, lifetime: str) -> bool:
    """Whether a URL signed at ``X-Goog-Date`` for ``X-Goog-Expires`` seconds has expired."""
    start = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.now(UTC) > start + timedelta(seconds=int(lifetime))


def _signed_put_problem(query: dict[str, list[str]], headers: Any, size: int) -> tuple[HTTPStatus, str, str] | None:
    signed = query.get("X-Goog-SignedHeaders")
    if signed:
        # "host" is the URL's own; every other signed header must come with the request.
        missing = [name for name in signed[0].split(";") if name != "host" and name not in headers]
        if missing:
            return HTTPStatus.FORBIDDEN, "SignatureDoesNotMatch", f"signed headers missing from the request: {missing}"
        if _expired(query["X-Goog-Date"][0], query["X-Goog-Expires"][0]):
            return _EXPIRED
    limits = headers.get("x-goog-content-length-range")
    if limits:
        low, high = (int(value) for value in limits.split(","))
        if size > high:
            return HTTPStatus.BAD_REQUEST, "EntityTooLarge", f"{size} bytes is over the range {limits}"
        if size < low:
            return HTTPStatus.BAD_REQUEST, "EntityTooSmall", f"{size} bytes is under the range {limits}"
    return None


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


def signature_problem(
    *, method: str, target: str, headers: Mapping[str, str], public_key: rsa.RSAPublicKey
) -> tuple[HTTPStatus, str, str] | None:
    """Why a request by path (``target``: its path and query as sent) fails Cloud Storage's V4 check, or None.

    The canonical request is rebuilt from what arrived: the method, the path, every query
    parameter but the signature, and the values of the headers the URL says it signed
    (https://cloud.google.com/storage/docs/authentication/canonical-requests).
    """
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "X-Goog-Signature" not in query:
        return HTTPStatus.FORBIDDEN, "AccessDenied", "Anonymous caller does not have access: sign the URL"
    try:
        signature = bytes.fromhex(query.pop("X-Goog-Signature"))
        names = query["X-Goog-SignedHeaders"].split(";")
        sent = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
        canonical_headers = "".join(f"{name}:{sent.get(name, '')}\n" for name in names)
        canonical_query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(query.items()))
        canonical = "\n".join(
            [method, parts.path, canonical_query, canonical_headers, query["X-Goog-SignedHeaders"], "UNSIGNED-PAYLOAD"]
        )
        scope = query["X-Goog-Credential"].split("/", 1)[1]
        string_to_sign = "\n".join(
            [query["X-Goog-Algorithm"], query["X-Goog-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (KeyError, ValueError, IndexError, InvalidSignature):
        return HTTPStatus.FORBIDDEN, "SignatureDoesNotMatch", "The request signature we calculated does not match"
    if _expired(query["X-Goog-Date"], query["X-Goog-Expires"]):
        return _EXPIRED
    return None


def _signed(handler: Handler) -> Handler:
    """A request by bucket and object path (a signed URL's): its V4 signature checked first, when a key is set."""

    def signed(request: Any, response: Any, storage: Any) -> None:
        http = request._request_handler
        if http.verify_key is not None:
            problem = signature_problem(
                method=http.command, target=http.path, headers=http.headers, public_key=http.verify_key
            )
            if problem is not None:
                _xml_error(response, *problem)
                return
        handler(request, response, storage)

    return signed


def _xml_upload(request: Any, response: Any, storage: Any) -> None:
    """XML API PUT (signed URL uploads) with custom metadata, size range, signed headers and preconditions."""
    # The emulator's Request lists no headers; its HTTP handler's message does.
    headers = request._request_handler.headers
    if request.data is None:
        # The emulator reads an empty body as None and then fails on len(None).
        request._data = b""
    bucket, name = request.params["bucket_name"], request.params["object_id"]
    problem = _signed_put_problem(request.query, headers, len(request.data))
    wanted = headers.get("x-goog-if-generation-match")
    if problem is None and wanted is not None and _live_generation(storage, bucket, name) != int(wanted):
        problem = (
            HTTPStatus.PRECONDITION_FAILED,
            "PreconditionFailed",
            _NOT_MET,
        )
    if problem is not None:
        _xml_error(response, *problem)
        return
    objects.xml_upload(request, response, storage)
    if response.status != HTTPStatus.OK:
        return
    obj = storage.get_file_obj(bucket, name)
    metadata = {key.lower()[len(_META) :]: value for key, value in headers.items() if key.lower().startswith(_META)}
    if metadata:
        obj["metadata"] = metadata
        storage.patch_object(bucket, name, obj)
    response["ETag"] = f'"{obj["etag"]}"'
    response["x-goog-generation"] = obj["generation"]


_patched = False


def _quoted_links(make: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The emulator's object resource with the name quoted in its links, as Cloud Storage writes them."""

    def resource(base_url: str, bucket_name: str, object_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        obj = make(base_url, bucket_name, object_name, *args, **kwargs)
        quoted = quote(object_name, safe="")
        obj["selfLink"] = f"/storage/v1/b/{bucket_name}/o/{quoted}"
        obj["mediaLink"] = obj["mediaLink"].replace(f"/o/{object_name}?", f"/o/{quoted}?", 1)
        return obj

    return resource


def _patch_handlers() -> None:
    global _patched
    if _patched:
        return
    objects._make_object_resource = _quoted_links(objects._make_object_resource)
    replacements: dict[Handler, Handler] = {
        objects.insert: _insert,
        objects.xml_upload: _xml_upload,
        objects.get: _pinned(objects.get),
        objects.download: _pinned(objects.download),
    }
    for regex, handlers in server.HANDLERS:
        # The route by bucket and object path: signed URLs (the JSON API routes start with /b/,
        # /storage, /upload or /download, and its clients authenticate another way).
        by_path = regex.startswith("^/(?P<bucket_name>")
        for method, handler in handlers.items():
            replaced = replacements.get(handler, handler)
            handlers[method] = _signed(replaced) if by_path else replaced
    _patched = True


@dataclass(frozen=True)
class CorsRule:
    """One CORS rule of a bucket, as the stack sets it: origins, methods, request headers allowed."""

    origins: frozenset[str]
    methods: frozenset[str]
    headers: tuple[str, ...] = (
        "content-type",
        "x-goog-content-length-range",
        "x-goog-if-generation-match",
        "x-goog-meta-*",
    )

    def allows(self, origin: str, method: str, headers: Iterable[str] = ()) -> bool:
        if origin not in self.origins or method.upper() not in self.methods:
            return False
        return all(any(_header_matches(h.strip().lower(), allowed) for allowed in self.headers) for h in headers if h)


def _header_matches(header: str, allowed: str) -> bool:
    return header.startswith(allowed[:-1]) if allowed.endswith("*") else header == allowed


def _bucket_of(path: str) -> str:
    """The bucket a request is about: JSON API paths name it after ``/b/``, XML API paths first."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if "b" in parts[:4] and parts.index("b") + 1 < len(parts):
        return parts[parts.index("b") + 1]
    return parts[0] if parts else ""


class _RequestHandler(server.RequestHandler):  # type: ignore[misc]
    cors: Mapping[str, tuple[CorsRule, ...]] = {}
    verify_key: rsa.RSAPublicKey | None = None

    def _rules(self) -> tuple[CorsRule, ...]:
        return self.cors.get(_bucket_of(self.path), ())

    def do_OPTIONS(self) -> None:
        origin = self.headers.get("Origin", "")
        method = self.headers.get("Access-Control-Request-Method", "")
        wanted = self.headers.get("Access-Control-Request-Headers", "").split(",")
        if any(rule.allows(origin, method, wanted) for rule in self._rules()):
            self.send_response(HTTPStatus.OK)
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Allow-Methods", method.upper())
            self.send_header("Access-Control-Allow-Headers", self.headers.get("Access-Control-Request-Headers", ""))
            self.send_header("Access-Control-Max-Age", "3600")
        else:
            # As Cloud Storage answers a preflight no rule allows: no CORS header, so the browser refuses.
            self.send_response(HTTPStatus.FORBIDDEN)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def end_headers(self) -> None:
        origin = self.headers.get("Origin")
        if origin and self.command != "OPTIONS" and any(rule.allows(origin, self.command) for rule in self._rules()):
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Expose-Headers", "ETag, x-goog-generation")
            self.send_header("Vary", "Origin")
        super().end_headers()


class _FlatKeyStorage(Storage):  # type: ignore[misc]
    """The emulator's storage with every object's bytes under one quoted key (5. above)."""

    def _object_path(self, bucket_name: str, file_name: str) -> str:
        return f"{bucket_name}/{quote(file_name, safe='')}"


def make_server(
    *,
    host: str,
    port: int,
    bucket_names: Iterable[str],
    data_dir: Path | None = None,
    cors: Mapping[str, tuple[CorsRule, ...]] | None = None,
    verify_key: rsa.RSAPublicKey | None = None,
) -> HTTPServer:
    """An emulator bound to ``host:port`` (0: any free port), with those buckets made.

    ``cors`` gives each bucket its CORS rules; a bucket without any answers no browser.
    ``verify_key``: the public key signed URLs must be signed with (None: no check).

    In memory, or with ``data_dir`` on disk, where a server started again finds every object
    of the one before it (for tests that stop the storage server and start it again).

    One request at a time, as the emulator serves: that also makes each precondition check and
    the write that follows it atomic, as they are in Cloud Storage.
    """
    _patch_handlers()
    storage = _FlatKeyStorage(use_memory_fs=data_dir is None, data_dir=str(data_dir.resolve()) if data_dir else None)
    for name in bucket_names:
        buckets.create_bucket(name, storage)
    handler = type("RequestHandler", (_RequestHandler,), {"cors": dict(cors or {}), "verify_key": verify_key})
    return HTTPServer((host, port), partial(handler, storage))


def public_key_of(key_file: Path) -> rsa.RSAPublicKey:
    """The public half of a service-account key file's private key."""
    info = json.loads(key_file.read_text())
    private = serialization.load_pem_private_key(info["private_key"].encode("ascii"), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{key_file}: not an RSA key")
    return private.public_key()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until stopped (SIGTERM, or Ctrl-C)."""
    parser = argparse.ArgumentParser(
        prog="python -m local.emulator", description="The storage emulator of local runs and tests."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9023, help="0: any free port (the ready line says which)")
    parser.add_argument("--bucket", action="append", default=[], help="a bucket to make (repeat)")
    parser.add_argument("--data-dir", type=Path, help="keep the objects on disk here (default: in memory)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--cors",
        nargs=3,
        action="append",
        default=[],
        metavar=("BUCKET", "METHODS", "ORIGIN"),
        help="a CORS rule: browsers at ORIGIN may use METHODS (comma-separated) on BUCKET (repeat)",
    )
    parser.add_argument(
        "--verify-key", type=Path, metavar="KEY.json", help="check signed URLs against this service-account key"
    )
    args = parser.parse_args(argv)
    cors: dict[str, tuple[CorsRule, ...]] = {}
    for bucket, methods, origin in args.cors:
        rule = CorsRule(origins=frozenset({origin}), methods=frozenset(m.strip().upper() for m in methods.split(",")))
        cors[bucket] = (*cors.get(bucket, ()), rule)
    # The emulator logs a warning for every JSON response it builds: noise, unless asked for.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="storage: %(message)s")
    key = public_key_of(args.verify_key) if args.verify_key else None
    httpd = make_server(
        host=args.host, port=args.port, bucket_names=args.bucket, data_dir=args.data_dir, cors=cors, verify_key=key
    )
    print(f"storage emulator on http://{args.host}:{httpd.server_port}", flush=True)
    # SIGTERM stops it between two requests, so that a write in progress (of the objects and of
    # the index of a --data-dir) always completes: shutdown() waits for the serving loop.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown, daemon=True).start())
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    httpd.server_close()


if __name__ == "__main__":
    main()
