"""An example integrator: a Pub/Sub push endpoint on MemeGen's events topic.

Deploy it as an HTTP function (``functions-framework --target on_record``) behind a push
subscription of the ``events_topic`` output. Cloud Storage publishes a message for every record
object created or deleted under ``records/`` (``payload_format = JSON_API_V1``): its attributes
name the event and the object, its data is the object's JSON API resource.

- ``OBJECT_FINALIZE``: a new record, read from the output bucket; it fits
  ``docs/record.schema.json`` (``status`` pending, done or failed).
- ``OBJECT_ARCHIVE`` or ``OBJECT_DELETE``: the record is gone, so is its meme (its uploader
  deleted it, or the bucket's lifecycle rule expired it): drop any copy you kept.

A delivery that raises is redelivered by Pub/Sub; an answer 2xx acknowledges it.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any

import flask
import functions_framework
from google.cloud import storage

GONE = frozenset({"OBJECT_ARCHIVE", "OBJECT_DELETE"})


@dataclass(frozen=True)
class Event:
    """What a message says: a new record (``record``), or that the meme ``id`` is gone."""

    id: str
    record: dict[str, Any] | None = None
    gone: bool = False


@functools.cache
def _client() -> storage.Client:
    return storage.Client()


def read_event(envelope: dict[str, Any], client: storage.Client) -> Event | None:
    """The event a push envelope carries, or None for a message that is not about a record."""
    message = envelope.get("message") or {}
    attributes = message.get("attributes") or {}
    if attributes.get("payloadFormat") != "JSON_API_V1":
        return None
    resource = json.loads(base64.b64decode(message["data"]))
    parts = str(resource.get("name", "")).split("/")
    if len(parts) != 3 or parts[0] != "records" or not parts[2].endswith(".json"):
        return None  # the api's own bookkeeping (records/<id>/versions/...) or something else
    if attributes.get("eventType") in GONE:
        return Event(id=parts[1], gone=True)
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        return None
    blob = client.bucket(resource["bucket"]).blob(resource["name"], generation=int(resource["generation"]))
    return Event(id=parts[1], record=json.loads(blob.download_as_bytes()))


def handle(event: Event) -> None:
    """What an integrator does with an event: here, one log line per finished, failed or deleted meme."""
    if event.gone:
        print(json.dumps({"id": event.id, "status": "gone"}))  # drop your copy of the meme
    elif event.record is not None and event.record["status"] == "done":
        record = event.record
        print(json.dumps({"meme": record["meme"], "caption": record["caption"], "faces": len(record["faces"])}))
    elif event.record is not None and event.record["status"] == "failed":
        print(json.dumps({"id": event.id, "status": "failed", "error": event.record["error"]}))


@functions_framework.http
def on_record(request: flask.Request) -> tuple[str, int]:
    """Pub/Sub push: read the announced event and handle it."""
    event = read_event(request.get_json(silent=True) or {}, _client())
    if event is not None:
        handle(event)
    return "", 204
