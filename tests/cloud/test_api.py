"""The ``api`` function's JSON answers, in process against the real storage server.

Statuses, refusals (always JSON, always the right status, never an upload URL), routes, storage
trouble, logging, and the OpenAPI document that every answer the tests saw fits.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

import flask
import pytest
from flask.testing import FlaskClient
from google.api_core.exceptions import ServiceUnavailable
from google.auth.credentials import Credentials
from google.cloud import storage
from openapi_spec_validator import validate as validate_openapi

from memegen.cloud import api
from memegen.cloud.openapi import openapi_document
from memegen.cloud.storage import Store
from memegen.contract import OPENAPI_PATH
from memegen.settings import Settings
from tests.support import (
    ContractClient,
    check_against_openapi,
    json_of,
    new_upload,
)


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
