"""`python -m memegen make`: one photo, a folder, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from tests.support import run_cli


def test_make_one_photo_with_json(photos_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "meme.jpg"
    result = run_cli("make", str(photos_dir / "obama.jpg"), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert {"faces", "caption", "output", "timings_ms"} <= set(record)
    assert record["output"] == str(out) and out.read_bytes()[:2] == b"\xff\xd8"
    assert {"box", "label", "scores"} <= set(record["faces"][0])


def test_make_a_folder_skips_bad_files(photos_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name in ("obama-240p.jpg", "two_people.jpg"):
        shutil.copy(photos_dir / name, source)
    (source / "notes.txt").write_text("not a photo")
    (source / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run_cli("make", str(source), "-o", str(tmp_path / "out"), "--format", "png")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["obama-240p-meme.png", "two_people-meme.png"]
    assert "2 memes made, 2 files skipped" in result.stderr
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr


def test_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "fake.jpg"
    bad.write_text("this is text")
    for args in (("make", str(bad)), ("make", str(tmp_path / "missing.jpg"))):
        result = run_cli(*args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert str(args[1]) in lines[0]


def test_an_output_that_cannot_be_written_is_one_line_and_status_2(photos_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    for args in (
        ("make", str(photos_dir / "obama-240p.jpg"), "-o", str(tmp_path / "missing" / "meme.jpg")),
        ("make", str(photos_dir), "-o", str(tmp_path / "a-file" / "out")),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and "cannot" in lines[-1] and len(lines) == 1, result.stderr


def test_a_cyrillic_caption_is_drawn_and_emoji_are_refused_in_one_line(photos_dir: Path, tmp_path: Path) -> None:
    drawn = run_cli("make", str(photos_dir / "obama-240p.jpg"), "--top", "Привет", "-o", str(tmp_path / "ru.jpg"))
    assert drawn.returncode == 0, drawn.stderr
    refused = run_cli("make", str(photos_dir / "obama-240p.jpg"), "--top", "party 🎉", "-o", str(tmp_path / "x.jpg"))
    assert refused.returncode == 2 and not (tmp_path / "x.jpg").exists()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot draw" in lines[0] and "Cyrillic" in lines[0], refused.stderr


def test_format_gif_makes_a_zoom_meme_and_a_photo_without_a_face_is_one_line(photos_dir: Path, tmp_path: Path) -> None:
    shutil.copy(photos_dir / "obama-240p.jpg", tmp_path / "obama.jpg")
    made = run_cli("make", str(tmp_path / "obama.jpg"), "--format", "gif", "--json")
    assert made.returncode == 0, made.stderr
    record = json.loads(made.stdout)
    out = tmp_path / "obama-meme.gif"
    assert record["output"] == str(out) and record["content_type"] == "image/gif" and record["zoom"]["face"] == 0
    with Image.open(out) as image:
        assert image.format == "GIF" and getattr(image, "n_frames", 1) == record["zoom"]["frames"] >= 10
    Image.new("RGB", (400, 300), (90, 120, 150)).save(tmp_path / "sky.png")
    refused = run_cli("make", str(tmp_path / "sky.png"), "--format", "webp-zoom")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "no face to zoom onto" in lines[0], refused.stderr
    assert not (tmp_path / "sky-meme.webp").exists()
