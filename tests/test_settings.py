"""The settings object: names, types, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from memegen.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.url_ttl_seconds <= 900


def test_reads_typed_values() -> None:
    env = {"MEMEGEN_MIN_FACE": "25.5", "MEMEGEN_THREADS": "2", "MEMEGEN_MODELS_DIR": "/x", "MEMEGEN_INPUT_BUCKET": "b"}
    settings = Settings.from_env(env)
    assert settings.min_face == 25.5 and settings.threads == 2
    assert settings.models_dir == Path("/x") and settings.input_bucket == "b"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEMEGEN_THREADS", "many"),
        ("MEMEGEN_THREADS", "0"),
        ("MEMEGEN_URL_TTL_SECONDS", "3600"),
        ("MEMEGEN_MIN_FACE", "-1"),
        ("MEMEGEN_MIN_FACE", "nan"),
        ("MEMEGEN_MIN_FACE_FRACTION", "-0.1"),
        ("MEMEGEN_MIN_FACE_FRACTION", "1.5"),
        ("MEMEGEN_MIN_FACE_FRACTION", "nan"),
        ("MEMEGEN_MAX_EVENT_AGE_SECONDS", "-5"),
        ("MEMEGEN_MAX_EVENT_AGE_SECONDS", "0"),
    ],
)
def test_refuses_bad_values(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({name: value})


def test_refuses_settings_that_would_never_finish_a_photo() -> None:
    """No smallest face at all: the detector's pyramid would halve for ever."""
    with pytest.raises(SettingsError, match="bound the smallest face"):
        Settings.from_env({"MEMEGEN_MIN_FACE": "0", "MEMEGEN_MIN_FACE_FRACTION": "0"})
    assert Settings.from_env({"MEMEGEN_MIN_FACE": "0"}).min_face_fraction > 0
    assert Settings.from_env({"MEMEGEN_MIN_FACE_FRACTION": "0"}).min_face >= 1


def test_every_field_has_one_environment_name() -> None:
    names = Settings.env_names()
    assert len(names) == len(set(names)) and all(n.startswith("MEMEGEN_") for n in names)
    assert "MEMEGEN_OUTPUT_BUCKET" in names
