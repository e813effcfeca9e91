"""Shared fixtures: the real models, the real photos and datasets beside the checkout, and the real
storage server.

``storage_client`` (session): a ``google.cloud.storage.Client`` (project "test", anonymous
credentials) talking to ``local.emulator`` (gcp-storage-emulator) in a subprocess on a free port,
with the settings' input and output buckets made, which checks signed URLs against
``signing_key_file`` (session: a development key); STORAGE_EMULATOR_HOST points at it for the
whole session. ``empty_buckets``: the same client, both buckets emptied first.

Markers: ``slow`` (minutes of work) and ``integration`` (needs a server in a process of its own: the
storage server, a function served by functions-framework, the whole stack, a browser). Every test that
uses ``storage_client``, directly or through another fixture, is marked ``integration`` here; the
modules that start their own servers mark themselves. ``make test-fast`` leaves both out.

The tests are in folders by the library's layers (``vision/``, ``meme/``, ``cloud/``, ``offline/``; the
base at the top), ``e2e/`` for the whole stack in processes, ``train/`` for the training tools; what
they share besides fixtures is ``tests/support.py``.

``tests/train/`` (the training tools' tests) needs PyTorch: where it is missing (``.venv``) that folder
is not collected, and the report's header says so; ``make test`` runs it in ``.venv-train``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from local.devkey import write_key
from local.stack import free_port, wait_until_serving
from memegen.cloud.storage import Store
from memegen.meme.captions import CaptionBank
from memegen.meme.engine import Engine
from memegen.settings import Settings
from memegen.vision.detect import FaceDetector
from memegen.vision.ensemble import MANIFEST, Ensemble
from tests.support import ROOT, data_dir

TRAINING_STACK = importlib.util.find_spec("torch") is not None
collect_ignore = [] if TRAINING_STACK else ["train"]
# The fixture whose tests need the storage server (each fixture that starts it depends on it).
STORAGE_SERVER = "storage_client"


def pytest_report_header(config: pytest.Config) -> str | None:
    if TRAINING_STACK:
        return None
    return "tests/train/: not collected, no PyTorch here (make test-train runs it in .venv-train)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if STORAGE_SERVER in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return data_dir("MEMEGEN_PHOTOS", "the test photos")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return data_dir("MEMEGEN_DATASETS", "the expression datasets")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def detector(settings: Settings) -> FaceDetector:
    return FaceDetector.from_dir(settings.detector_dir)


@pytest.fixture(scope="session")
def ensemble(settings: Settings) -> Ensemble:
    if not (settings.models_dir / MANIFEST).exists():
        pytest.fail(f"{settings.models_dir / MANIFEST} is missing: the ensemble must be committed")
    return Ensemble.from_dir(settings.models_dir)


@pytest.fixture(scope="module")
def engine(detector: FaceDetector, ensemble: Ensemble, settings: Settings) -> Engine:
    """The real engine with the settings from the environment (test_engine.py has its own, on the defaults)."""
    return Engine(detector=detector, ensemble=ensemble, captions=CaptionBank.load(), settings=settings)


@pytest.fixture(scope="session")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The development key of the session: URLs are signed with it, and the storage server checks them."""
    path = tmp_path_factory.mktemp("signing") / "dev-key.json"
    write_key(path)
    return path


@pytest.fixture(scope="session")
def signer(signing_key_file: Path) -> service_account.Credentials:
    """The development key the storage server checks signed URLs against, as signing credentials."""
    return service_account.Credentials.from_service_account_file(str(signing_key_file))


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


@pytest.fixture
def store(empty_buckets: storage.Client, settings: Settings) -> Store:
    """A Store on the emptied buckets, as the worker and the api use it (test_storage.py's signs with a key)."""
    return Store(empty_buckets, settings)
