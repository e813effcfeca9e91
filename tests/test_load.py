"""A small load through the whole local stack (``make load`` runs 500): N uploads, exactly N memes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load import run

pytestmark = pytest.mark.slow


def test_24_uploads_8_at_a_time_give_exactly_24_memes(photos_dir: Path) -> None:
    figures = run(24, 8, photos_dir)
    assert figures["done"] == figures["memes"] == figures["records"] == 24, figures
    assert figures["peak_mb"] > 0
