"""Where the captions went on every test photo: the band or bar of each, and how close a line came to a face.

    python -m scripts.layouts               # report (Markdown) to stdout
    python -m scripts.layouts --out DIR     # and each meme as DIR/<photo>.jpg, to look at

For each photo of MEMEGEN_PHOTOS, made with its bank's caption at the default settings: the
caption's bank, the faces, where the top and bottom captions went (``band``: on the picture,
``bar``: on a white bar added above or below it), the letters' size, and the largest share of a
face box any line covers (``memegen.meme.layout`` keeps it at 0; the issue allows a tenth).
Then how many photos took a bar. ``tests/meme/test_layout.py`` checks the same on every photo.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from memegen.contract import IMAGE_SUFFIXES
from memegen.meme.engine import Engine
from memegen.meme.layout import Box
from memegen.settings import Settings


def _cover(line: Box, face: Box) -> float:
    """The share of ``face`` that ``line`` covers."""
    across = max(0, min(line[0] + line[2], face[0] + face[2]) - max(line[0], face[0]))
    down = max(0, min(line[1] + line[3], face[1] + face[3]) - max(line[1], face[1]))
    return across * down / (face[2] * face[3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write each meme here as <photo>.jpg")
    args = parser.parse_args(argv)
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", ""))
    if not photos.is_dir():
        print("set MEMEGEN_PHOTOS to the test photos (the Makefile sets it to ../shared/photos)", file=sys.stderr)
        return 2
    engine = Engine.from_settings(Settings())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print("| photo | bank | faces | top | bottom | letters (px) | most of a face covered |")
    print("|---|---|---|---|---|---|---|")
    bars = {"top": 0, "bottom": 0}
    paths = sorted(path for path in photos.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    for path in paths:
        meme = engine.make(path.read_bytes())
        layout = meme.layout
        if args.out:
            (args.out / f"{path.name}.jpg").write_bytes(meme.image)
        places = {"top": "bar" if layout.bar_above else "band", "bottom": "bar" if layout.bar_below else "band"}
        for which, block in (("top", layout.top), ("bottom", layout.bottom)):
            if block is None:
                places[which] = "-"
            elif places[which] == "bar":
                bars[which] += 1
        sizes = "/".join(str(block.font.size) for block, _, _ in layout.placed())
        covered = max((_cover(line.box, face) for line in layout.lines() for face in layout.faces), default=0.0)
        print(
            f"| {path.name} | {meme.caption.bank} | {len(layout.faces)} | {places['top']} | {places['bottom']}"
            f" | {sizes} | {covered:.0%} |"
        )
    print(f"\n{len(paths)} photos: the top caption on a bar in {bars['top']}, the bottom one in {bars['bottom']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
