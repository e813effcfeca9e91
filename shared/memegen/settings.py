"""One typed settings object, read from the environment once at start-up."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
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
    and the infrastructure sets exactly those. Each field's ``meaning`` (its
    metadata) is what the README's table of settings says of it (``markdown_table``).
    """

    models_dir: Path = dataclasses.field(
        default=MODELS_DIR,
        metadata={
            "meaning": "The expression models and their manifest (`ensemble.json`): the checkout's `models/`,"
            " or the one beside the package in a function's archive."
        },
    )
    detector_dir: Path = dataclasses.field(
        default=MODELS_DIR / "blazeface",
        metadata={"meaning": "The BlazeFace face detector (`make models` fetches it)."},
    )
    threads: int = dataclasses.field(
        default=1,
        metadata={"meaning": "Threads of each TFLite interpreter (the detector's and every member's)."},
    )
    min_face: float = dataclasses.field(
        default=40.0,
        metadata={"meaning": "The smallest face looked for, in pixels of the upload."},
    )
    min_face_fraction: float = dataclasses.field(
        default=0.05,
        metadata={
            "meaning": "The engine also skips faces smaller than this share of the photo's short side:"
            " background faces do not make the meme, and each halving of the smallest face looked for costs"
            " about four times the detection time (0 looks for `min_face` faces even in a 12 MP photo, at a"
            " much higher cost)."
        },
    )
    max_bytes: int = dataclasses.field(
        default=20_000_000,
        metadata={"meaning": "The largest upload, in bytes."},
    )
    max_pixels: int = dataclasses.field(
        default=50_000_000,
        metadata={"meaning": "The most pixels an upload's image may declare (refused before decoding)."},
    )
    max_side: int = dataclasses.field(
        default=1600,
        metadata={"meaning": "The meme's long side, in pixels."},
    )
    # Cloud side: buckets, object names, URL lifetimes, event age.
    input_bucket: str = dataclasses.field(
        default="memegen-input",
        metadata={"meaning": "The bucket people's photos are uploaded to."},
    )
    output_bucket: str = dataclasses.field(
        default="memegen-output",
        metadata={"meaning": "The bucket of the memes and their records."},
    )
    upload_prefix: str = dataclasses.field(
        default=UPLOAD_PREFIX,
        metadata={"meaning": "Where uploads go in the input bucket; events of other objects are skipped."},
    )
    url_ttl_seconds: int = dataclasses.field(
        default=MAX_URL_TTL_SECONDS,
        metadata={"meaning": f"How long a signed URL lives, in seconds ({MAX_URL_TTL_SECONDS} at most)."},
    )
    meme_retention_days: int = dataclasses.field(
        default=30,
        metadata={
            "meaning": "How long the output bucket keeps a meme and its records (its lifecycle rule), in days:"
            " the page says so, and the stack sets it from the rule."
        },
    )
    max_versions: int = dataclasses.field(
        default=50,
        metadata={
            "meaning": "Other captions of one photo (`POST /v1/memes/{id}/versions`), each a meme's worth of"
            " work; past them the api answers 409."
        },
    )
    max_event_age_seconds: int = dataclasses.field(
        default=MAX_EVENT_AGE_SECONDS,
        metadata={
            "meaning": f"Older upload events are skipped, in seconds ({MAX_EVENT_AGE_SECONDS} at most:"
            " Eventarc's retry limit)."
        },
    )
    storage_retry_seconds: float = dataclasses.field(
        default=10.0,
        metadata={
            "meaning": "The storage client retries a transient error itself for this long, in seconds, then"
            " raises: well inside both functions' timeouts (the api's is 30 s), so that the api can still"
            " answer 503 in time."
        },
    )
    retry_window_seconds: int = dataclasses.field(
        default=3_600,
        metadata={
            "meaning": "A transient error is raised for the platform to retry while the event is younger than"
            " this, in seconds; past it the upload is recorded as failed, so that no page waits for ever."
        },
    )
    signing_service_account: str = dataclasses.field(
        default="",
        metadata={
            "meaning": "The service account that signs URLs through the IAM signBlob API in the cloud; empty"
            " where the credentials carry a private key (local runs)."
        },
    )

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


MARKERS = ("<!-- settings:table -->", "<!-- /settings:table -->")


def _shown(value: object) -> str:
    """A default as the table shows it: a path from the folder that holds ``models/``, on any machine."""
    if isinstance(value, Path):
        return f"`{value.relative_to(MODELS_DIR.parent).as_posix()}/`"
    if isinstance(value, str):
        return f"`{value}`" if value else "(empty)"
    return str(value)


def markdown_table() -> str:
    """Every setting as a Markdown table: its environment variable, type, default and meaning.

    The README's list is this table, between its ``settings:table`` markers (``make docs``).
    """
    rows = ["| variable | type | default | what it sets |", "|---|---|---|---|"]
    for field in dataclasses.fields(Settings):
        meaning = field.metadata["meaning"].replace("|", "\\|")
        rows.append(f"| `{PREFIX}{field.name.upper()}` | {field.type} | {_shown(field.default)} | {meaning} |")
    return "\n".join(rows)


def write_readme(path: Path) -> bool:
    """Put ``markdown_table()`` between the settings markers of ``path``; False where it has none."""
    text = path.read_text()
    start, end = MARKERS
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    path.write_text(head + start + "\n" + markdown_table() + "\n" + end + rest.split(end, 1)[1])
    return True


def main(argv: list[str] | None = None) -> int:
    """Print the settings table, or write it into a README's markers (``--readme``)."""
    parser = argparse.ArgumentParser(description="The settings as the README's Markdown table.")
    parser.add_argument("--readme", type=Path, help="rewrite the table between this file's settings markers")
    args = parser.parse_args(argv)
    if args.readme is None:
        print(markdown_table())
        return 0
    if not write_readme(args.readme):
        print(f"{args.readme}: no {MARKERS[0]} ... {MARKERS[1]} markers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
