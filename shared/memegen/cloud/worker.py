"""The library side of the ``on_upload`` function: one storage event in, one meme and record out.

Eventarc delivers each event at least once and retries a delivery that raises. So every step is
idempotent (outputs are named by upload id and generation and written only if absent), and one
error policy decides what raises:

- permanent (the user's file, an empty upload): recorded as failed, the event acknowledged;
- transient (storage unavailable): raised for a retry while the event is younger than
  ``settings.retry_window_seconds``, then recorded as failed and acknowledged;
- a bug (anything else): logged with its traceback, recorded as ``internal error``, acknowledged,
  so that a poison event is not redelivered for a day.

Every upload so ends ``done`` or ``failed``.
"""

from __future__ import annotations

import enum
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.abstract import CloudEvent

from memegen.cloud.storage import Store
from memegen.cloud.uploads import Upload
from memegen.contract import FINALIZED
from memegen.errors import InputError, Policy, UploadGone, policy_of
from memegen.logs import log
from memegen.meme.engine import Engine
from memegen.settings import Settings

INTERNAL_ERROR = "internal error"
RETRIES_EXHAUSTED = "the storage service was unavailable for too long; please upload the photo again"


class Result(enum.StrEnum):
    """What became of an event."""

    MADE = "made"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    SKIPPED = "skipped"
    TOO_OLD = "too_old"


@dataclass(frozen=True)
class Outcome:
    """The result of one event, why (for skipped and failed ones), and the upload it was about."""

    result: Result
    reason: str = ""
    upload_id: str | None = None


def handle_upload(
    event: CloudEvent, *, store: Store, engine: Engine, settings: Settings, now: datetime | None = None
) -> Outcome:
    """Turn a ``google.cloud.storage.object.v1.finalized`` event of the input bucket into a meme.

    Returns normally for everything retrying cannot change: an event that is not ours, too old, a
    duplicate, an upload gone, or one that is not a usable image (recorded as failed). Transient
    storage errors (``google.api_core.exceptions.ServiceUnavailable``, connection errors) raise, so
    that the platform retries the event.
    """
    if event["type"] != FINALIZED:
        return _skip(event, f"event type {event['type']}")
    try:
        resource = _payload(event)
        upload = Upload.from_resource(resource, prefix=settings.upload_prefix)
        age = _age_seconds(event, now or datetime.now(UTC))
    except (KeyError, TypeError, ValueError) as exc:
        return _skip(event, f"not a storage object event: {exc!r}")
    if resource.get("bucket") != settings.input_bucket:
        # Above all never our own output bucket: a meme must not trigger another meme.
        return _skip(event, f"bucket {resource.get('bucket')!r} is not the input bucket", upload)
    if not upload.name.startswith(settings.upload_prefix):
        return _skip(event, f"outside {settings.upload_prefix!r}", upload)
    if upload.name.endswith("/"):
        return _skip(event, "a folder marker", upload)
    if age is not None and age > settings.max_event_age_seconds:
        log("WARNING", "event dropped: too old", event_id=event["id"], upload_id=upload.id, age_seconds=round(age))
        return Outcome(Result.TOO_OLD, f"{round(age)} s old", upload.id)
    # Generations as strings, as the JSON API writes them: Cloud Logging reads numbers as doubles.
    fields: dict[str, Any] = {"event_id": event["id"], "upload_id": upload.id, "generation": str(upload.generation)}
    try:
        return _make(upload, store=store, engine=engine, fields=fields)
    except Exception as exc:
        details: dict[str, str] = {}
        if policy_of(exc) is Policy.TRANSIENT:
            if age is None or age < settings.retry_window_seconds:
                # Raised again for the platform to retry; logged first so that the line names the upload.
                log("ERROR", "transient error: the event will be retried", error=repr(exc), **fields)
                raise
            reason, message = RETRIES_EXHAUSTED, "transient error past the retry window: recorded as failed"
        else:
            # A bug: retrying would fail the same way for a day. Its traceback goes to the log, not the record.
            reason, message, details = INTERNAL_ERROR, "internal error", {"traceback": traceback.format_exc()}
        # One ERROR line for the incident, written with the record: not a second "upload refused".
        return _refuse(
            upload,
            reason,
            store=store,
            fields=fields,
            kind=type(exc).__name__,
            severity="ERROR",
            message=message,
            error=repr(exc),
            **details,
        )


def _make(upload: Upload, *, store: Store, engine: Engine, fields: dict[str, Any]) -> Outcome:
    started = time.perf_counter()
    if store.result_exists(upload):
        log("INFO", "duplicate event: already done", **fields)
        return Outcome(Result.DUPLICATE, "already done", upload.id)
    if upload.size == 0:
        # Every upload ends done or failed: an empty one too, or its page would wait for ever.
        return _refuse(upload, "the upload is empty", store=store, fields=fields)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        upload, data = store.read_upload(upload.name, upload.generation)
        timings["download"] = _ms(clock)
        clock = time.perf_counter()
        meme = engine.make(data, top=upload.top, bottom=upload.bottom, variant=upload.variant, format=upload.format)
        timings["make"] = _ms(clock)
    except UploadGone as exc:
        log("INFO", f"event skipped: {exc}", **fields)
        return Outcome(Result.SKIPPED, str(exc), upload.id)
    except InputError as exc:
        # Retrying cannot fix the user's file: say so in its record and return.
        return _refuse(upload, str(exc) or type(exc).__name__, store=store, fields=fields, kind=type(exc).__name__)
    clock = time.perf_counter()
    metadata = meme.metadata()
    if upload.source is not None:
        metadata |= {"source": upload.source, "variant": upload.variant}
    written = store.write_meme(upload, image=meme.image, content_type=meme.content_type, metadata=metadata)
    timings["upload"] = _ms(clock)
    timings.update({f"engine.{stage}": round(ms, 2) for stage, ms in meme.timings_ms.items()})
    timings["total"] = _ms(started)
    if not written:
        log("INFO", "duplicate event: another delivery finished first", timings_ms=timings, **fields)
        return Outcome(Result.DUPLICATE, "another delivery finished first", upload.id)
    if not store.upload_exists(upload):
        # Deleted (by its uploader) while this meme was being made: nothing of it may stay behind.
        store.purge(upload.id, upload=False)
        log("INFO", "meme removed: deleted by its uploader meanwhile", **fields)
        return Outcome(Result.SKIPPED, "deleted by its uploader", upload.id)
    log("INFO", "meme made", faces=len(meme.faces), caption_bank=meme.caption.bank, timings_ms=timings, **fields)
    return Outcome(Result.MADE, "", upload.id)


def _refuse(
    upload: Upload,
    reason: str,
    *,
    store: Store,
    fields: dict[str, Any],
    kind: str = "InputError",
    severity: str = "NOTICE",
    message: str = "upload refused",
    error: str | None = None,
    **details: object,
) -> Outcome:
    """Record a permanent failure of the upload (once per generation) and acknowledge the event.

    One log line per incident, at ``severity`` with ``message``: a refused upload by default, or the
    caller's own (a bug, with its ``traceback`` in ``details``). ``error`` is what the line names as
    the cause (``reason``, the record's words, unless given); ``recorded`` is whether this delivery
    wrote the record, or null if writing it failed, in which case the line is still written and
    the write's error raised.
    """
    recorded = None
    try:
        recorded = store.write_failure(upload, reason=reason)
    finally:
        log(severity, message, error=error or reason, error_type=kind, recorded=recorded, **details, **fields)
    return Outcome(Result.FAILED, reason, upload.id)


def _payload(event: CloudEvent) -> Mapping[str, Any]:
    data = event.get_data()
    if isinstance(data, bytes | str):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise TypeError(f"the event data is a {type(data).__name__}, not a JSON object")
    return data


def _age_seconds(event: CloudEvent, now: datetime) -> float | None:
    """Seconds since the event happened, or None if it carries no time."""
    stamp = event.get("time")
    if not stamp:
        return None
    happened = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    if happened.tzinfo is None:
        happened = happened.replace(tzinfo=UTC)
    return (now - happened).total_seconds()


def _skip(event: CloudEvent, reason: str, upload: Upload | None = None) -> Outcome:
    upload_id = upload.id if upload else None
    log("INFO", f"event skipped: {reason}", event_id=event.get("id"), upload_id=upload_id)
    return Outcome(Result.SKIPPED, reason, upload_id)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
