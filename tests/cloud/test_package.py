"""The deployable archive stands on its own: unpacked into an empty folder, served by
functions-framework with only that folder for MemeGen's code, it makes a meme of a real photo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_structured
from google.cloud import storage

from infra.package import build
from local.bridge import finalized_event, object_data
from local.stack import free_port, wait_until_serving
from memegen.settings import Settings


def isolated_env(folder: Path, storage_url: str, settings: Settings) -> dict[str, str]:
    """Python without site processing (so no .pth puts shared/ on the path): the archive, then the packages."""
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(folder), sysconfig.get_paths()["purelib"]]),
        "STORAGE_EMULATOR_HOST": storage_url,
        "MEMEGEN_INPUT_BUCKET": settings.input_bucket,
        "MEMEGEN_OUTPUT_BUCKET": settings.output_bucket,
    }


def test_the_on_upload_archive_makes_a_meme_on_its_own(
    empty_buckets: storage.Client,
    settings: Settings,
    photos_dir: Path,
    tmp_path: Path,
) -> None:
    archive = build("on_upload", tmp_path / "package")
    folder = tmp_path / "function"
    with zipfile.ZipFile(archive.path) as zipped:
        names = zipped.namelist()
        zipped.extractall(folder)
    assert "main.py" in names and "requirements.txt" in names and "models/ensemble.json" in names
    assert not [n for n in names if n.startswith(("tests/", "local/", "infra/")) or "__pycache__" in n]
    # The ensemble travels in the archive: it stays under 30 MB (issue 11), members and detector included.
    assert archive.path.stat().st_size < 30_000_000
    env = isolated_env(folder, empty_buckets.api_endpoint, settings)

    where = subprocess.run(
        [sys.executable, "-S", "-c", "import memegen, main; print(memegen.__file__, main.services()[0].models_dir)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(folder / "memegen" / "__init__.py"), str(folder / "models")]

    port = free_port()
    command = [sys.executable, "-S", "-m", "functions_framework", "--target=on_upload"]
    command += [f"--source={folder / 'main.py'}", "--signature-type=cloudevent", "--host=127.0.0.1", f"--port={port}"]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The stack's own startup bound: a busy machine (a training beside the suite) took over 30 s.
        wait_until_serving(f"http://127.0.0.1:{port}/", process=server)
        upload_id = uuid.uuid4().hex
        blob = empty_buckets.bucket(settings.input_bucket).blob(f"{settings.upload_prefix}{upload_id}")
        blob.upload_from_string((photos_dir / "obama-480p.jpg").read_bytes(), content_type="image/jpeg")
        headers, body = to_structured(finalized_event(object_data(blob)))
        response = requests.post(f"http://127.0.0.1:{port}/", headers=headers, data=body, timeout=60)
        assert response.status_code == 200, response.text
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    records = list(empty_buckets.list_blobs(settings.output_bucket, prefix=f"records/{upload_id}/"))
    assert len(records) == 1, output
    record = json.loads(records[0].download_as_bytes())
    assert record["status"] == "done" and len(record["faces"]) == 1, record
    assert empty_buckets.bucket(settings.output_bucket).blob(record["meme"]).exists()


def test_the_api_archive_holds_no_models(tmp_path: Path) -> None:
    archive = build("api", tmp_path)
    with zipfile.ZipFile(archive.path) as zipped:
        names = zipped.namelist()
    assert "main.py" in names and "memegen/cloud/static/index.html" in names
    assert not [n for n in names if n.startswith("models/")]
    assert archive.path.stat().st_size < 1_000_000


@pytest.mark.parametrize("function", ["on_upload", "api"])
def test_archives_are_reproducible(function: str, tmp_path: Path) -> None:
    first = build(function, tmp_path / "a")
    again = build(function, tmp_path / "b")
    assert first.sha256 == again.sha256 and first.path.name == again.path.name
