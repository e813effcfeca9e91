"""The local event bridge: real storage server, real CloudEvents, a real HTTP receiver on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cloudevents.http import CloudEvent, from_http
from google.cloud import storage

from local.bridge import FINALIZED, Bridge, RetryPolicy
from local.stack import wait_for
from memegen.settings import Settings

FAST = RetryPolicy(first_delay=0.1, max_delay=0.4, max_attempts=4)


class Receiver:
    """A tiny HTTP server that records each event and answers as scripted: "ok", "fail" (500) or "slow"."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.received: list[tuple[float, CloudEvent]] = []
        self.content_types: list[str] = []
        self.slow_seconds = 1.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                    receiver.received.append((time.monotonic(), from_http(dict(self.headers), body)))
                    action = receiver.script.pop(0) if receiver.script else "ok"
                if action == "slow":
                    time.sleep(receiver.slow_seconds)
                self.send_response(500 if action == "fail" else 204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test reads self.received

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[CloudEvent]:
        return [event for _, event in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def start_bridge(
    empty_buckets: storage.Client,
    settings: Settings,
    receiver: Receiver,
) -> Iterator[Callable[..., Bridge]]:
    stop = threading.Event()
    running: list[tuple[Bridge, threading.Thread]] = []

    def start(*, retry: RetryPolicy = FAST, timeout: float = 5.0) -> Bridge:
        bridge = Bridge(
            empty_buckets,
            bucket=settings.input_bucket,
            prefix=settings.upload_prefix,
            target=receiver.url,
            retry=retry,
            timeout=timeout,
        )
        thread = threading.Thread(target=bridge.run, args=(stop,), kwargs={"interval": 0.05}, daemon=True)
        thread.start()
        running.append((bridge, thread))
        return bridge

    yield start
    stop.set()
    for bridge, thread in running:
        thread.join(timeout=5)
        bridge.close(wait=True)


@pytest.fixture
def put(empty_buckets: storage.Client, settings: Settings) -> Callable[..., storage.Blob]:
    """Upload an object (to the input bucket unless told) with a caption in its metadata."""

    def put(name: str, data: bytes = b"\xff\xd8 photo", *, bucket: str = "") -> storage.Blob:
        blob = empty_buckets.bucket(bucket or settings.input_bucket).blob(name)
        blob.metadata = {"memegen-top": "hi"}
        blob.upload_from_string(data, content_type="image/jpeg")
        return blob

    return put


def test_a_new_object_becomes_one_cloud_event(
    settings: Settings,
    receiver: Receiver,
    start_bridge: Callable[..., Bridge],
    put: Callable[..., storage.Blob],
) -> None:
    put("elsewhere/ignored.jpg")
    put("uploads/not-the-input-bucket.jpg", bucket=settings.output_bucket)
    blob = put("uploads/cat.jpg")
    start_bridge()
    wait_for(lambda: len(receiver.received) == 1)
    time.sleep(0.5)  # ten more polls: nothing is sent again
    (event,) = receiver.events()
    assert receiver.content_types[0].startswith("application/cloudevents+json")  # structured mode
    assert event["specversion"] == "1.0" and event["type"] == FINALIZED
    assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{settings.input_bucket}"
    assert event["subject"] == "objects/uploads/cat.jpg"
    data = event.get_data()
    assert isinstance(data, dict)
    assert event["time"] == data["updated"] and event["time"].endswith("Z")
    assert data["bucket"] == settings.input_bucket and data["name"] == "uploads/cat.jpg"
    assert data["generation"] == str(blob.generation) and data["size"] == str(blob.size)
    assert data["contentType"] == "image/jpeg" and data["metadata"] == {"memegen-top": "hi"}

    # A new generation of the same name is a new event.
    newer = put("uploads/cat.jpg", b"another photo")
    wait_for(lambda: len(receiver.received) == 2)
    time.sleep(0.3)
    first, second = receiver.events()
    assert second["subject"] == first["subject"] and second["id"] != first["id"]
    newer_data = second.get_data()
    assert isinstance(newer_data, dict) and newer_data["generation"] == str(newer.generation)
    assert len(receiver.received) == 2


@pytest.mark.parametrize(
    ("script", "retry", "timeout", "attempts", "settle"),
    [
        # Two 500s, then delivered: 0.1 s, then doubled; settle past the next backoff.
        pytest.param(["fail", "fail"], FAST, 5.0, 3, 0.6, id="failed-delivery-retried-with-backoff"),
        # No answer within 0.3 s (the receiver takes 1 s): sent again, then delivered.
        pytest.param(["slow"], FAST, 0.3, 2, 1.0, id="timed-out-delivery-retried"),
        # Failing for ever: three attempts in all, then no more.
        pytest.param(
            ["fail"] * 10,
            RetryPolicy(first_delay=0.05, max_delay=0.1, max_attempts=3),
            5.0,
            3,
            0.5,
            id="gives-up-after-the-last-attempt",
        ),
    ],
)
def test_a_failed_delivery_is_retried_under_the_same_id(
    receiver: Receiver,
    start_bridge: Callable[..., Bridge],
    put: Callable[..., storage.Blob],
    script: list[str],
    retry: RetryPolicy,
    timeout: float,
    attempts: int,
    settle: float,
) -> None:
    receiver.script = list(script)
    receiver.slow_seconds = 1.0
    put("uploads/cat.jpg")
    start_bridge(retry=retry, timeout=timeout)
    wait_for(lambda: len(receiver.received) == attempts)
    time.sleep(settle)  # delivered or given up: not sent again
    assert len(receiver.received) == attempts
    assert len({event["id"] for event in receiver.events()}) == 1
    times = [moment for moment, _ in receiver.received]
    # Each retry waits at least the policy's backoff after the attempt before it failed.
    assert all(times[n] - times[n - 1] >= retry.delay(n) for n in range(1, attempts)), times


def test_a_slow_delivery_does_not_hold_up_new_objects(
    receiver: Receiver,
    start_bridge: Callable[..., Bridge],
    put: Callable[..., storage.Blob],
) -> None:
    receiver.script = ["slow"]
    receiver.slow_seconds = 2.0
    put("uploads/first.jpg")
    bridge = start_bridge()
    wait_for(lambda: len(receiver.received) == 1)
    assert bridge.in_flight == 1  # sent, its answer 2 s away
    put("uploads/second.jpg")
    wait_for(lambda: len(receiver.received) == 2, timeout=1.5)  # while the first is still being answered
    wait_for(lambda: bridge.in_flight == 0, timeout=3)
    assert [event["subject"] for event in receiver.events()] == [
        "objects/uploads/first.jpg",
        "objects/uploads/second.jpg",
    ]


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(first_delay=1.0, max_delay=30.0, max_attempts=8)
    assert [policy.delay(failures) for failures in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
