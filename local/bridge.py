"""The local stand-in for Eventarc: new objects in the input bucket become CloudEvents posted to ``on_upload``.

It polls the bucket (the emulator sends no notifications), and for each new object generation
posts the event Eventarc would send: ``google.cloud.storage.object.v1.finalized``, structured
mode, the object's StorageObjectData as data. A delivery that fails (a non-2xx answer, no answer
in time, no connection) is retried with exponential backoff, as Eventarc's retry policy does, under
the same event id; deliveries run on a small thread pool, so a slow or failing one never holds up
the discovery of new objects.

``python -m local.bridge --storage http://127.0.0.1:9023 --bucket memegen-input --prefix uploads/ --target http://127.0.0.1:8081/``
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from local import stop_on_signals
from memegen.contract import FINALIZED
from memegen.logs import log


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``first_delay`` seconds, doubling up to ``max_delay``, ``max_attempts`` tries in all."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    max_attempts: int = 8

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        return float(min(self.max_delay, self.first_delay * 2 ** (failures - 1)))


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def object_data(blob: storage.Blob) -> dict[str, Any]:
    """The StorageObjectData of an object, as Eventarc sends it: the JSON API resource, int64 fields as strings."""
    data = {
        "kind": "storage#object",
        "id": blob.id,
        "selfLink": blob.self_link,
        "name": blob.name,
        "bucket": blob.bucket.name,
        "generation": str(blob.generation),
        "metageneration": str(blob.metageneration),
        "contentType": blob.content_type,
        "timeCreated": _rfc3339(blob.time_created),
        "updated": _rfc3339(blob.updated),
        "storageClass": blob.storage_class,
        "size": str(blob.size),
        "md5Hash": blob.md5_hash,
        "mediaLink": blob.media_link,
        "crc32c": blob.crc32c,
        "etag": blob.etag,
        "metadata": blob.metadata,
    }
    return {key: value for key, value in data.items() if value is not None}


def finalized_event(data: dict[str, Any]) -> CloudEvent:
    """The CloudEvent of a new object, with a new event id."""
    attributes = {
        "specversion": "1.0",
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
        "id": uuid.uuid4().hex,
        # Eventarc stamps the time of the change, not of the delivery: retries keep it.
        "time": str(data.get("updated") or _rfc3339(datetime.now(UTC))),
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, data)


@dataclass
class _Delivery:
    event: CloudEvent
    failures: int = 0
    first_try: float = field(default_factory=time.monotonic)


class Bridge:
    """Polls one bucket prefix and delivers each new object generation's event to ``target``."""

    def __init__(
        self,
        client: storage.Client,
        *,
        bucket: str,
        prefix: str,
        target: str,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        workers: int = 4,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._target = target
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery")
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        # Deliveries waiting for their time: (due, tie-breaker, delivery).
        self._due: list[tuple[float, int, _Delivery]] = []
        self._order = itertools.count()
        self._in_flight = 0

    def poll(self) -> int:
        """Look for new object generations and queue their events; the number found."""
        found = 0
        for blob in self._client.list_blobs(self._bucket, prefix=self._prefix):
            key = (blob.name, int(blob.generation))
            if key in self._seen:
                continue
            self._seen.add(key)
            event = finalized_event(object_data(blob))
            log("INFO", "bridge: new object", event_id=event["id"], object=blob.name, generation=str(blob.generation))
            self._schedule(_Delivery(event), at=time.monotonic())
            found += 1
        return found

    def dispatch(self) -> int:
        """Start every delivery that is due; the number started."""
        now = time.monotonic()
        started = 0
        with self._lock:
            while self._due and self._due[0][0] <= now:
                _, _, delivery = heapq.heappop(self._due)
                self._pool.submit(self._attempt, delivery)
                started += 1
        return started

    def run(self, stop: threading.Event, *, interval: float = 0.5) -> None:
        """Poll and dispatch every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.poll()
            except (GoogleAPIError, requests.RequestException) as exc:
                # The storage server may be starting or restarting: the next round tries again.
                log("WARNING", "bridge: cannot list the bucket", error=repr(exc))
            self.dispatch()
            stop.wait(interval)

    @property
    def in_flight(self) -> int:
        """How many deliveries are being made now: sent, their answer not yet read."""
        with self._lock:
            return self._in_flight

    def close(self, *, wait: bool = False) -> None:
        """Drop the deliveries not started; those in flight end on their own (``wait``: wait for them)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _schedule(self, delivery: _Delivery, *, at: float) -> None:
        with self._lock:
            heapq.heappush(self._due, (at, next(self._order), delivery))

    def _attempt(self, delivery: _Delivery) -> None:
        headers, body = to_structured(delivery.event)
        fields = {"event_id": delivery.event["id"], "subject": delivery.event["subject"]}
        with self._lock:
            self._in_flight += 1
        try:
            response = requests.post(self._target, data=body, headers=headers, timeout=self._timeout)
            failure = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            failure = repr(exc)
        finally:
            with self._lock:
                self._in_flight -= 1
        attempt = delivery.failures + 1
        if failure is None:
            log("INFO", "bridge: delivered", attempt=attempt, **fields)
            return
        delivery.failures = attempt
        if attempt >= self._retry.max_attempts:
            log("ERROR", "bridge: delivery failed, giving up", attempt=attempt, error=failure, **fields)
            return
        delay = self._retry.delay(attempt)
        log(
            "WARNING", "bridge: delivery failed, will retry", attempt=attempt, error=failure, retry_in_s=delay, **fields
        )
        self._schedule(delivery, at=time.monotonic() + delay)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the bridge until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m local.bridge", description="Storage events for local runs.")
    parser.add_argument("--storage", required=True, help="the storage emulator's URL")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--target", required=True, help="the URL of the function that takes the events")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    args = parser.parse_args(argv)
    client = storage.Client(
        project="local", credentials=AnonymousCredentials(), client_options={"api_endpoint": args.storage}
    )
    bridge = Bridge(client, bucket=args.bucket, prefix=args.prefix, target=args.target)
    stop = stop_on_signals()
    try:
        bridge.run(stop, interval=args.interval)
    finally:
        bridge.close()


if __name__ == "__main__":
    main()
