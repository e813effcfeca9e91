"""The storage module against the real storage server (gcp-storage-emulator through the real client)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.api_core.exceptions import PreconditionFailed
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from local.bridge import object_data
from local.devkey import DEV_EMAIL
from local.stack import free_port
from memegen.cloud.storage import Store
from memegen.cloud.uploads import Upload, upload_id
from memegen.contract import MEME_PREFIX
from memegen.errors import ImageTooLarge, SigningUnavailable, UploadGone
from memegen.settings import Settings


@pytest.fixture
def store(empty_buckets: storage.Client, settings: Settings, signer: service_account.Credentials) -> Store:
    return Store(empty_buckets, settings, signing_credentials=signer)


def put_upload(client: storage.Client, settings: Settings, name: str, data: bytes, **metadata: str) -> storage.Blob:
    blob = client.bucket(settings.input_bucket).blob(name)
    blob.metadata = metadata or None
    blob.upload_from_string(data, content_type="image/jpeg")
    return blob


def an_upload(generation: int = 7) -> Upload:
    name = f"uploads/{uuid.uuid4().hex}"
    return Upload(
        name=name,
        generation=generation,
        size=3,
        content_type="image/jpeg",
        id=upload_id(name, prefix="uploads/"),
        top=None,
        bottom=None,
    )


def output_json(client: storage.Client, settings: Settings, name: str) -> Any:
    return json.loads(client.bucket(settings.output_bucket).blob(name).download_as_bytes())


def test_upload_ids_never_carry_a_user_chosen_name() -> None:
    server_id = uuid.uuid4().hex
    assert upload_id(f"uploads/{server_id}", prefix="uploads/") == server_id
    for name in ("uploads/My Holiday.jpg", "uploads/../../etc/passwd", f"uploads/{server_id.upper()}", "uploads/x/"):
        chosen = upload_id(name, prefix="uploads/")
        assert re.fullmatch(r"[0-9a-f]{32}", chosen) and chosen == upload_id(name, prefix="uploads/")
    assert upload_id("uploads/a.jpg", prefix="uploads/") != upload_id("uploads/b.jpg", prefix="uploads/")
    # Deeper down, a hex name is a user's name like any other: it must not share the API upload's records.
    assert upload_id(f"uploads/a/{server_id}", prefix="uploads/") != server_id
    assert upload_id(f"elsewhere/{server_id}", prefix="uploads/") != server_id


def test_read_upload_at_its_generation(empty_buckets: storage.Client, settings: Settings, store: Store) -> None:
    caption = {"memegen-top": "%C3%A9t%C3%A9%20100%25"}  # "été 100%", as the signed upload sends it
    blob = put_upload(empty_buckets, settings, "uploads/cat.jpg", b"\xff\xd8 pixels", **caption)
    upload, data = store.read_upload("uploads/cat.jpg", blob.generation)
    assert data == b"\xff\xd8 pixels"
    assert upload == Upload(
        name="uploads/cat.jpg",
        generation=blob.generation,
        size=len(data),
        content_type="image/jpeg",
        id=upload_id("uploads/cat.jpg", prefix="uploads/"),
        top="été 100%",
        bottom=None,
    )


def test_the_stored_upload_reads_as_its_event_does(
    empty_buckets: storage.Client, settings: Settings, store: Store
) -> None:
    """The worker reads an upload from its event, then from the object: one reading, the same Upload."""
    caption = {"memegen-top": "%C3%A9t%C3%A9", "memegen-bottom": "100%25"}
    blob = put_upload(empty_buckets, settings, "uploads/a folder/cat.jpg", b"\xff\xd8 pixels", **caption)
    upload, _ = store.read_upload(blob.name, blob.generation)
    assert upload == Upload.from_resource(object_data(blob), prefix=settings.upload_prefix)
    assert (upload.top, upload.bottom, upload.size, upload.content_type) == ("été", "100%", 9, "image/jpeg")


def test_a_replaced_or_deleted_upload_is_gone(empty_buckets: storage.Client, settings: Settings, store: Store) -> None:
    first = put_upload(empty_buckets, settings, "uploads/cat.jpg", b"first")
    second = put_upload(empty_buckets, settings, "uploads/cat.jpg", b"second")
    with pytest.raises(UploadGone):
        store.read_upload("uploads/cat.jpg", first.generation)
    assert store.read_upload("uploads/cat.jpg", second.generation)[1] == b"second"
    second.delete()
    with pytest.raises(UploadGone):
        store.read_upload("uploads/cat.jpg", second.generation)


def test_an_oversize_upload_is_refused_without_downloading(
    empty_buckets: storage.Client,
    settings: Settings,
) -> None:
    blob = put_upload(empty_buckets, settings, "uploads/big.jpg", b"x" * 2000)
    requested: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: requested.append(response.request.url))
    watched = storage.Client(project="test", credentials=AnonymousCredentials(), _http=session)
    small = Store(watched, dataclasses.replace(settings, max_bytes=1000))
    with pytest.raises(ImageTooLarge, match="2000 bytes"):
        small.read_upload("uploads/big.jpg", blob.generation)
    assert requested and not [url for url in requested if "alt=media" in url]
    # The same store downloads one under the limit: the watch does see downloads.
    blob = put_upload(empty_buckets, settings, "uploads/small.jpg", b"x" * 1000)
    assert small.read_upload("uploads/small.jpg", blob.generation)[1] == b"x" * 1000
    assert [url for url in requested if "alt=media" in url]


def test_a_meme_and_its_record_are_written_once(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
) -> None:
    upload = an_upload()
    assert not store.result_exists(upload)
    assert store.write_meme(upload, image=b"meme", content_type="image/png", metadata={"faces": [], "size": [2, 1]})
    meme = f"memes/{upload.id}/7.png"
    assert output_json(empty_buckets, settings, f"records/{upload.id}/7.json") == {
        "status": "done",
        "id": upload.id,
        "meme": meme,
        "faces": [],
        "size": [2, 1],
    }
    assert store.result_exists(upload)
    blob = empty_buckets.bucket(settings.output_bucket).get_blob(meme)
    assert blob is not None and blob.content_type == "image/png"

    assert not store.write_meme(upload, image=b"other", content_type="image/png", metadata={"faces": ["x"]})
    assert blob.download_as_bytes() == b"meme"
    assert output_json(empty_buckets, settings, f"records/{upload.id}/7.json")["faces"] == []


def test_a_meme_left_without_its_record_gets_one(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
) -> None:
    upload = an_upload()
    output = empty_buckets.bucket(settings.output_bucket)
    output.blob(f"memes/{upload.id}/7.jpg").upload_from_string(b"earlier", content_type="image/jpeg")
    assert store.write_meme(upload, image=b"again", content_type="image/jpeg", metadata={})
    assert output.blob(f"memes/{upload.id}/7.jpg").download_as_bytes() == b"earlier"
    assert output_json(empty_buckets, settings, f"records/{upload.id}/7.json")["status"] == "done"


def test_the_storage_server_honours_preconditions(empty_buckets: storage.Client, settings: Settings) -> None:
    blob = empty_buckets.bucket(settings.output_bucket).blob("records/x/1.json")
    blob.upload_from_string(b"one", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        blob.upload_from_string(b"two", if_generation_match=0)
    assert blob.download_as_bytes() == b"one"


def test_a_failure_is_recorded_once(empty_buckets: storage.Client, settings: Settings, store: Store) -> None:
    upload = an_upload()
    assert store.write_failure(upload, reason="not an image")
    assert not store.write_failure(upload, reason="something else")
    assert store.result_exists(upload)
    assert output_json(empty_buckets, settings, f"records/{upload.id}/7.json") == {
        "status": "failed",
        "id": upload.id,
        "error": "not an image",
    }
    # A record stands for its upload generation: the meme of a duplicate event is not written.
    assert not store.write_meme(upload, image=b"meme", content_type="image/jpeg", metadata={})


def test_latest_record_is_the_highest_generation(store: Store) -> None:
    upload = an_upload()
    assert store.latest_record(upload.id) is None
    # Numerically highest, not the last name in listing order ("5" > "100" as text).
    for generation in (100, 5, 12):
        store.write_failure(dataclasses.replace(upload, generation=generation), reason=str(generation))
    store.write_failure(an_upload(generation=1000), reason="another upload")
    assert store.latest_record(upload.id) == {"status": "failed", "id": upload.id, "error": "100"}
    assert store.latest_record("../" + upload.id[3:]) is None
    assert store.latest_record("") is None


def signed_query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_a_signed_upload_url_creates_the_object(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
) -> None:
    signed = store.new_upload(content_type="image/jpeg", top="Ça va 100%", bottom="🙂")
    assert re.fullmatch(r"[0-9a-f]{32}", signed.id)
    issued = store.latest_record(signed.id)
    assert issued is not None and issued["status"] == "pending" and issued["expires"] > time.time()
    assert signed.url.startswith(f"{empty_buckets.api_endpoint}/{settings.input_bucket}/uploads/{signed.id}?")
    photo = b"\xff\xd8 a photo"
    response = requests.put(signed.url, data=photo, headers=signed.headers, timeout=10)
    assert response.status_code == 200, response.text
    blob = empty_buckets.bucket(settings.input_bucket).get_blob(f"{settings.upload_prefix}{signed.id}")
    assert blob is not None and blob.content_type == "image/jpeg" and blob.size == len(photo)
    upload, data = store.read_upload(blob.name, blob.generation)
    assert (upload.id, upload.top, upload.bottom, data) == (signed.id, "Ça va 100%", "🙂", photo)


def test_signed_upload_urls_are_short_lived_and_sign_the_limits(settings: Settings, store: Store) -> None:
    signed = store.new_upload(content_type="image/png", top="top")
    query = signed_query(signed.url)
    assert int(query["X-Goog-Expires"]) == settings.url_ttl_seconds <= 900
    assert query["X-Goog-Credential"].startswith(f"{DEV_EMAIL}/")
    assert set(query["X-Goog-SignedHeaders"].split(";")) == {
        "content-type",
        "host",
        "x-goog-content-length-range",
        "x-goog-if-generation-match",
        "x-goog-meta-memegen-top",
    }
    assert signed.headers["x-goog-content-length-range"] == f"1,{settings.max_bytes}"
    assert signed.headers["x-goog-if-generation-match"] == "0"
    assert signed.headers["Content-Type"] == "image/png"


def test_a_signed_upload_must_carry_its_headers_and_size(
    empty_buckets: storage.Client,
    settings: Settings,
    signer: service_account.Credentials,
) -> None:
    small = Store(empty_buckets, dataclasses.replace(settings, max_bytes=100), signing_credentials=signer)
    signed = small.new_upload(content_type="image/jpeg")
    too_big = requests.put(signed.url, data=b"x" * 101, headers=signed.headers, timeout=10)
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    empty = requests.put(signed.url, data=b"", headers=signed.headers, timeout=10)
    assert empty.status_code == 400 and "EntityTooSmall" in empty.text
    unsigned = {key: value for key, value in signed.headers.items() if key != "x-goog-content-length-range"}
    assert requests.put(signed.url, data=b"x", headers=unsigned, timeout=10).status_code == 403
    assert not list(empty_buckets.list_blobs(settings.input_bucket))


def test_a_signed_meme_url_serves_the_meme(store: Store) -> None:
    upload = an_upload()
    store.write_meme(upload, image=b"the meme", content_type="image/webp", metadata={})
    url = store.signed_meme_url(f"{MEME_PREFIX}{upload.id}/7.webp")
    assert int(signed_query(url)["X-Goog-Expires"]) <= 900
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"the meme"
    with pytest.raises(ValueError, match="not a meme"):
        store.signed_meme_url(f"records/{upload.id}/7.json")


def test_signing_needs_a_key_or_a_service_account(storage_client: storage.Client, settings: Settings) -> None:
    with pytest.raises(SigningUnavailable):
        Store(storage_client, settings).new_upload(content_type="image/jpeg")


@pytest.fixture
def raw_emulator() -> Iterator[storage.Client]:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        )
    finally:
        server.stop()


def test_the_plain_emulator_still_lacks_what_local_emulator_adds(raw_emulator: storage.Client) -> None:
    """When this fails, gcp-storage-emulator learnt a behaviour: drop that patch from local/emulator.py."""
    bucket = raw_emulator.create_bucket("raw")
    blob = bucket.blob("a")
    blob.upload_from_string(b"one", if_generation_match=0)
    first = blob.generation
    blob.upload_from_string(b"two", if_generation_match=0)  # no PreconditionFailed: overwritten
    assert bucket.blob("a", generation=first).download_as_bytes() == b"two"  # generation ignored
    url = f"{raw_emulator.api_endpoint}/raw/b"
    assert requests.put(url, data=b"x", headers={"x-goog-meta-k": "v"}, timeout=10).status_code == 200
    assert bucket.get_blob("b").metadata is None  # x-goog-meta-* dropped
    assert requests.options(url, timeout=10).status_code == 501  # no CORS preflight


def test_a_retried_write_is_its_own_not_a_duplicate(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
) -> None:
    """The client retries a write whose response was lost: the retry meets its own object (412)."""
    name = f"records/{uuid.uuid4().hex}/1.json"
    assert store._create(name, b"{}", content_type="application/json", token="first-attempt")
    # The same write again (same token), as the client's retry sends it: still ours.
    assert store._create(name, b"{}", content_type="application/json", token="first-attempt")
    # Another delivery's write (another token): a duplicate.
    assert not store._create(name, b"{}", content_type="application/json", token="another-delivery")
    assert not store._create(name, b"{}", content_type="application/json")
    blob = empty_buckets.bucket(settings.output_bucket).get_blob(name)
    assert blob is not None and blob.metadata == {"memegen-writer": "first-attempt"}


# The storage server's own checks of signed URLs (the product's, locally), besides the test's verifier.


def test_the_storage_server_refuses_a_tampered_upload_url(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
) -> None:
    signed = store.new_upload(content_type="image/jpeg", top="hello")
    url, headers = signed.url, signed.headers
    signature = parse_qs(urlsplit(url).query)["X-Goog-Signature"][0]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    attempts = {
        "another signature": (url.replace(signature, flipped), headers),
        "another object": (url.replace(signed.id, "f" * 32), headers),
        "a bigger size range": (url, {**headers, "x-goog-content-length-range": "1,999999999999"}),
        "another caption": (url, {**headers, "x-goog-meta-memegen-top": "rude"}),
        "no signature": (url.split("?", 1)[0], headers),
    }
    for what, (target, sent) in attempts.items():
        response = requests.put(target, data=b"\xff\xd8 a photo", headers=sent, timeout=10)
        assert response.status_code == 403, (what, response.text)
        assert "SignatureDoesNotMatch" in response.text or "AccessDenied" in response.text, what
    assert not list(empty_buckets.list_blobs(settings.input_bucket))
    assert requests.put(url, data=b"\xff\xd8 a photo", headers=headers, timeout=10).status_code == 200


def test_the_storage_server_refuses_an_expired_or_changed_meme_url(
    empty_buckets: storage.Client,
    settings: Settings,
    signer: service_account.Credentials,
) -> None:
    store = Store(empty_buckets, settings, signing_credentials=signer)
    upload = an_upload()
    store.write_meme(upload, image=b"the meme", content_type="image/jpeg", metadata={})
    url = store.signed_meme_url(f"{MEME_PREFIX}{upload.id}/7.jpg")
    assert requests.get(url, timeout=10).content == b"the meme"
    assert requests.get(url.replace("/7.jpg", "/8.jpg"), timeout=10).status_code == 403
    assert requests.get(url.split("?", 1)[0], timeout=10).status_code == 403  # the bucket is private
    # A URL living one second is tried only once it is surely dead: on a loaded CI machine even
    # the first GET of it can come a second late, so its working life is proven by `url` above.
    short = Store(empty_buckets, dataclasses.replace(settings, url_ttl_seconds=1), signing_credentials=signer)
    short_url = short.signed_meme_url(f"{MEME_PREFIX}{upload.id}/7.jpg")
    time.sleep(2.1)
    expired = requests.get(short_url, timeout=10)
    assert expired.status_code == 400 and "ExpiredToken" in expired.text
