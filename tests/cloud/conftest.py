"""The api function's fixtures: the function in process, the key it signs with, an upload's flow.

``app`` is functions-framework's app of ``functions/api/main.py``, whose test client checks every
answer to a documented path against the api's own OpenAPI document (``tests.support.ContractClient``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask
import functions_framework
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from google.cloud import storage

from local.emulator import public_key_of
from memegen.cloud.storage import Store
from memegen.meme.engine import Engine
from memegen.settings import Settings
from tests.support import (
    API_SOURCE,
    ContractClient,
    Flow,
)

# The key pair the function signs with: a development key file, as a local run has.


@pytest.fixture(scope="module")
def key_file(signing_key_file: Path) -> Path:
    """The key the storage server checks signed URLs against."""
    return signing_key_file


@pytest.fixture(scope="module")
def public_key(key_file: Path) -> rsa.RSAPublicKey:
    return public_key_of(key_file)


@pytest.fixture(scope="module")
def app(storage_client: storage.Client, key_file: Path) -> Iterator[flask.Flask]:
    # The function's services() reads the environment at its first request, so it is set for the
    # module: storage_client has pointed STORAGE_EMULATOR_HOST at the emulator for the whole session.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        patch.delenv("MEMEGEN_SIGNING_SERVICE_ACCOUNT", raising=False)
        app = functions_framework.create_app(target="api", source=str(API_SOURCE))
        app.test_client_class = ContractClient
        yield app


@pytest.fixture
def client(app: flask.Flask, empty_buckets: storage.Client) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def input_bucket(empty_buckets: storage.Client, settings: Settings) -> storage.Bucket:
    return empty_buckets.bucket(settings.input_bucket)


@pytest.fixture
def flow(client: FlaskClient, store: Store, input_bucket: storage.Bucket, settings: Settings, engine: Engine) -> Flow:
    return Flow(client, store, input_bucket, settings, engine)
