"""One typed settings object, read from the environment once at start-up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memegen.contract import MAX_EVENT_AGE_SECONDS, MAX_URL_TTL_SECONDS, UPLOAD_PREFIX
from memegen.errors import SettingsError


def _default_models() -> Path:
    """``models/`` beside the package in a function's source archive, else at the checkout's root."""
    package = Path(__file__).resolve().parent
    packaged = package.parent / "models"
    return packaged if packaged.is_dir() else package.parents[1] / "models"


MODELS_DIR = _default_models()
PREFIX = "MEMEGEN_"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults a deployment runs with.

    The environment variable of each field is its name in upper case with the
    ``MEMEGEN_`` prefix (``MEMEGEN_MIN_FACE``, say): ``env_names()`` lists them,
    and the infrastructure sets exactly those.
    """

    models_dir: Path = MODELS_DIR
    detector_dir: Path = MODELS_DIR / "blazeface"
    threads: int = 1
    min_face: float = 40.0
    # The engine also skips faces smaller than this share of the photo's short
    # side: background faces do not make the meme, and each halving of the
    # smallest face looked for costs about four times the detection time.
    min_face_fraction: float = 0.05
    max_bytes: int = 20_000_000
    max_pixels: int = 50_000_000
    max_side: int = 1600
    # Cloud side: buckets, object names, URL lifetimes, event age.
    input_bucket: str = "memegen-input"
    output_bucket: str = "memegen-output"
    upload_prefix: str = UPLOAD_PREFIX
    url_ttl_seconds: int = MAX_URL_TTL_SECONDS
    # How long the output bucket keeps a meme and its record (its lifecycle rule): the page says so.
    meme_retention_days: int = 30
    # Other captions of one photo (POST /v1/memes/{id}/versions): each is a meme's worth of work.
    max_versions: int = 50
    max_event_age_seconds: int = MAX_EVENT_AGE_SECONDS
    # The storage client retries a transient error itself for this long, then raises: well inside
    # both functions' timeouts (the api's is 30 s), so that the api can still answer 503 in time.
    storage_retry_seconds: float = 10.0
    # A transient error is raised for the platform to retry while the event is younger than
    # this; past it the upload is recorded as failed, so that no page waits for ever.
    retry_window_seconds: int = 3_600
    # The service account that signs URLs through the IAM signBlob API in the
    # cloud; empty where the credentials carry a private key (local runs).
    signing_service_account: str = ""

    def __post_init__(self) -> None:
        if self.threads < 1 or self.max_side < 16 or self.max_bytes < 1 or self.max_pixels < 1:
            raise SettingsError("threads, max_side, max_bytes and max_pixels must be positive")
        if not 0 < self.url_ttl_seconds <= MAX_URL_TTL_SECONDS:
            raise SettingsError(
                f"url_ttl_seconds must be between 1 and {MAX_URL_TTL_SECONDS} (a signed URL's lifetime)"
            )
        # NaN fails every comparison, so each bound is written to refuse it.
        if not (0 <= self.min_face < 100_000 and 0 <= self.min_face_fraction <= 1):
            raise SettingsError("min_face must be 0 or more pixels and min_face_fraction between 0 and 1")
        if not (self.min_face >= 1 or self.min_face_fraction > 0):
            # The detector's pyramid would go on halving the smallest face it looks for, for ever.
            raise SettingsError("min_face (1 px or more) or min_face_fraction (above 0) must bound the smallest face")
        if not 0 <= self.max_versions <= 1000:
            raise SettingsError("max_versions must be between 0 and 1000")
        if not 1 <= self.meme_retention_days <= 3650:
            raise SettingsError("meme_retention_days must be between 1 and 3650")
        if not 0 < self.storage_retry_seconds <= 60:
            raise SettingsError("storage_retry_seconds must be above 0 and at most 60")
        if not 1 <= self.max_event_age_seconds <= MAX_EVENT_AGE_SECONDS:
            raise SettingsError(
                f"max_event_age_seconds must be between 1 and {MAX_EVENT_AGE_SECONDS} (Eventarc's retry limit)"
            )
        if not 0 < self.retry_window_seconds <= self.max_event_age_seconds:
            raise SettingsError("retry_window_seconds must be between 1 and max_event_age_seconds")

    def smallest_face(self, width: int, height: int, *, scale: float = 1.0) -> float:
        """The smallest face width, in pixels of a picture decoded at ``scale`` of the upload, looked for."""
        return max(self.min_face * scale, self.min_face_fraction * min(width, height))

    @classmethod
    def env_names(cls) -> list[str]:
        """The environment variable of every setting."""
        return [PREFIX + field.name.upper() for field in dataclasses.fields(cls)]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (the process environment by default)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(PREFIX + field.name.upper())
            if raw is None:
                continue
            kind: type = type(field.default)
            try:
                values[field.name] = kind(raw)
            except ValueError as exc:
                raise SettingsError(f"{PREFIX}{field.name.upper()}={raw!r} is not a valid {kind.__name__}") from exc
        return cls(**values)  # type: ignore[arg-type]
