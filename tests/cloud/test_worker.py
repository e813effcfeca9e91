"""``handle_upload`` with real CloudEvents, the real storage server, real photos and the real models."""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections.abc import Callable
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

from local.bridge import finalized_event, object_data
from local.stack import free_port
from memegen.cloud.storage import Store
from memegen.cloud.uploads import upload_id
from memegen.cloud.worker import Outcome, Result, handle_upload
from memegen.meme.engine import Engine
from memegen.settings import Settings


@pytest.fixture
def put(empty_buckets: storage.Client, settings: Settings) -> Callable[..., storage.Blob]:
    """Upload ``data`` under ``name`` to the input bucket (or ``bucket``), with ``metadata`` as its own."""

    def put(name: str, data: bytes, *, bucket: str = "", **metadata: str) -> storage.Blob:
        blob = empty_buckets.bucket(bucket or settings.input_bucket).blob(name)
        blob.metadata = metadata or None
        blob.upload_from_string(data, content_type="image/jpeg")
        return blob

    return put


@pytest.fixture
def handle(store: Store, engine: Engine, settings: Settings) -> Callable[..., Outcome]:
    """``handle_upload`` with the test's store, engine and settings; keywords replace them."""
    return functools.partial(handle_upload, store=store, engine=engine, settings=settings)


@pytest.fixture
def outputs(empty_buckets: storage.Client, settings: Settings) -> Callable[[], list[str]]:
    """The names in the output bucket, sorted."""
    return lambda: sorted(blob.name for blob in empty_buckets.list_blobs(settings.output_bucket))


def finalized(blob: storage.Blob, **changes: Any) -> CloudEvent:
    """The event the bridge (as Eventarc) sends for a new object; ``changes`` replace fields of its data."""
    return finalized_event({**object_data(blob), **changes})


def record_of(store: Store, name: str) -> dict[str, Any] | None:
    """The latest record of the upload under ``name`` (in the input bucket's ``uploads/``)."""
    return store.latest_record(upload_id(name, prefix="uploads/"))


def test_a_photo_becomes_one_meme_and_its_record(
    empty_buckets: storage.Client,
    settings: Settings,
    store: Store,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
    photos_dir: Path,
) -> None:
    name = f"{settings.upload_prefix}{uuid.uuid4().hex}"
    blob = put(name, (photos_dir / "obama-480p.jpg").read_bytes(), **{"memegen-top": "hello%21"})
    event = finalized(blob)
    outcome = handle(event)
    assert outcome.result is Result.MADE and outcome.upload_id == upload_id(name, prefix="uploads/")
    meme, record = (
        f"memes/{outcome.upload_id}/{blob.generation}.jpg",
        f"records/{outcome.upload_id}/{blob.generation}.json",
    )
    assert outputs() == [meme, record]
    saved = record_of(store, name)
    assert saved is not None and saved["status"] == "done" and saved["meme"] == meme
    assert len(saved["faces"]) == 1 and saved["caption"]["top"] == "hello!"
    assert empty_buckets.bucket(settings.output_bucket).blob(meme).download_as_bytes()[:2] == b"\xff\xd8"

    # Eventarc delivers at least once: the same event again, and a replay an hour later.
    again = handle(event)
    later = handle(event, now=blob.time_created + timedelta(hours=1))
    assert again.result is later.result is Result.DUPLICATE
    assert outputs() == [meme, record]


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("uploads/holiday.jpg", b"just some text, honestly\n" * 10, ""),
        # 0 bytes end failed too, as every upload ends done or failed, never pending.
        ("uploads/empty.jpg", b"", "empty"),
    ],
    ids=["not-an-image", "empty-upload"],
)
def test_an_upload_that_is_not_a_photo_is_recorded_as_failed_once(
    store: Store,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
    name: str,
    data: bytes,
    says: str,
) -> None:
    blob = put(name, data)
    outcome = handle(finalized(blob))
    assert outcome.result is Result.FAILED and outcome.reason and says in outcome.reason
    assert record_of(store, name) == {
        "status": "failed",
        "id": upload_id(name, prefix="uploads/"),
        "error": outcome.reason,
    }
    assert outputs() == [f"records/{outcome.upload_id}/{blob.generation}.json"]
    assert handle(finalized(blob)).result is Result.DUPLICATE


def test_an_upload_over_the_size_limit_is_recorded_as_failed(
    empty_buckets: storage.Client,
    settings: Settings,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
) -> None:
    small = dataclasses.replace(settings, max_bytes=100)
    blob = put("uploads/big.jpg", b"x" * 101)
    outcome = handle(finalized(blob), store=Store(empty_buckets, small), settings=small)
    assert outcome.result is Result.FAILED and "101 bytes" in outcome.reason
    assert outputs() == [f"records/{outcome.upload_id}/{blob.generation}.json"]


def test_a_too_old_event_is_dropped(
    settings: Settings,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
    photos_dir: Path,
) -> None:
    blob = put("uploads/old.jpg", (photos_dir / "obama-240p.jpg").read_bytes())
    late = blob.time_created + timedelta(seconds=settings.max_event_age_seconds + 1)
    assert handle(finalized(blob), now=late).result is Result.TOO_OLD
    assert outputs() == []


def test_unsigned_caption_metadata_meets_the_same_limits(
    store: Store,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    photos_dir: Path,
) -> None:
    """Object metadata set by hand, past the signed URL's checks, is checked again before rendering."""
    photo = (photos_dir / "obama-240p.jpg").read_bytes()
    for name, top in (("uploads/long.jpg", "A" * 3000), ("uploads/lines.jpg", "one%0Atwo%07")):
        outcome = handle(finalized(put(name, photo, **{"memegen-top": top})))
        assert outcome.result is Result.FAILED, outcome
        assert "top" in outcome.reason and ("limit" in outcome.reason or "control" in outcome.reason)
        record = record_of(store, name)
        assert record is not None and record["status"] == "failed"


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
    settings: Settings,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
    bucket: str,
    name: str,
    data: bytes,
    changes: dict[str, Any],
) -> None:
    real = {"input": settings.input_bucket, "output": settings.output_bucket}
    if bucket in real:
        blob = put(name, data, bucket=real[bucket])
    else:
        # A bucket the emulator does not have: the event alone, as if from another project.
        blob = put(name, data)
        changes = {**changes, "bucket": bucket}
    outcome = handle(finalized(blob, **changes))
    assert outcome.result is Result.SKIPPED, outcome
    assert [n for n in outputs() if n != name] == []


def test_an_event_of_another_type_is_skipped(
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
) -> None:
    event = finalized(put("uploads/a.jpg", b"x"))
    event["type"] = "google.cloud.storage.object.v1.deleted"
    assert handle(event).result is Result.SKIPPED
    assert outputs() == []


def test_an_event_of_a_replaced_generation_is_skipped(
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    outputs: Callable[[], list[str]],
) -> None:
    first = put("uploads/a.jpg", b"first")
    put("uploads/a.jpg", b"second")
    outcome = handle(finalized(first))
    assert outcome.result is Result.SKIPPED and "no longer exists" in outcome.reason
    assert outputs() == []


def test_an_unreachable_storage_server_raises_for_a_retry(
    settings: Settings,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    capsys: pytest.CaptureFixture[str],
) -> None:
    blob = put("uploads/a.jpg", b"x")
    dead = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"},
    )
    started = datetime.now()
    with pytest.raises((GoogleAPIError, requests.ConnectionError)):
        handle(finalized(blob), store=Store(dead, settings, retry=DEFAULT_RETRY.with_timeout(1.0)))
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
    store: Store,
    engine: Engine,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    photos_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A poison event is not redelivered for a day: logged with its traceback, recorded, acknowledged."""
    blob = put("uploads/poison.jpg", (photos_dir / "obama-240p.jpg").read_bytes())
    outcome = handle(finalized(blob), engine=_faulty(engine, ZeroDivisionError("boom")))
    assert outcome.result is Result.FAILED and outcome.reason == "internal error"
    record = record_of(store, "uploads/poison.jpg")
    assert record is not None and record["status"] == "failed" and record["error"] == "internal error"
    # One incident, one line: the traceback and whether the record was written, not a second "upload refused".
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (line,) = (entry for entry in logged if entry.get("upload_id") == outcome.upload_id)
    assert line["severity"] == "ERROR" and line["message"] == "internal error" and line["recorded"] is True
    assert "ZeroDivisionError: boom" in line["traceback"]


def test_a_transient_error_is_retried_within_the_window_then_recorded(
    settings: Settings,
    store: Store,
    engine: Engine,
    put: Callable[..., storage.Blob],
    handle: Callable[..., Outcome],
    photos_dir: Path,
) -> None:
    blob = put("uploads/flaky.jpg", (photos_dir / "obama-240p.jpg").read_bytes())
    flaky = _faulty(engine, ConnectionResetError("the network blinked"))
    with pytest.raises(ConnectionResetError):
        handle(finalized(blob), engine=flaky)
    assert record_of(store, "uploads/flaky.jpg") is None
    late = blob.time_created + timedelta(seconds=settings.retry_window_seconds + 1)
    outcome = handle(finalized(blob), engine=flaky, now=late)
    assert outcome.result is Result.FAILED and "unavailable" in outcome.reason
    record = record_of(store, "uploads/flaky.jpg")
    assert record is not None and record["status"] == "failed"
