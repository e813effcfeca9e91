"""Command line: ``python -m memegen evaluate DIR [--json] [--plot FILE.png]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memegen.detect import FaceDetector
from memegen.ensemble import Ensemble
from memegen.errors import MemeGenError
from memegen.evaluate import evaluate, plot_confusion
from memegen.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memegen", description="MemeGen: photos in, memes out.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    else:
        print(f"{args.directory}: {report.n} faces", end=", ")
        print(f"accuracy {report.accuracy:.4f}, macro recall {report.macro_recall:.4f}")
        for label, recall in report.per_class.items():
            print(f"  {label:<9} recall {recall:.4f}")
        if report.skipped:
            print(f"  skipped {len(report.skipped)} unreadable images")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return _evaluate(args, settings)
    except MemeGenError as exc:
        print(f"memegen: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
