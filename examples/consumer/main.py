"""An example integrator: a Pub/Sub push endpoint on MemeGen's events topic.

Deploy it as an HTTP function (``functions-framework --target on_record``) behind a push
subscription of the ``events_topic`` output. Cloud Storage publishes one message per record
object (``payload_format = JSON_API_V1``): its attributes name the event and the object, its data is
the object's JSON API resource. The record itself is read from the output bucket: it fits
``docs/record.schema.json`` (``status`` pending, done, failed or deleted).

A delivery that raises is redelivered by Pub/Sub; an answer 2xx acknowledges it.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import flask
import functions_framework
from google.cloud import storage


@functools.cache
def _client() -> storage.Client:
    return storage.Client()


def read_record(envelope: dict[str, Any], client: storage.Client) -> dict[str, Any] | None:
    """The record a push envelope announces, or None for a message that is not a new record."""
    message = envelope.get("message") or {}
    attributes = message.get("attributes") or {}
    if attributes.get("eventType") != "OBJECT_FINALIZE" or attributes.get("payloadFormat") != "JSON_API_V1":
        return None
    resource = json.loads(base64.b64decode(message["data"]))
    if not str(resource.get("name", "")).startswith("records/"):
        return None
    blob = client.bucket(resource["bucket"]).blob(resource["name"], generation=int(resource["generation"]))
    record: dict[str, Any] = json.loads(blob.download_as_bytes())
    return record


def handle(record: dict[str, Any]) -> None:
    """What an integrator does with a record: here, one log line per finished, failed or deleted meme."""
    if record["status"] == "done":
        print(json.dumps({"meme": record["meme"], "caption": record["caption"], "faces": len(record["faces"])}))
    elif record["status"] in ("failed", "deleted"):
        # A deleted meme: drop any copy you kept of it.
        print(json.dumps({"id": record["id"], "status": record["status"]}))


@functions_framework.http
def on_record(request: flask.Request) -> tuple[str, int]:
    """Pub/Sub push: read the announced record and handle it."""
    record = read_record(request.get_json(silent=True) or {}, _client())
    if record is not None:
        handle(record)
    return "", 204
