"""The real storage server for tests: ``local.emulator`` (gcp-storage-emulator) in a subprocess on a free port.

Its fixtures reach every test module through ``tests/conftest.py``:

``storage_client`` (session): a ``google.cloud.storage.Client`` (project "test", anonymous
credentials) talking to the emulator, with the settings' input and output buckets made, which
checks signed URLs against ``signing_key_file`` (session: a development key);
STORAGE_EMULATOR_HOST points at it for the whole session. ``empty_buckets``: the same client,
both buckets emptied first.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from local.devkey import write_key
from memegen.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, *, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until ``url`` answers, failing early if the process serving it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before serving {url}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The development key of the session: URLs are signed with it, and the storage server checks them."""
    path = tmp_path_factory.mktemp("signing") / "dev-key.json"
    write_key(path)
    return path


@pytest.fixture(scope="session")
def storage_client(settings: Settings, signing_key_file: Path) -> Iterator[storage.Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "local.emulator", "--port", str(port), "--verify-key", str(signing_key_file)]
    command += ["--bucket", settings.input_bucket, "--bucket", settings.output_bucket]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_until_serving(url, process=process)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STORAGE_EMULATOR_HOST", url)
            yield storage.Client(project="test", credentials=AnonymousCredentials())
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def empty_buckets(storage_client: storage.Client) -> storage.Client:
    # The emulator's own wipe endpoint: every object goes, the buckets stay.
    requests.get(f"{storage_client.api_endpoint}/wipe", params={"keep-buckets": "1"}, timeout=10).raise_for_status()
    return storage_client
