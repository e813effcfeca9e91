"""The upload page and a meme's share page: content, security headers, Content-Security-Policy, caching.

A share link outlives the signed URLs it hands out.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import time
import uuid
from urllib.parse import urlsplit

import flask
import requests
from flask.testing import FlaskClient
from google.auth.credentials import Credentials
from google.cloud import storage

from memegen.cloud import api
from memegen.cloud.storage import Store
from memegen.cloud.uploads import Upload
from memegen.settings import Settings
from tests.support import (
    json_of,
    new_upload,
)


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


def test_a_share_link_shows_a_finished_meme_or_nothing(client: FlaskClient) -> None:
    pending = new_upload(client)["id"]
    for path in (f"/m/{pending}", f"/m/{pending}/image", f"/m/{uuid.uuid4().hex}", "/m/not-an-id", "/m/"):
        response = client.get(path)
        assert response.status_code == 404 and json_of(response) == {"error": "no such meme"}, path
    assert client.post(f"/m/{pending}").status_code == 405


def test_a_share_link_outlives_every_signed_url_it_hands_out(
    app: flask.Flask, empty_buckets: storage.Client, settings: Settings, signer: Credentials
) -> None:
    """The link is /m/{id}, not a signed URL: pasted after its URLs expired, it still shows the meme."""
    # Three seconds, not one: a URL signed then fetched must not expire in between on a busy machine (with
    # one, a run beside a training failed so); the test then waits them out.
    short = dataclasses.replace(settings, url_ttl_seconds=3)
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
    time.sleep(short.url_ttl_seconds + 1.1)
    assert requests.get(first.url, timeout=10).status_code == 400  # the URL it handed out has expired
    assert follow().content == b"the meme"  # the link has not
