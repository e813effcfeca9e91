"""One typed settings object, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from memegen.errors import MemeGenError

_MODELS = Path(__file__).resolve().parents[2] / "models"


class SettingsError(MemeGenError):
    """An environment variable holds a value MemeGen cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults a deployment runs with.

    The environment variable of each field is its name in upper case with the
    ``MEMEGEN_`` prefix (``MEMEGEN_MIN_FACE``, say).
    """

    models_dir: Path = _MODELS
    detector_dir: Path = _MODELS / "blazeface"
    threads: int = 1
    min_face: float = 40.0
    max_bytes: int = 20_000_000
    max_pixels: int = 50_000_000
    max_side: int = 1600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (the process environment by default)."""
        env = os.environ if environ is None else environ
        try:
            return cls(
                models_dir=Path(env.get("MEMEGEN_MODELS_DIR", str(cls.models_dir))),
                detector_dir=Path(env.get("MEMEGEN_DETECTOR_DIR", str(cls.detector_dir))),
                threads=int(env.get("MEMEGEN_THREADS", cls.threads)),
                min_face=float(env.get("MEMEGEN_MIN_FACE", cls.min_face)),
                max_bytes=int(env.get("MEMEGEN_MAX_BYTES", cls.max_bytes)),
                max_pixels=int(env.get("MEMEGEN_MAX_PIXELS", cls.max_pixels)),
                max_side=int(env.get("MEMEGEN_MAX_SIDE", cls.max_side)),
            )
        except ValueError as exc:
            raise SettingsError(f"bad MemeGen setting: {exc}") from exc
