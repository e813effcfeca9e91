"""Whole flows through the ``api`` function (in process) and the worker, against the real storage server.

An upload becomes a meme or a failure, is deleted, gets another caption; every record fits the
published schema, and the example consumer reads it.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from google.cloud import storage
from jsonschema import Draft202012Validator

from local.bridge import finalized_event, object_data
from memegen.cloud.records import record_schema
from memegen.cloud.storage import Store
from memegen.cloud.worker import Result, handle_upload
from memegen.meme.engine import Engine
from memegen.settings import Settings
from tests.support import (
    ROOT,
    Flow,
    a_jpeg,
    bearer,
    json_of,
    new_upload,
    put_photo,
    verify_v4,
)


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
