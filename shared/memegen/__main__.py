"""Command line.

    python -m memegen make PHOTO [-o OUT] [--top TEXT] [--bottom TEXT] [--format FORMAT] [--json] [--boxes]
    python -m memegen make DIR -o OUTDIR
    python -m memegen evaluate DIR [--json] [--plot FILE.png]

FORMAT is jpg (the default), png or webp; gif and webp-zoom make the zoom meme, an animation
from the whole photo onto a face.

Bad input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from memegen.contract import IMAGE_SUFFIXES, MEME_EXTENSIONS, MEME_FORMATS, MEME_TYPES
from memegen.errors import InputError, MemeGenError, OutputError
from memegen.meme.engine import Engine
from memegen.offline.evaluate import evaluate, plot_confusion
from memegen.runtime import tune_process
from memegen.settings import Settings
from memegen.vision.detect import FaceDetector
from memegen.vision.ensemble import Ensemble

USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memegen", description="MemeGen: photos in, memes out.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="make a meme of a photo, or of every photo in a folder")
    make.add_argument("source", type=Path, help="a photo, or a folder of photos")
    make.add_argument("-o", "--output", type=Path, help="the meme file (or folder, for a folder of photos)")
    make.add_argument("--top", help="your own top text instead of a chosen caption")
    make.add_argument("--bottom", help="your own bottom text instead of a chosen caption")
    make.add_argument(
        "--format",
        default="jpg",
        choices=MEME_FORMATS,
        help="the meme's format; gif and webp-zoom are the zoom meme, animated from the whole photo onto a face",
    )
    make.add_argument("--json", action="store_true", help="print the metadata record as one JSON object")
    make.add_argument("--boxes", action="store_true", help="mark each face with its label")
    ev = commands.add_parser("evaluate", help="accuracy of the ensemble on a folder-per-class set of faces")
    ev.add_argument("directory", type=Path, help="a folder of <label>/<image> files")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--plot", type=Path, metavar="FILE.png", help="write the confusion matrix as a picture")
    return parser


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    ensemble = Ensemble.from_dir(settings.models_dir, threads=settings.threads)
    detector = FaceDetector.from_dir(settings.detector_dir, threads=settings.threads, min_face=settings.min_face)
    report = evaluate(args.directory, ensemble=ensemble, detector=detector)
    if args.plot:
        plot_confusion(report.confusion, args.plot, title=f"{args.directory} (n={report.n}, acc={report.accuracy:.3f})")
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    print(f"{args.directory}: {report.n} faces", end=", ")
    print(f"accuracy {report.accuracy:.4f}, macro recall {report.macro_recall:.4f}")
    for label, recall in report.per_class.items():
        print(f"  {label:<9} recall {recall:.4f}")
    for name, (accuracy, macro) in report.members.items():
        print(f"  member {name} alone: accuracy {accuracy:.4f}, macro recall {macro:.4f}")
    if len(report.members) > 1:
        print(f"  ensemble over its best member: {100 * report.over_best_member:+.1f} points")
    if report.skipped:
        print(f"  skipped {len(report.skipped)} unreadable images")
    return 0


def _make_one(engine: Engine, source: Path, output: Path, args: argparse.Namespace) -> dict[str, object]:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}") from exc
    meme = engine.make(data, top=args.top, bottom=args.bottom, format=args.format, boxes=args.boxes)
    try:
        output.write_bytes(meme.image)
    except OSError as exc:
        # Not the photo's fault, and every later write would fail the same way: stop.
        raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
    return {**meme.metadata(), "output": str(output)}


def _make(args: argparse.Namespace, settings: Settings) -> int:
    extension = MEME_EXTENSIONS[MEME_TYPES[args.format]]
    engine = Engine.from_settings(settings)
    if not args.source.is_dir():
        output = args.output or args.source.with_name(f"{args.source.stem}-meme.{extension}")
        try:
            record = _make_one(engine, args.source, output, args)
        except InputError as exc:
            print(f"memegen: {args.source}: {exc}", file=sys.stderr)
            return USAGE_ERROR
        print(json.dumps(record) if args.json else output)
        return 0

    if args.output is None:
        print("memegen: making memes of a folder needs -o OUTDIR", file=sys.stderr)
        return USAGE_ERROR
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make the folder {args.output}: {exc.strerror}") from exc
    photos = sorted(p for p in args.source.iterdir() if p.is_file() and not p.name.startswith("."))
    done, failed, started = 0, 0, time.perf_counter()
    for index, photo in enumerate(photos, 1):
        print(f"\r[{index}/{len(photos)}] {photo.name[:50]:<50}", end="", file=sys.stderr, flush=True)
        try:
            record = _make_one(engine, photo, args.output / f"{photo.stem}-meme.{extension}", args)
        except InputError as exc:
            failed += 1
            print(f"\rmemegen: {photo}: {exc} (skipped)".ljust(70), file=sys.stderr)
            continue
        done += 1
        if args.json:
            print(json.dumps(record))
    seconds = time.perf_counter() - started
    ignored = sum(1 for p in photos if p.suffix.lower() not in IMAGE_SUFFIXES)
    print(
        f"\r{done} memes made, {failed} files skipped ({ignored} without an image suffix) "
        f"in {seconds:.1f} s -> {args.output}".ljust(70),
        file=sys.stderr,
    )
    return 0 if done or not photos else USAGE_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        tune_process()
        if args.command == "make":
            return _make(args, settings)
        return _evaluate(args, settings)
    except MemeGenError as exc:
        print(f"memegen: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
