"""``python -m local.run``: the whole stack on one machine, a real photo through it, and a clean stop."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from local.stack import ROOT, running_stack
from memegen.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROC = Path("/proc")


def descendants(pid: int) -> set[int]:
    """Every process under ``pid``, from /proc (their parent ids)."""
    parents: dict[int, int] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it exited while we looked
        # The command name, in parentheses, may hold spaces: the fields after it are fixed.
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        state = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not PROC.is_dir(), reason="reads the process tree from /proc")
def test_the_stack_makes_a_meme_and_stops_cleanly(settings: Settings, photos_dir: Path, tmp_path: Path) -> None:
    with running_stack(tmp_path / "key.json") as stack:
        children = descendants(stack.process.pid)
        assert len(children) >= 5  # the emulator, two function servers (and their workers), the bridge
        assert requests.get(stack.page, timeout=10).status_code == 200

        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{stack.storage_port}"},
        )
        upload_id = uuid.uuid4().hex
        blob = client.bucket(settings.input_bucket).blob(f"{settings.upload_prefix}{upload_id}")
        blob.upload_from_string((photos_dir / "obama-480p.jpg").read_bytes(), content_type="image/jpeg")
        record_blob = client.bucket(settings.output_bucket).blob(f"records/{upload_id}/{blob.generation}.json")
        deadline = time.monotonic() + 30
        while not record_blob.exists():
            assert time.monotonic() < deadline, "no record within 30 s"
            time.sleep(0.2)
        record = json.loads(record_blob.download_as_bytes())
        assert record["status"] == "done" and len(record["faces"]) == 1
        assert client.bucket(settings.output_bucket).blob(record["meme"]).exists()
    assert stack.status == 0, "".join(stack.output)
    assert "stopped" in stack.output[-1]
    assert not [pid for pid in children if running(pid)], "left running after Ctrl-C"


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A second `make run` must not pass the first one's page off as its own."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "local.run", f"--api-port={port}", f"--key={tmp_path / 'key.json'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "taken" in result.stderr
    assert "MemeGen is running" not in result.stdout
    assert time.monotonic() - started < 30  # refused at once: nothing was started and waited for
