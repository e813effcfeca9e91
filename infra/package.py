"""Build one source archive per Cloud Function: what it imports, and nothing else.

    python -m infra.package --out build/package

Each archive holds the function's ``main.py``, the library (``shared/memegen``
as ``memegen/``), the runtime ``requirements.txt`` and, for ``on_upload``, the
model files (the ensemble and the face detector fetched by ``make models``).
Archives are byte-for-byte reproducible (sorted names, fixed dates and modes)
and named by their content hash, so that the infrastructure redeploys a
function when, and only when, its code or models changed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("on_upload", "api")
DETECTOR = Path("models/blazeface/face_detection_full_range.tflite")
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Archive:
    """A built archive: the function it serves, its file, and its content hash."""

    function: str
    path: Path
    sha256: str


def _library() -> dict[str, Path]:
    package = ROOT / "shared" / "memegen"
    return {
        f"memegen/{path.relative_to(package).as_posix()}": path
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _models() -> dict[str, Path]:
    manifest = json.loads((ROOT / "models" / "ensemble.json").read_text())
    files = {"models/ensemble.json": ROOT / "models" / "ensemble.json"}
    files |= {f"models/{m['file']}": ROOT / "models" / m["file"] for m in manifest["members"]}
    detector = ROOT / DETECTOR
    if not detector.is_file():
        raise FileNotFoundError(f"{DETECTOR} is missing: run `make models` first")
    files[DETECTOR.as_posix()] = detector
    return files


def contents(function: str) -> dict[str, Path]:
    """Archive name -> source file, for one function."""
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; expected one of {FUNCTIONS}")
    files = {
        "main.py": ROOT / "functions" / function / "main.py",
        "requirements.txt": ROOT / "requirements.txt",
        **_library(),
    }
    if function == "on_upload":
        files |= _models()
    return files


def build(function: str, out: Path) -> Archive:
    """Write ``out/<function>-<hash>.zip`` and return it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, source in sorted(contents(function).items()):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{function}-{digest[:16]}.zip"
    path.write_bytes(data)
    for stale in out.glob(f"{function}-*.zip"):
        if stale != path:
            stale.unlink()
    return Archive(function, path, digest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    args = parser.parse_args(argv)
    for function in FUNCTIONS:
        archive = build(function, args.out)
        print(f"{archive.path} ({archive.path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
