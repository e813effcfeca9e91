"""The ``api`` Cloud Function through functions-framework, against the real storage server, with real uploads.

Signed URLs are checked by an independent V4 verifier written here from Google's documentation
(canonical request, string to sign, RSA-SHA256 with the signing key's public half), since the
storage emulator does not verify signatures.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import importlib.util
import io
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlsplit

import flask
import functions_framework
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask.testing import FlaskClient
from google.api_core.exceptions import ServiceUnavailable
from google.auth.credentials import Credentials
from google.cloud import storage
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from PIL import Image

from local.bridge import finalized_event, object_data
from local.devkey import DEV_EMAIL
from local.emulator import public_key_of
from memegen.cloud import api
from memegen.cloud.openapi import openapi_document
from memegen.cloud.records import record_schema
from memegen.cloud.storage import Store
from memegen.cloud.uploads import Upload
from memegen.cloud.worker import Outcome, Result, handle_upload
from memegen.contract import OPENAPI_PATH
from memegen.meme.engine import Engine
from memegen.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "functions" / "api" / "main.py"


def _load_consumer() -> Any:
    """The example integrator of the README (examples/consumer/main.py), loaded by path: it is not a package."""
    spec = importlib.util.spec_from_file_location("example_consumer", ROOT / "examples" / "consumer" / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


consumer = _load_consumer()
HEX32 = re.compile(r"[0-9a-f]{32}")


# The key pair the function signs with: a development key file, as a local run has.


@pytest.fixture(scope="module")
def key_file(signing_key_file: Path) -> Path:
    """The key the storage server checks signed URLs against."""
    return signing_key_file


@pytest.fixture(scope="module")
def public_key(key_file: Path) -> rsa.RSAPublicKey:
    return public_key_of(key_file)


class ContractClient(FlaskClient):
    """A test client that checks every answer to a documented path against the api's own OpenAPI document."""

    document: dict[str, Any] | None = None
    checked: ClassVar[list[str]] = []

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        document = self.document
        if document is None:
            served = super().open(OPENAPI_PATH)
            assert served.status_code == 200, served.data
            document = type(self).document = served.get_json()
        check_against_openapi(document, response.request.method, response.request.path, response)
        return response


def _template(path: str) -> str:
    """A regular expression for an OpenAPI path template: each ``{name}`` is one path segment."""
    return re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))


def check_against_openapi(document: dict[str, Any], method: str, path: str, response: Any) -> None:
    """Fail unless the document lists this answer's status for the path and its JSON body fits the schema."""
    matching = [ops for template, ops in document["paths"].items() if re.fullmatch(_template(template), path)]
    if not matching:
        return  # the page and unknown routes: not part of the JSON API
    operations = matching[0]
    # Another method than the path's is answered 405: the path's own operation lists it.
    operation = operations.get("get" if method == "HEAD" else method.lower()) or next(iter(operations.values()))
    answers = operation["responses"]
    spec = answers.get(str(response.status_code))
    assert spec, f"{method} {path} answered {response.status_code}, which the OpenAPI document does not list"
    schema = spec.get("content", {}).get("application/json", {}).get("schema")
    if schema is not None and method != "HEAD":
        assert response.mimetype == "application/json", response.mimetype
        # The document's components travel with the schema, so that its $refs resolve.
        Draft202012Validator({**schema, "components": document["components"]}).validate(response.get_json())
    ContractClient.checked.append(f"{method} {path} {response.status_code}")


@pytest.fixture(scope="module")
def app(storage_client: storage.Client, key_file: Path) -> Iterator[flask.Flask]:
    # The function's services() reads the environment at its first request, so it is set for the
    # module: storage_client has pointed STORAGE_EMULATOR_HOST at the emulator for the whole session.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        patch.delenv("MEMEGEN_SIGNING_SERVICE_ACCOUNT", raising=False)
        app = functions_framework.create_app(target="api", source=str(SOURCE))
        app.test_client_class = ContractClient
        yield app


@pytest.fixture
def client(app: flask.Flask, empty_buckets: storage.Client) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def input_bucket(empty_buckets: storage.Client, settings: Settings) -> storage.Bucket:
    return empty_buckets.bucket(settings.input_bucket)


def a_jpeg(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 4 % 256, y * 5 % 256, 128) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


# An independent V4 signature check, from https://cloud.google.com/storage/docs/authentication/signatures.


def _encode(text: str) -> str:
    # RFC 3986: everything but the unreserved characters is percent-encoded.
    return quote(text, safe="-_.~")


class UrlExpired(Exception):
    """A signed URL used after its lifetime."""


def verify_v4(
    url: str, *, method: str, headers: dict[str, str], public_key: rsa.RSAPublicKey, now: datetime | None = None
) -> dict[str, str]:
    """Verify a V4 signed URL for a request with ``method`` and ``headers``; returns its query parameters.

    Raises ``InvalidSignature`` when the signature does not match, ``UrlExpired`` past its lifetime
    (at ``now``), ``AssertionError`` for a malformed URL.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    signed_names = query["X-Goog-SignedHeaders"].split(";")
    assert signed_names == sorted(signed_names), "signed headers must be listed in order"
    sent = {name.lower(): " ".join(value.split()) for name, value in headers.items()} | {"host": parts.netloc}
    # Everything the client must send is signed, and nothing it does not send.
    assert set(signed_names) == set(sent), (signed_names, sorted(sent))
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{name}:{sent[name]}\n" for name in signed_names)
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, query["X-Goog-SignedHeaders"], "UNSIGNED-PAYLOAD"]
    )
    email, scope = query["X-Goog-Credential"].split("/", 1)
    string_to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    public_key.verify(signature, string_to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert email == DEV_EMAIL and scope.endswith("/auto/storage/goog4_request")
    signed_at = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=int(query["X-Goog-Expires"])):
        raise UrlExpired(f"signed at {signed_at}, valid {query['X-Goog-Expires']} s")
    if now is None:
        assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=2), "a URL signed just now"
    assert scope.startswith(signed_at.strftime("%Y%m%d") + "/")
    return query


def json_of(response: Any) -> Any:
    assert response.mimetype == "application/json"
    return response.get_json()


def new_upload(client: FlaskClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/uploads", json={"content_type": "image/jpeg", **body})
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = json_of(response)
    assert response.headers["Location"] == data["status_url"]
    return data


def put_photo(upload: dict[str, Any], data: bytes) -> None:
    response = requests.put(upload["upload_url"], data=data, headers=upload["upload_headers"], timeout=10)
    assert response.status_code == 200, response.text


# The page.


def test_the_page_is_served_with_its_security_headers(client: FlaskClient, settings: Settings) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    html = response.get_data(as_text=True)
    assert '<form id="form"' in html and 'id="top"' in html and 'id="bottom"' in html
    # Two ways in: the library, and the camera (capture forces the camera, so it is the second input).
    assert 'type="file" id="library" accept="image/*">' in html
    assert 'type="file" id="camera" accept="image/*" capture>' in html
    assert 'aria-live="polite"' in html and "<progress" in html
    block = re.search(r'<script type="application/json" id="config">(.*?)</script>', html, re.S)
    assert block is not None
    config = json.loads(block[1])
    assert config["maxBytes"] == settings.max_bytes and "image/jpeg" in config["contentTypes"]
    assert "image/heic" not in config["contentTypes"]
    # The page says how long the meme is kept (the settings' figure), and carries nothing it does not use.
    assert config["retentionDays"] == settings.meme_retention_days
    script = html.split('id="config">', 1)[1]
    assert all(f"config.{key}" in script for key in config), config
    # Nothing from anywhere else: no external script, style, font or image.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "max-age" in response.headers["Cache-Control"]
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    emulator = emulator_origin()
    assert emulator in policy["connect-src"].split() and emulator in policy["img-src"].split()
    # The inline script and style are allowed by their hashes, and nothing else inline is.
    assert "unsafe" not in policy["script-src"] and "unsafe" not in policy["style-src"]
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    assert policy["script-src"] == f"'{sha256_source(scripts[0])}'"
    assert policy["style-src"] == f"'{sha256_source(styles[0])}'"
    # Inline event handlers and style attributes would be blocked by that policy: there are none.
    assert not re.search(r"\son[a-z]+=|\sstyle=", html)


def emulator_origin() -> str:
    parts = urlsplit(storage.Client().api_endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def sha256_source(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_page_needs_no_signing_call(storage_client: storage.Client, settings: Settings) -> None:
    # The page's policy names the storage origin, read off the client: no IAM call on GET /, and a
    # store that cannot sign at all still serves the page.
    store = Store(storage_client, settings)
    with flask.Flask(__name__).test_request_context("/"):
        response = api.handle(flask.request, store=store, settings=settings)
    assert response.status_code == 200
    assert f"connect-src 'self' {store.origin}" in response.headers["Content-Security-Policy"]
    assert urlsplit(store.origin).netloc == urlsplit(storage_client.api_endpoint).netloc


def test_the_page_is_revalidated_by_its_etag(client: FlaskClient) -> None:
    first = client.get("/")
    again = client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert client.head("/").status_code == 200


# The whole flow: a signed upload, a real PUT, pending, done.


def test_an_upload_becomes_a_meme(
    client: FlaskClient,
    store: Store,
    input_bucket: storage.Bucket,
    settings: Settings,
    public_key: rsa.RSAPublicKey,
    engine: Engine,
    photos_dir: Path,
) -> None:
    upload = new_upload(client, top="été 100%", bottom="  so   spaced  ")
    upload_id = upload["id"]
    assert HEX32.fullmatch(upload_id) and upload["status_url"] == f"/v1/memes/{upload_id}"
    assert upload["upload_headers"]["Content-Type"] == "image/jpeg"
    # Every header is one a browser may set: it refuses Host (a console error on every upload).
    assert "host" not in {name.lower() for name in upload["upload_headers"]}

    query = verify_v4(upload["upload_url"], method="PUT", headers=upload["upload_headers"], public_key=public_key)
    assert int(query["X-Goog-Expires"]) == settings.url_ttl_seconds <= 900
    signed = query["X-Goog-SignedHeaders"].split(";")
    assert {"content-type", "x-goog-content-length-range", "x-goog-meta-memegen-top"} <= set(signed)
    # An empty upload is refused by Cloud Storage itself: nothing to make a meme of.
    assert upload["upload_headers"]["x-goog-content-length-range"] == f"1,{settings.max_bytes}"
    assert urlsplit(upload["upload_url"]).path == f"/{settings.input_bucket}/{settings.upload_prefix}{upload_id}"

    photo = (photos_dir / "obama-240p.jpg").read_bytes()
    put_photo(upload, photo)
    # The URL uploads once: used again within its lifetime, it cannot replace the photo.
    again = requests.put(upload["upload_url"], data=a_jpeg(), headers=upload["upload_headers"], timeout=10)
    assert again.status_code == 412, again.text
    blob = input_bucket.get_blob(f"{settings.upload_prefix}{upload_id}")
    assert blob is not None and blob.content_type == "image/jpeg"
    # Read before the download, which resets the blob's properties from the response headers.
    generation = blob.generation
    assert isinstance(generation, int) and blob.download_as_bytes() == photo
    assert {key: unquote(value) for key, value in (blob.metadata or {}).items()} == {
        "memegen-top": "été 100%",
        "memegen-bottom": "so   spaced",
    }

    pending = client.get(upload["status_url"])
    assert pending.status_code == 200 and pending.headers["Cache-Control"] == "no-store"
    assert json_of(pending) == {"status": "pending", "id": upload_id}

    # The worker's part: the real on_upload handler, on the event Eventarc would send.
    arrived = input_bucket.get_blob(blob.name)
    assert arrived is not None and arrived.generation == generation
    outcome = handle_upload(finalized_event(object_data(arrived)), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.MADE and outcome.upload_id == upload_id, outcome
    caption = {"top": "été 100%", "bottom": "so   spaced"}

    done = client.get(upload["status_url"])
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    body = json_of(done)
    # What the meme shows and no more: anyone with the link can read the id in it.
    assert set(body) == {"status", "id", "meme_url", "caption"}
    assert body["status"] == "done" and body["caption"] == caption
    assert "box" not in done.get_data(as_text=True) and "scores" not in done.get_data(as_text=True)
    query = verify_v4(body["meme_url"], method="GET", headers={}, public_key=public_key)
    assert query["X-Goog-SignedHeaders"] == "host" and int(query["X-Goog-Expires"]) <= 900
    assert urlsplit(body["meme_url"]).path.startswith(f"/{settings.output_bucket}/memes/{upload_id}/")
    fetched = requests.get(body["meme_url"], timeout=10)
    (meme,) = input_bucket.client.list_blobs(settings.output_bucket, prefix=f"memes/{upload_id}/")
    assert fetched.status_code == 200 and fetched.content == meme.download_as_bytes()
    assert fetched.content[:2] == b"\xff\xd8"

    # The share link lasts as long as the meme: its page previews in chat apps, and its image
    # address redirects to a freshly signed URL, so the bucket stays private.
    share = client.get(f"/m/{upload_id}")
    assert share.status_code == 200 and share.mimetype == "text/html"
    page = share.get_data(as_text=True)
    assert f'<meta property="og:image" content="http://localhost/m/{upload_id}/image">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    assert f'<meta property="og:title" content="{html.escape("été 100% / so   spaced")}">' in page
    assert f"kept {settings.meme_retention_days} days" in page
    assert f"img-src 'self' {urlsplit(body['meme_url']).scheme}://" in share.headers["Content-Security-Policy"]
    image = client.get(f"/m/{upload_id}/image")
    assert image.status_code == 302 and image.headers["Cache-Control"] == "no-store"
    verify_v4(image.headers["Location"], method="GET", headers={}, public_key=public_key)
    assert requests.get(image.headers["Location"], timeout=10).content == fetched.content


def test_a_failed_meme_says_why(
    client: FlaskClient, store: Store, input_bucket: storage.Bucket, settings: Settings
) -> None:
    upload = new_upload(client)
    assert "x-goog-meta-memegen-top" not in upload["upload_headers"]
    put_photo(upload, a_jpeg())
    blob = input_bucket.get_blob(f"{settings.upload_prefix}{upload['id']}")
    assert blob is not None
    uploaded, _ = store.read_upload(blob.name, blob.generation)
    assert store.write_failure(uploaded, reason="no face found in the photo")
    body = json_of(client.get(upload["status_url"]))
    assert body == {"status": "failed", "id": upload["id"], "error": "no face found in the photo"}


@pytest.mark.parametrize("record", [b"{not json", b'{"status": "done", "id": "x"}', b"[]"])
def test_a_corrupt_record_is_a_json_500_with_the_security_headers(
    client: FlaskClient,
    empty_buckets: storage.Client,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    record: bytes,
) -> None:
    meme_id = uuid.uuid4().hex
    blob = empty_buckets.bucket(settings.output_bucket).blob(f"records/{meme_id}/1.json")
    blob.upload_from_string(record, content_type="application/json")
    response = client.get(f"/v1/memes/{meme_id}")
    assert response.status_code == 500 and json_of(response) == {"error": "internal error"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Traceback" in capsys.readouterr().out  # in the log, not the response


def test_an_unknown_id_is_not_found(client: FlaskClient) -> None:
    response = client.get(f"/v1/memes/{uuid.uuid4().hex}")
    assert response.status_code == 404 and "error" in json_of(response)


def test_an_issued_upload_is_pending_until_it_can_no_longer_arrive(
    client: FlaskClient,
    empty_buckets: storage.Client,
    settings: Settings,
) -> None:
    """The api answers from the output bucket alone: it never reads people's photos."""
    upload = new_upload(client)
    assert json_of(client.get(upload["status_url"])) == {"status": "pending", "id": upload["id"]}
    # The same issued record, its URL long expired and every retry of a photo's event over.
    long_ago = int(time.time()) - settings.url_ttl_seconds - settings.retry_window_seconds - 3600
    stale = uuid.uuid4().hex
    record = {"status": "pending", "id": stale, "expires": long_ago}
    blob = empty_buckets.bucket(settings.output_bucket).blob(f"records/{stale}/0.json")
    blob.upload_from_string(json.dumps(record), content_type="application/json")
    body = json_of(client.get(f"/v1/memes/{stale}"))
    assert body["status"] == "failed" and "never arrived" in body["error"]


class Untouchable:
    """A store that fails the test if anything asks it for anything."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"storage was asked for {name}")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/memes/abc",
        "/v1/memes/" + "A" * 32,
        "/v1/memes/" + "a" * 33,
        "/v1/memes/" + "g" * 32,
        "/v1/memes/",
        "/v1/memes/../uploads",
        f"/v1/memes/{'a' * 32}/x",
        f"/v1/memes/{'a' * 32}.json",
    ],
)
def test_a_malformed_id_never_reaches_storage(app: flask.Flask, settings: Settings, path: str) -> None:
    with app.test_request_context(path, method="GET"):
        response = api.handle(flask.request, store=Untouchable(), settings=settings)  # type: ignore[arg-type]
    assert response.status_code == 404 and response.get_json() == {"error": "no such meme"}


# Refusals: always JSON, always the right status, never an upload URL.


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "not valid JSON"),
        (b"\xff\xfe{}", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"content_type": "image/jpeg", "content_type": "image/png"}', 400, "duplicate"),
        (b'{"top": "hi"}', 400, "content_type is required"),
        (b'{"content_type": 5}', 400, "must be a string"),
        (b'{"content_type": "text/plain"}', 415, "image/jpeg"),
        (b'{"content_type": "image/svg+xml"}', 415, "image/jpeg"),
        (b'{"content_type": "image/heic"}', 415, "JPEG"),
        (b'{"content_type": "image/jpeg", "name": "../x.jpg"}', 400, "unknown field(s): name"),
        (b'{"content_type": "image/jpeg", "top": 5}', 400, "top must be a string"),
        (json.dumps({"content_type": "image/jpeg", "top": "x" * 121}).encode(), 400, "limit is 120"),
        (json.dumps({"content_type": "image/jpeg", "bottom": "line\nbreak"}).encode(), 400, "control"),
        (json.dumps({"content_type": "image/jpeg", "bottom": "bell\x07"}).encode(), 400, "control"),
        (json.dumps({"content_type": "image/jpeg", "top": "a\u2028b"}).encode(), 400, "control"),
        # The limits hold for the line as sent, as the document's pattern and length say, stripped or not.
        (json.dumps({"content_type": "image/jpeg", "top": "tab at the end\t"}).encode(), 400, "control"),
        (json.dumps({"content_type": "image/jpeg", "top": "x" * 120 + " "}).encode(), 400, "limit is 120"),
        # A font has a glyph for it, but it is beyond the Basic Multilingual Plane the pattern covers.
        (json.dumps({"content_type": "image/jpeg", "bottom": "\U0001f16b"}).encode(), 400, "cannot draw"),
        # Exactly one of the document's media types: the signed PUT must send it to the byte.
        (b'{"content_type": "IMAGE/JPEG"}', 415, "image/jpeg"),
        (b'{"content_type": " image/jpeg"}', 415, "image/jpeg"),
        (json.dumps({"content_type": "image/jpeg", "top": "x" * 5000}).encode(), 413, "over 4096 bytes"),
        (b"[" * 2000, 400, "nested too deeply"),
        (b'{"a":[' * 600, 400, "nested too deeply"),
    ],
)
def test_bad_upload_requests_are_refused(client: FlaskClient, body: bytes, status: int, says: str) -> None:
    response = client.post("/v1/uploads", data=body, content_type="application/json")
    assert response.status_code == status
    error = json_of(response)
    assert set(error) == {"error"} and says in error["error"]


def test_an_upload_request_must_be_json(client: FlaskClient) -> None:
    response = client.post("/v1/uploads", data='{"content_type": "image/jpeg"}', content_type="text/plain")
    assert response.status_code == 415 and "application/json" in json_of(response)["error"]


def test_a_caption_of_exactly_the_limit_is_taken(client: FlaskClient) -> None:
    caption = "Ж" * 120  # Cyrillic: two bytes a character in UTF-8, six percent-encoded
    upload = new_upload(client, top=caption, bottom=None)
    assert unquote(upload["upload_headers"]["x-goog-meta-memegen-top"]) == caption
    assert "x-goog-meta-memegen-bottom" not in upload["upload_headers"]


@pytest.mark.parametrize("caption", ["😀 party", "你好", "مرحبا"])
def test_a_caption_no_font_can_draw_is_refused_with_what_is_drawn(client: FlaskClient, caption: str) -> None:
    response = client.post("/v1/uploads", json={"content_type": "image/jpeg", "top": caption})
    assert response.status_code == 400
    assert "cannot draw" in json_of(response)["error"] and "Cyrillic" in json_of(response)["error"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/uploads", "POST"),
        ("GET", "/v1/uploads", "POST"),
        ("OPTIONS", "/v1/uploads", "POST"),
        ("DELETE", "/", "GET, HEAD"),
        ("POST", f"/v1/memes/{'a' * 32}", "GET, HEAD, DELETE"),
    ],
)
def test_a_wrong_method_is_refused(client: FlaskClient, method: str, path: str, allowed: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405 and response.headers["Allow"] == allowed
    assert method in json_of(response)["error"]


@pytest.mark.parametrize("path", ["/v1/uploads/", "/v1", "/v2/uploads", "/index.html", "/v1/memes"])
def test_anything_else_is_not_found(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and json_of(response) == {"error": "no such route"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/v1/memes/%0A", "no such meme"),
        (f"/v1/memes/{'a' * 16}%0A{'a' * 15}", "no such meme"),
        ("/m/%0A/image", "no such meme"),
        ("/v1/%0A", "no such route"),
        ("/favicon.ico", "no such route"),
        ("/robots.txt", "no such route"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE", "POST", "PATCH"])
def test_a_path_the_framework_does_not_route_is_answered_by_the_api(
    client: FlaskClient, path: str, error: str, method: str
) -> None:
    # functions-framework's path converter matches no newline, and it keeps two paths of its own: Flask
    # would answer them with its HTML page. The api answers them as any other, in JSON.
    response = client.open(path, method=method)
    assert response.mimetype == "application/json", response.data
    if response.status_code == 405:  # a path of the api's, another method
        assert "Allow" in response.headers and method in json_of(response)["error"]
    else:
        assert response.status_code == 404 and json_of(response) == {"error": error}


class Unavailable:
    """A store whose storage is down: the client has retried and given up."""

    def latest_record(self, upload_id: str) -> None:
        raise ServiceUnavailable("storage is down")


def test_storage_trouble_is_a_503_worth_retrying(app: flask.Flask, settings: Settings) -> None:
    with app.test_request_context(f"/v1/memes/{'b' * 32}", method="GET"):
        response = api.handle(flask.request, store=Unavailable(), settings=settings)  # type: ignore[arg-type]
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "error" in response.get_json()


def test_every_outcome_is_logged(client: FlaskClient, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    upload = new_upload(client)
    client.get("/v1/memes/nope")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    created, refused = lines[-2], lines[-1]
    assert created["severity"] == "INFO" and created["upload_id"] == upload["id"] and created["status"] == 201
    assert refused["severity"] == "WARNING" and refused["status"] == 404 and refused["upload_id"] is None
    assert refused["reason"] == "no such meme"


# The verifier itself: it must refuse what a real Cloud Storage would refuse.


def test_the_verifier_refuses_a_tampered_request(client: FlaskClient, public_key: rsa.RSAPublicKey) -> None:
    upload = new_upload(client, top="hello")
    headers = upload["upload_headers"]
    verify_v4(upload["upload_url"], method="PUT", headers=headers, public_key=public_key)
    with pytest.raises(InvalidSignature):
        verify_v4(
            upload["upload_url"], method="PUT", headers={**headers, "Content-Type": "image/png"}, public_key=public_key
        )
    with pytest.raises(InvalidSignature):
        verify_v4(upload["upload_url"], method="GET", headers=headers, public_key=public_key)
    with pytest.raises(InvalidSignature):
        bigger = {**headers, "x-goog-content-length-range": "0,999999999999"}
        verify_v4(upload["upload_url"], method="PUT", headers=bigger, public_key=public_key)
    with pytest.raises(AssertionError):
        # A signed header the client would leave out.
        verify_v4(
            upload["upload_url"],
            method="PUT",
            headers={k: v for k, v in headers.items() if k != "x-goog-meta-memegen-top"},
            public_key=public_key,
        )


def test_signed_urls_refuse_expiry_another_object_and_a_changed_signature(
    client: FlaskClient, public_key: rsa.RSAPublicKey
) -> None:
    upload = new_upload(client)
    url, headers = upload["upload_url"], upload["upload_headers"]
    query = parse_qs(urlsplit(url).query)
    signed_at = datetime.strptime(query["X-Goog-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    lifetime = timedelta(seconds=int(query["X-Goog-Expires"][0]))
    assert lifetime <= timedelta(minutes=15)
    verify_v4(url, method="PUT", headers=headers, public_key=public_key, now=signed_at + lifetime)
    with pytest.raises(UrlExpired):
        late = signed_at + lifetime + timedelta(seconds=1)
        verify_v4(url, method="PUT", headers=headers, public_key=public_key, now=late)
    other = url.replace(upload["id"], "f" * 32)
    with pytest.raises(InvalidSignature):
        verify_v4(other, method="PUT", headers=headers, public_key=public_key)
    signature = query["X-Goog-Signature"][0]
    changed = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(InvalidSignature):
        verify_v4(url.replace(signature, changed), method="PUT", headers=headers, public_key=public_key)


def test_the_openapi_document_is_valid_and_every_answer_the_tests_saw_fits_it(client: FlaskClient) -> None:
    response = client.get(OPENAPI_PATH)
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    validate_openapi(document)
    assert set(document["paths"]) == {
        "/v1/uploads",
        "/v1/memes/{id}",
        "/v1/memes/{id}/versions",
        "/m/{id}",
        "/m/{id}/image",
        OPENAPI_PATH,
    }
    # ContractClient checked the answers of every test of this module that ran before this one.
    assert len(ContractClient.checked) > 1


def test_a_share_link_shows_a_finished_meme_or_nothing(client: FlaskClient) -> None:
    pending = new_upload(client)["id"]
    for path in (f"/m/{pending}", f"/m/{pending}/image", f"/m/{uuid.uuid4().hex}", "/m/not-an-id", "/m/"):
        response = client.get(path)
        assert response.status_code == 404 and json_of(response) == {"error": "no such meme"}, path
    assert client.post(f"/m/{pending}").status_code == 405


@dataclass
class Flow:
    """An uploader's part (the api, by its test client) and the worker's (the real handler) on the emulator."""

    client: FlaskClient
    store: Store
    input_bucket: storage.Bucket
    settings: Settings
    engine: Engine

    def upload(self, data: bytes) -> dict[str, Any]:
        """A new upload through the api, its photo PUT to the signed URL: the api's answer."""
        upload = new_upload(self.client)
        put_photo(upload, data)
        return upload

    def event(self, upload_id: str) -> Any:
        """The event Eventarc sends for the upload's object (a photo, or another caption of one)."""
        arrived = self.input_bucket.get_blob(f"{self.settings.upload_prefix}{upload_id}")
        assert arrived is not None
        return finalized_event(object_data(arrived))

    def deliver(self, upload_id: str, *, engine: Engine | None = None, event: Any = None) -> Outcome:
        """That event (or ``event``, kept from before), handled by the worker."""
        event = event or self.event(upload_id)
        return handle_upload(event, store=self.store, engine=engine or self.engine, settings=self.settings)

    def make(self, upload_id: str) -> None:
        outcome = self.deliver(upload_id)
        assert outcome.result is Result.MADE, outcome

    def objects_of(self, upload_id: str) -> list[str]:
        """Every object version of either bucket whose name holds the upload's id."""
        return sorted(
            blob.name
            for bucket in (self.settings.input_bucket, self.settings.output_bucket)
            for blob in self.input_bucket.client.list_blobs(bucket, versions=True)
            if upload_id in blob.name
        )


def bearer(upload: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {upload['delete_token']}"}


@pytest.fixture
def flow(client: FlaskClient, store: Store, input_bucket: storage.Bucket, settings: Settings, engine: Engine) -> Flow:
    return Flow(client, store, input_bucket, settings, engine)


def test_the_uploader_deletes_a_meme_and_nothing_of_the_photo_remains(flow: Flow, photos_dir: Path) -> None:
    client = flow.client
    upload = flow.upload((photos_dir / "obama-240p.jpg").read_bytes())
    upload_id, token = upload["id"], upload["delete_token"]
    assert len(token) >= 40 and token not in json.dumps(json_of(client.get(upload["status_url"])))
    event = flow.event(upload_id)
    flow.make(upload_id)
    assert client.get(f"/m/{upload_id}").status_code == 200
    assert len(flow.objects_of(upload_id)) == 4  # the photo, the meme, two records

    # No Bearer credentials: 401, naming the scheme (RFC 9110). Credentials that are not the meme's: 403.
    for headers in ({}, {"Authorization": token}, {"Authorization": "Bearer "}):
        refused = client.delete(upload["status_url"], headers=headers)
        assert refused.status_code == 401 and "token" in json_of(refused)["error"], headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer "), headers
    for headers in ({"Authorization": "Bearer " + token[::-1]}, {"Authorization": "Bearer not-a-token"}):
        refused = client.delete(upload["status_url"], headers=headers)
        assert refused.status_code == 403 and "token" in json_of(refused)["error"], headers
    assert client.get(upload["status_url"]).status_code == 200
    deleted = client.delete(upload["status_url"], headers=bearer(upload))
    assert deleted.status_code == 204 and deleted.data == b""

    # Nothing of it is left in either bucket, in any object version.
    assert flow.objects_of(upload_id) == []
    for path in (upload["status_url"], f"/m/{upload_id}", f"/m/{upload_id}/image"):
        gone = client.get(path)
        assert gone.status_code == 404 and json_of(gone) == {"error": "no such meme"}, path
    assert client.delete(upload["status_url"], headers=bearer(upload)).status_code == 404
    # A late delivery of the upload's event makes nothing.
    assert flow.deliver(upload_id, event=event).result is Result.SKIPPED
    assert flow.objects_of(upload_id) == []


@pytest.mark.parametrize(
    "pointer",
    [b"not json", b"[1, 2]", b'{"source": "../x", "variant": 1}', b'{"source": "' + b"a" * 32 + b'", "variant": 0}'],
)
def test_an_upload_that_claims_to_be_another_caption_but_is_not_fails_with_a_reason(flow: Flow, pointer: bytes) -> None:
    name = f"{flow.settings.upload_prefix}{uuid.uuid4().hex}"
    flow.input_bucket.blob(name).upload_from_string(pointer, content_type="application/vnd.memegen.version+json")
    outcome = flow.deliver(name.removeprefix(flow.settings.upload_prefix))
    assert (
        outcome.result is Result.FAILED
        and outcome.reason == "this upload is neither a photo nor another caption of one"
    )


def test_a_meme_deleted_while_it_was_being_made_is_removed(flow: Flow, photos_dir: Path) -> None:
    upload = flow.upload((photos_dir / "obama-240p.jpg").read_bytes())

    class DeletedMidway:
        """The engine makes the meme while its uploader deletes it."""

        def make(self, data: bytes, **options: Any) -> Any:
            meme = flow.engine.make(data, **options)
            assert flow.client.delete(upload["status_url"], headers=bearer(upload)).status_code == 204
            return meme

    outcome = flow.deliver(upload["id"], engine=cast(Engine, DeletedMidway()))
    assert outcome.result is Result.SKIPPED and "deleted" in outcome.reason
    assert flow.objects_of(upload["id"]) == []


def test_another_caption_is_a_new_meme_with_its_own_link_and_a_different_caption(flow: Flow, photos_dir: Path) -> None:
    client = flow.client
    upload = flow.upload((photos_dir / "obama-240p.jpg").read_bytes())
    flow.make(upload["id"])
    first = json_of(client.get(upload["status_url"]))["caption"]

    path = f"{upload['status_url']}/versions"
    assert client.post(path).status_code == 401  # only the uploader asks, with the token
    assert client.post(path, headers={"Authorization": "Bearer nope"}).status_code == 403
    captions, versions = [first], []
    for _ in range(3):
        response = client.post(path, headers=bearer(upload))
        assert response.status_code == 201, response.data
        version = json_of(response)
        assert set(version) == {"id", "status_url", "delete_token"} and version["id"] != upload["id"]
        assert json_of(client.get(version["status_url"]))["status"] == "pending"
        flow.make(version["id"])
        done = json_of(client.get(version["status_url"]))
        assert done["status"] == "done" and client.get(f"/m/{version['id']}").status_code == 200
        captions.append(done["caption"])
        versions.append(version)
    assert len({(c["top"], c["bottom"]) for c in captions}) == 4, captions  # four different captions
    # Your own words, asked with a version's own token: the photo is the same.
    answer = client.post(
        f"{versions[0]['status_url']}/versions", json={"top": "my own words"}, headers=bearer(versions[0])
    )
    assert answer.status_code == 201, answer.data
    own = json_of(answer)
    flow.make(own["id"])
    assert json_of(client.get(own["status_url"]))["caption"] == {"top": "my own words", "bottom": ""}
    assert client.post(path, json={"content_type": "image/png"}, headers=bearer(upload)).status_code == 400

    # Deleting the photo deletes every meme made of it.
    assert client.delete(upload["status_url"], headers=bearer(upload)).status_code == 204
    for made in [upload, *versions, own]:
        assert client.get(made["status_url"]).status_code == 404
        assert flow.objects_of(made["id"]) == []


def _push_envelope(blob: storage.Blob, event_type: str = "OBJECT_FINALIZE") -> dict[str, Any]:
    """The Pub/Sub push body Cloud Storage's JSON_API_V1 notification sends for an object event."""
    resource = {
        "kind": "storage#object",
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
    }
    return {
        "message": {
            "attributes": {
                "eventType": event_type,
                "payloadFormat": "JSON_API_V1",
                "bucketId": blob.bucket.name,
                "objectId": blob.name,
                "objectGeneration": str(blob.generation),
            },
            "data": base64.b64encode(json.dumps(resource).encode()).decode(),
            "messageId": uuid.uuid4().hex,
        },
        "subscription": "projects/p/subscriptions/memes-consumer",
    }


def test_every_record_fits_the_published_schema_and_the_example_consumer_reads_it(flow: Flow, photos_dir: Path) -> None:
    schema = json.loads((ROOT / "docs" / "record.schema.json").read_text())
    stale = "docs/record.schema.json is stale: python -m memegen.cloud.records > docs/record.schema.json"
    assert schema == record_schema(), stale
    done = flow.upload((photos_dir / "two_people.jpg").read_bytes())
    flow.make(done["id"])
    version = json_of(flow.client.post(f"{done['status_url']}/versions", headers=bearer(done)))
    flow.make(version["id"])
    failed = flow.upload(b"not a photo at all")
    assert flow.deliver(failed["id"]).result is Result.FAILED

    records = list(flow.input_bucket.client.list_blobs(flow.settings.output_bucket, prefix="records/"))
    validator = Draft202012Validator(schema)
    seen = set()
    for blob in records:
        event = consumer.read_event(_push_envelope(blob), flow.input_bucket.client)
        if "/versions/" in blob.name:
            assert event is None  # the photo's other captions, the api's bookkeeping: not a record
            continue
        assert event is not None and event.record is not None, blob.name
        validator.validate(event.record)
        seen.add(event.record["status"])
    assert seen == {"pending", "done", "failed"}
    # A deleted meme: its records' deletion events say it is gone.
    for event_type in ("OBJECT_ARCHIVE", "OBJECT_DELETE"):
        gone = consumer.read_event(_push_envelope(records[0], event_type), flow.input_bucket.client)
        assert gone is not None and gone.gone and gone.id == records[0].name.split("/")[1]
    assert consumer.read_event(_push_envelope(records[0], "OBJECT_METADATA_UPDATE"), flow.input_bucket.client) is None


def test_a_share_link_outlives_every_signed_url_it_hands_out(
    app: flask.Flask, empty_buckets: storage.Client, settings: Settings, signer: Credentials
) -> None:
    """The link is /m/{id}, not a signed URL: pasted after its URLs expired, it still shows the meme."""
    short = dataclasses.replace(settings, url_ttl_seconds=1)
    store = Store(empty_buckets, short, signing_credentials=signer)
    upload = store.new_upload(content_type="image/jpeg")
    written = Upload(
        name=f"{settings.upload_prefix}{upload.id}",
        generation=5,
        size=9,
        content_type="image/jpeg",
        id=upload.id,
        top=None,
        bottom=None,
    )
    store.write_meme(
        written, image=b"the meme", content_type="image/jpeg", metadata={"caption": {"top": "a", "bottom": ""}}
    )

    def follow() -> requests.Response:
        with app.test_request_context(f"/m/{upload.id}/image"):
            redirect = api.handle(flask.request, store=store, settings=short)
        assert redirect.status_code == 302
        return requests.get(redirect.headers["Location"], timeout=10)

    first = follow()
    assert first.content == b"the meme"
    time.sleep(2.1)
    assert requests.get(first.url, timeout=10).status_code == 400  # the URL it handed out has expired
    assert follow().content == b"the meme"  # the link has not


def test_a_photo_has_at_most_max_versions_other_captions(
    app: flask.Flask, empty_buckets: storage.Client, settings: Settings, signer: Credentials
) -> None:
    capped = dataclasses.replace(settings, max_versions=2)
    store = Store(empty_buckets, capped, signing_credentials=signer)
    upload = store.new_upload(content_type="image/jpeg")
    for _ in range(2):
        store.new_version(upload.id, token=upload.delete_token)
    with app.test_request_context(
        f"/v1/memes/{upload.id}/versions", method="POST", headers={"Authorization": f"Bearer {upload.delete_token}"}
    ):
        refused = api.handle(flask.request, store=store, settings=capped)
    assert refused.status_code == 409 and "2 other captions" in refused.get_json()["error"]
    check_against_openapi(openapi_document(capped), "POST", f"/v1/memes/{upload.id}/versions", refused)
