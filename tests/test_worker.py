"""``handle_upload`` with real CloudEvents, the real storage server, real photos and the real models."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.http import CloudEvent
from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from memegen.captions import CaptionBank
from memegen.detect import FaceDetector
from memegen.engine import Engine
from memegen.ensemble import Ensemble
from memegen.settings import Settings
from memegen.storage import Store, upload_id
from memegen.worker import FINALIZED, Result, handle_upload
from tests.storage_server import free_port


@pytest.fixture(scope="module")
def engine(detector: FaceDetector, ensemble: Ensemble, settings: Settings) -> Engine:
    return Engine(detector=detector, ensemble=ensemble, captions=CaptionBank.load(), settings=settings)


@pytest.fixture
def store(empty_buckets: storage.Client, settings: Settings) -> Store:
    return Store(empty_buckets, settings)


def upload(client: storage.Client, bucket: str, name: str, data: bytes, **metadata: str) -> storage.Blob:
    blob = client.bucket(bucket).blob(name)
    blob.metadata = metadata or None
    blob.upload_from_string(data, content_type="image/jpeg")
    return blob


def finalized(blob: storage.Blob, **changes: Any) -> CloudEvent:
    """The event Eventarc sends for a new object: its StorageObjectData, int64 fields as strings."""
    data = {
        "kind": "storage#object",
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "metageneration": str(blob.metageneration),
        "size": str(blob.size),
        "contentType": blob.content_type,
        "timeCreated": blob.time_created.isoformat(),
        "updated": blob.updated.isoformat(),
        "metadata": blob.metadata,
        **changes,
    }
    attributes = {
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
        "id": uuid.uuid4().hex,
        "time": blob.time_created.isoformat(),
    }
    return CloudEvent(attributes, data)


def record_of(store: Store, name: str) -> dict[str, Any] | None:
    """The latest record of the upload under ``name`` (in the input bucket's ``uploads/``)."""
    return store.latest_record(upload_id(name, prefix="uploads/"))


def output_names(client: storage.Client, settings: Settings) -> list[str]:
    return sorted(blob.name for blob in client.list_blobs(settings.output_bucket))


def test_a_photo_becomes_one_meme_and_its_record(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    photos_dir: Path,
) -> None:
    name = f"{settings.upload_prefix}{uuid.uuid4().hex}"
    blob = upload(
        empty_buckets,
        settings.input_bucket,
        name,
        (photos_dir / "obama-480p.jpg").read_bytes(),
        **{"memegen-top": "hello%21"},
    )
    event = finalized(blob)
    outcome = handle_upload(event, store=store, engine=engine, settings=settings)
    assert outcome.result is Result.MADE and outcome.upload_id == upload_id(name, prefix="uploads/")
    meme, record = (
        f"memes/{outcome.upload_id}/{blob.generation}.jpg",
        f"records/{outcome.upload_id}/{blob.generation}.json",
    )
    assert output_names(empty_buckets, settings) == [meme, record]
    saved = record_of(store, name)
    assert saved is not None and saved["status"] == "done" and saved["meme"] == meme
    assert len(saved["faces"]) == 1 and saved["caption"]["top"] == "hello!"
    assert empty_buckets.bucket(settings.output_bucket).blob(meme).download_as_bytes()[:2] == b"\xff\xd8"

    # Eventarc delivers at least once: the same event again, and a replay an hour later.
    again = handle_upload(event, store=store, engine=engine, settings=settings)
    later = handle_upload(
        event, store=store, engine=engine, settings=settings, now=blob.time_created + timedelta(hours=1)
    )
    assert again.result is later.result is Result.DUPLICATE
    assert output_names(empty_buckets, settings) == [meme, record]


def test_a_file_that_is_not_an_image_is_recorded_as_failed(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
) -> None:
    blob = upload(empty_buckets, settings.input_bucket, "uploads/holiday.jpg", b"just some text, honestly\n" * 10)
    outcome = handle_upload(finalized(blob), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.FAILED and outcome.reason
    record = record_of(store, "uploads/holiday.jpg")
    assert record == {
        "status": "failed",
        "id": upload_id("uploads/holiday.jpg", prefix="uploads/"),
        "error": outcome.reason,
    }
    assert output_names(empty_buckets, settings) == [f"records/{outcome.upload_id}/{blob.generation}.json"]
    assert handle_upload(finalized(blob), store=store, engine=engine, settings=settings).result is Result.DUPLICATE


def test_an_upload_over_the_size_limit_is_recorded_as_failed(
    empty_buckets: storage.Client,
    settings: Settings,
    engine: Engine,
) -> None:
    small = dataclasses.replace(settings, max_bytes=100)
    blob = upload(empty_buckets, settings.input_bucket, "uploads/big.jpg", b"x" * 101)
    outcome = handle_upload(finalized(blob), store=Store(empty_buckets, small), engine=engine, settings=small)
    assert outcome.result is Result.FAILED and "101 bytes" in outcome.reason
    assert output_names(empty_buckets, settings) == [f"records/{outcome.upload_id}/{blob.generation}.json"]


def test_a_too_old_event_is_dropped(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    photos_dir: Path,
) -> None:
    blob = upload(empty_buckets, settings.input_bucket, "uploads/old.jpg", (photos_dir / "obama-240p.jpg").read_bytes())
    late = blob.time_created + timedelta(seconds=settings.max_event_age_seconds + 1)
    outcome = handle_upload(finalized(blob), store=store, engine=engine, settings=settings, now=late)
    assert outcome.result is Result.TOO_OLD
    assert output_names(empty_buckets, settings) == []


def test_unsigned_caption_metadata_meets_the_same_limits(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    photos_dir: Path,
) -> None:
    """Object metadata set by hand, past the signed URL's checks, is checked again before rendering."""
    photo = (photos_dir / "obama-240p.jpg").read_bytes()
    for name, top in (("uploads/long.jpg", "A" * 3000), ("uploads/lines.jpg", "one%0Atwo%07")):
        blob = upload(empty_buckets, settings.input_bucket, name, photo, **{"memegen-top": top})
        outcome = handle_upload(finalized(blob), store=store, engine=engine, settings=settings)
        assert outcome.result is Result.FAILED, outcome
        assert "top" in outcome.reason and ("limit" in outcome.reason or "control" in outcome.reason)
        record = record_of(store, name)
        assert record is not None and record["status"] == "failed"


def test_an_empty_upload_is_recorded_as_failed(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
) -> None:
    """An upload of 0 bytes ends failed, as every upload ends done or failed, never pending."""
    blob = upload(empty_buckets, settings.input_bucket, "uploads/empty.jpg", b"")
    outcome = handle_upload(finalized(blob), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.FAILED and "empty" in outcome.reason
    record = record_of(store, "uploads/empty.jpg")
    assert record == {
        "status": "failed",
        "id": upload_id("uploads/empty.jpg", prefix="uploads/"),
        "error": outcome.reason,
    }
    assert handle_upload(finalized(blob), store=store, engine=engine, settings=settings).result is Result.DUPLICATE


@pytest.mark.parametrize(
    ("bucket", "name", "data", "changes"),
    [
        ("output", "uploads/a.jpg", b"x", {}),  # never our own output
        ("elsewhere", "uploads/a.jpg", b"x", {}),
        ("input", "photos/a.jpg", b"x", {}),
        ("input", "uploads/folder/", b"", {}),
        ("input", "uploads/a.jpg", b"x", {"generation": None}),
    ],
    ids=["output-bucket", "another-bucket", "outside-prefix", "folder-marker", "malformed"],
)
def test_events_that_are_not_uploads_are_skipped(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    bucket: str,
    name: str,
    data: bytes,
    changes: dict[str, Any],
) -> None:
    real = {"input": settings.input_bucket, "output": settings.output_bucket}
    if bucket in real:
        blob = upload(empty_buckets, real[bucket], name, data)
    else:
        # A bucket the emulator does not have: the event alone, as if from another project.
        blob = upload(empty_buckets, settings.input_bucket, name, data)
        changes = {**changes, "bucket": bucket}
    outcome = handle_upload(finalized(blob, **changes), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.SKIPPED, outcome
    assert [n for n in output_names(empty_buckets, settings) if n != name] == []


def test_an_event_of_another_type_is_skipped(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
) -> None:
    blob = upload(empty_buckets, settings.input_bucket, "uploads/a.jpg", b"x")
    event = finalized(blob)
    event["type"] = "google.cloud.storage.object.v1.deleted"
    assert handle_upload(event, store=store, engine=engine, settings=settings).result is Result.SKIPPED
    assert output_names(empty_buckets, settings) == []


def test_an_event_of_a_replaced_generation_is_skipped(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
) -> None:
    first = upload(empty_buckets, settings.input_bucket, "uploads/a.jpg", b"first")
    upload(empty_buckets, settings.input_bucket, "uploads/a.jpg", b"second")
    outcome = handle_upload(finalized(first), store=store, engine=engine, settings=settings)
    assert outcome.result is Result.SKIPPED and "no longer exists" in outcome.reason
    assert output_names(empty_buckets, settings) == []


def test_an_unreachable_storage_server_raises_for_a_retry(
    empty_buckets: storage.Client,
    settings: Settings,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blob = upload(empty_buckets, settings.input_bucket, "uploads/a.jpg", b"x")
    dead = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
    )
    store = Store(dead, settings, retry=DEFAULT_RETRY.with_timeout(1.0))
    started = datetime.now()
    with pytest.raises((GoogleAPIError, requests.ConnectionError)):
        handle_upload(finalized(blob), store=store, engine=engine, settings=settings)
    assert datetime.now() - started < timedelta(seconds=10)
    assert '"severity": "ERROR"' in capsys.readouterr().out


class _FaultyEngine(Engine):
    """The real engine, with one fault put in: ``make`` raises ``error``."""

    error: Exception = ZeroDivisionError("a bug")

    def make(self, data: bytes, **options: Any) -> Any:
        raise self.error


def _faulty(engine: Engine, error: Exception) -> Engine:
    faulty = _FaultyEngine(
        detector=engine.detector, ensemble=engine.ensemble, captions=engine.captions, settings=engine.settings
    )
    faulty.error = error
    return faulty


def test_a_bug_is_recorded_as_an_internal_error_and_acknowledged(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    photos_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A poison event is not redelivered for a day: logged with its traceback, recorded, acknowledged."""
    blob = upload(
        empty_buckets, settings.input_bucket, "uploads/poison.jpg", (photos_dir / "obama-240p.jpg").read_bytes()
    )
    outcome = handle_upload(
        finalized(blob), store=store, engine=_faulty(engine, ZeroDivisionError("boom")), settings=settings
    )
    assert outcome.result is Result.FAILED and outcome.reason == "internal error"
    record = record_of(store, "uploads/poison.jpg")
    assert record is not None and record["status"] == "failed" and record["error"] == "internal error"
    line = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if "internal error" in line)
    assert line["severity"] == "ERROR" and "ZeroDivisionError: boom" in line["traceback"]


def test_a_transient_error_is_retried_within_the_window_then_recorded(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    engine: Engine,
    photos_dir: Path,
) -> None:
    blob = upload(
        empty_buckets, settings.input_bucket, "uploads/flaky.jpg", (photos_dir / "obama-240p.jpg").read_bytes()
    )
    flaky = _faulty(engine, ConnectionResetError("the network blinked"))
    with pytest.raises(ConnectionResetError):
        handle_upload(finalized(blob), store=store, engine=flaky, settings=settings)
    assert record_of(store, "uploads/flaky.jpg") is None
    late = blob.time_created + timedelta(seconds=settings.retry_window_seconds + 1)
    outcome = handle_upload(finalized(blob), store=store, engine=flaky, settings=settings, now=late)
    assert outcome.result is Result.FAILED and "unavailable" in outcome.reason
    record = record_of(store, "uploads/flaky.jpg")
    assert record is not None and record["status"] == "failed"
