"""Faults and duplicates against real processes: the storage server, the ``on_upload`` function
served by functions-framework, and the event bridge with Eventarc's retry-with-backoff.

- every event delivered again (twice more, and once more as if an hour later): one meme each;
- the storage server stopped for 10 seconds in the middle of a batch (SIGTERM; it keeps its
  objects on disk for this test), then started again on the same port: every upload gets its
  meme or failure record, nothing is lost; and frozen (SIGSTOP) for 10 seconds, answering nothing
  while its connections stay open, then thawed: the same;
- the function process killed in the middle of a batch, then started again: the bridge's
  redelivery completes every meme, once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cloudevents.conversion import to_structured
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from local.bridge import Bridge, RetryPolicy, finalized_event, object_data
from local.run import function_command
from local.stack import ROOT, free_port, wait_for, wait_until_serving
from memegen.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHOTOS = ("obama-480p.jpg", "two_people.jpg", "biden.jpg")
# The largest portraits (2 to 3 MP, over 2 MB): a batch of them takes long enough that the function is
# still working on it when the first record appears, however fast the machine (with the small ones,
# a fast machine finished every meme before the kill, and nothing was left in flight to cut off).
LARGE = ("portrait-img26.jpg", "portrait-img1.jpg")


@dataclass
class Parts:
    """The running parts of one test, and how to restart the function."""

    client: storage.Client
    settings: Settings
    emulators: list[subprocess.Popen[bytes]]
    start_storage: Callable[[], None]
    function_url: str
    start_function: Callable[[], None]
    function: list[subprocess.Popen[bytes]]
    function_log: Path


def _function(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = function_command(
        target="on_upload", source="functions/on_upload/main.py", signature="cloudevent", port=port
    )
    with log.open("ab") as out:  # the function's structured log lines, kept for the assertions
        # A session of its own: the server is a master and its worker, and an instance dies whole (killpg).
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_until_serving(f"http://127.0.0.1:{port}/", process=process, timeout=60)
    return process


@pytest.fixture
def parts(settings: Settings, tmp_path: Path) -> Iterator[Parts]:
    storage_port, function_port = free_port(), free_port()
    url = f"http://127.0.0.1:{storage_port}"
    data_dir = tmp_path / "storage"
    command = [sys.executable, "-m", "local.emulator", "--port", str(storage_port), "--data-dir", str(data_dir)]
    command += ["--bucket", settings.input_bucket, "--bucket", settings.output_bucket]
    emulators: list[subprocess.Popen[bytes]] = []
    functions: list[subprocess.Popen[bytes]] = []

    def start_storage() -> None:
        emulators.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until_serving(url, process=emulators[-1])

    env = {**os.environ, "STORAGE_EMULATOR_HOST": url}
    log = tmp_path / "on_upload.log"
    try:
        start_storage()
        functions.append(_function(function_port, env, log))
        client = storage.Client(
            project="faults", credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
        )
        yield Parts(
            client,
            settings,
            emulators,
            start_storage,
            f"http://127.0.0.1:{function_port}/",
            lambda: functions.append(_function(function_port, env, log)),
            functions,
            log,
        )
    finally:
        for process in [*functions, *emulators]:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(timeout=10)


@contextmanager
def running_bridge(parts: Parts) -> Iterator[Bridge]:
    """The event bridge to the function, polling in a thread of its own until the block ends."""
    bridge = Bridge(
        parts.client,
        bucket=parts.settings.input_bucket,
        prefix=parts.settings.upload_prefix,
        target=parts.function_url,
        retry=RetryPolicy(first_delay=0.5, max_delay=4.0, max_attempts=20),
        timeout=30.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), kwargs={"interval": 0.2}, daemon=True)
    thread.start()
    try:
        yield bridge
    finally:
        stop.set()
        thread.join(timeout=10)
        bridge.close()


@pytest.fixture
def bridge(parts: Parts) -> Iterator[Bridge]:
    with running_bridge(parts) as bridge:
        yield bridge


def upload_photos(parts: Parts, photos_dir: Path, count: int, *, names: tuple[str, ...] = PHOTOS) -> list[storage.Blob]:
    blobs = []
    for i in range(count):
        blob = parts.client.bucket(parts.settings.input_bucket).blob(
            f"{parts.settings.upload_prefix}{uuid.uuid4().hex}"
        )
        blob.upload_from_string((photos_dir / names[i % len(names)]).read_bytes(), content_type="image/jpeg")
        blobs.append(blob)
    return blobs


def outputs(parts: Parts) -> tuple[list[str], list[dict[str, object]]]:
    bucket = parts.settings.output_bucket
    memes = [b.name for b in parts.client.list_blobs(bucket, prefix="memes/")]
    records = [json.loads(b.download_as_bytes()) for b in parts.client.list_blobs(bucket, prefix="records/")]
    return memes, records


def record_count(parts: Parts) -> int:
    """How many records the output bucket holds now."""
    return sum(1 for _ in parts.client.list_blobs(parts.settings.output_bucket, prefix="records/"))


def wait_for_records(parts: Parts, count: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if record_count(parts) >= count:
                return
        except requests.RequestException:
            pass  # the storage server is frozen on purpose in one test: ask again
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} records after {timeout} s")


def wait_for_first_meme(parts: Parts, *, timeout: float = 60) -> None:
    """Until the first record is written: the batch is being worked on (its last deliveries may not be sent yet)."""
    wait_for_records(parts, 1, timeout=timeout)


def wait_until_the_port_is_let_go(port: int | None, *, timeout: float = 5.0) -> None:
    """Until nothing listens on ``port``: every process of a killed instance has exited.

    The master's wait returns before its worker is gone: the worker is still exiting (tearing down its
    memory; longer on a busy machine), and its copy of the listening socket closes only when it is done.
    Until then a connection is accepted, or reset when the socket closes during its handshake
    (ECONNRESET); a refused one says that no process holds the port any more.
    """
    assert port is not None
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        except (ConnectionResetError, ConnectionAbortedError):
            pass  # the listener was there for the SYN and closed before the handshake ended: ask again
        assert time.monotonic() < deadline, f"a process of the killed instance still holds its socket after {timeout} s"
        time.sleep(0.02)


def assert_one_meme_each(parts: Parts, blobs: list[storage.Blob]) -> None:
    memes, records = outputs(parts)
    assert len(records) == len(blobs) and all(r["status"] == "done" for r in records), records
    assert len(memes) == len(blobs)
    assert sorted(str(r["id"]) for r in records) == sorted(b.name.rsplit("/", 1)[-1] for b in blobs)


def test_every_event_delivered_again_and_an_hour_later_makes_one_meme(
    parts: Parts, bridge: Bridge, photos_dir: Path
) -> None:
    blobs = upload_photos(parts, photos_dir, 4)
    wait_for_records(parts, 4, timeout=60)
    for blob in blobs:
        blob.reload()
        data = object_data(blob)
        an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        for event in (finalized_event(data), finalized_event(data), finalized_event({**data, "updated": an_hour_ago})):
            headers, body = to_structured(event)
            assert requests.post(parts.function_url, data=body, headers=headers, timeout=60).status_code == 200
    assert_one_meme_each(parts, blobs)


def test_a_storage_server_stopped_and_started_again_loses_nothing(
    parts: Parts, bridge: Bridge, photos_dir: Path
) -> None:
    # Enough photos that the batch is still being worked on when the first record is seen: on a fast
    # machine ten were all made before the server stopped (the test then proved nothing, and said so),
    # and ten large ones missed it in two runs of five; thirty small ones hit it in each of seven runs.
    blobs = upload_photos(parts, photos_dir, 30)
    wait_for_first_meme(parts)
    parts.emulators[-1].terminate()
    parts.emulators[-1].wait(timeout=10)
    time.sleep(10)
    parts.start_storage()
    wait_for_records(parts, 30, timeout=180)
    assert_one_meme_each(parts, blobs)
    # The outage hit memes in the making: either the function raised for the platform to retry,
    # or the storage client's own retries carried a read or write across the 10 seconds.
    lines = [json.loads(line) for line in parts.function_log.read_text().splitlines() if line.startswith("{")]
    raised = [line for line in lines if line["message"] == "transient error: the event will be retried"]
    waited = [
        line
        for line in lines
        if line["message"] == "meme made" and max(line["timings_ms"]["download"], line["timings_ms"]["upload"]) > 5000
    ]
    assert raised or waited, "the outage hit no meme in the making: the test proved nothing"


def test_a_frozen_storage_server_loses_nothing(parts: Parts, bridge: Bridge, photos_dir: Path) -> None:
    blobs = upload_photos(parts, photos_dir, 10)
    wait_for_first_meme(parts)
    parts.emulators[-1].send_signal(signal.SIGSTOP)
    time.sleep(10)
    thawed_at = datetime.now(UTC)
    parts.emulators[-1].send_signal(signal.SIGCONT)
    wait_for_records(parts, 10, timeout=120)
    assert_one_meme_each(parts, blobs)
    # Some records were written after the thaw: the freeze held work in the making (the storage
    # server stamps each object with its own clock, this machine's).
    finished = [b.time_created for b in parts.client.list_blobs(parts.settings.output_bucket, prefix="records/")]
    assert len(finished) == 10 and any(created > thawed_at for created in finished), (thawed_at, finished)


def test_a_function_killed_mid_batch_completes_on_redelivery(
    parts: Parts, photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Uploaded before the bridge starts: it finds the whole batch at once and keeps deliveries in flight
    # until the kill (found as they come, the first uploads' memes could be made before the last were found).
    blobs = upload_photos(parts, photos_dir, 10, names=LARGE)
    with running_bridge(parts) as bridge:
        wait_for_first_meme(parts)
        nothing_to_cut = "no deliveries in flight: nothing for the kill to cut off"
        wait_for(lambda: bridge.in_flight >= 2, timeout=30, failure=nothing_to_cut)
        # The whole instance, master and worker: killing the master alone leaves its worker to finish the
        # requests in flight, so that none is cut off.
        os.killpg(parts.function[-1].pid, signal.SIGKILL)
        parts.function[-1].wait(timeout=10)
        wait_until_the_port_is_let_go(urlsplit(parts.function_url).port)
        assert record_count(parts) < len(blobs), "every meme was made before the kill: the test proved nothing"
        time.sleep(1)
        parts.start_function()
        wait_for_records(parts, 10, timeout=120)
    assert_one_meme_each(parts, blobs)
    retries = [line for line in capsys.readouterr().out.splitlines() if "will retry" in line]
    # A delivery cut off in flight ("Connection aborted"), not only ones refused while it was down.
    assert [line for line in retries if "aborted" in line or "RemoteDisconnected" in line], retries
