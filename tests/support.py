"""What the tests share besides their fixtures (``conftest.py``'s): the checkout's folders, the data beside it,
the command line, and the api's requests as a browser makes them, checked against the api's OpenAPI
document, with an independent V4 verifier of the URLs it signs.

The product's own local stack (``local/``: the storage server, the event bridge, the development key)
is the real part the tests run against, not a helper: they import it from there.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask.testing import FlaskClient
from google.cloud import storage
from jsonschema import Draft202012Validator
from PIL import Image

from local.bridge import finalized_event, object_data
from local.devkey import DEV_EMAIL
from memegen.cloud.storage import Store
from memegen.cloud.worker import Outcome, Result, handle_upload
from memegen.contract import OPENAPI_PATH
from memegen.meme.engine import Engine
from memegen.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
GOLDEN_DIR = ROOT / "tests" / "golden"
# The api function's source, as functions-framework serves it.
API_SOURCE = ROOT / "functions" / "api" / "main.py"


def data_dir(variable: str, what: str) -> Path:
    """The folder ``variable`` names; the test is skipped, saying how to set it, where it is missing."""
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{what} not available: set {variable} to the folder (CI sets it to ../shared)")
    return Path(value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m memegen ARGS`` from the checkout, as a user runs it: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "memegen", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


# The api's requests, as the page makes them.


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
