"""A small load through the whole local stack (``make load`` runs 500): N uploads, exactly N memes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.load import run

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_24_uploads_8_at_a_time_give_exactly_24_memes(photos_dir: Path) -> None:
    figures = run(24, 8, photos_dir)
    assert figures["done"] == figures["memes"] == figures["records"] == 24, figures
    # The whole stack's memory (storage server, both functions, bridge): 746 and 777 MB measured in
    # two runs (2026-12-01, this machine kind). The bound leaves about 120 MB for another library
    # version or allocator; a leak of 6 MB an upload or more fails it. Below 300 MB, the sampler missed
    # processes (one function alone holds the models and the runtime).
    assert 300 < figures["peak_mb"] < 900, figures
