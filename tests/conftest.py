"""Shared fixtures: the real models, the real photos and datasets beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memegen.detect import FaceDetector
from memegen.ensemble import MANIFEST, Ensemble
from memegen.settings import Settings

# The real storage server's fixtures, for every test module (storage_client and empty_buckets
# need the session's signing key too).
from tests.storage_server import empty_buckets, signing_key_file, storage_client  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def _data_dir(variable: str, what: str) -> Path:
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{what} not available: set {variable} to the folder (CI sets it to ../shared)")
    return Path(value)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return _data_dir("MEMEGEN_PHOTOS", "the test photos")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return _data_dir("MEMEGEN_DATASETS", "the expression datasets")


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
