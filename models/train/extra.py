"""Copy a labelled expression set out of a fetched repository snapshot into our folder-per-class layout.

The fetch tool hands over a bare git directory (no work tree); this reads the files straight from it
with ``git ls-tree`` and ``git cat-file`` and writes ``OUT/<label>/<PERSON>.<rest>.<ext>``, a name that
``memegen.offline.datasets.identity_of`` reads the person from, so splits stay person-disjoint.

    python -m models.train.extra --mirror /work/.mirror/owner+name/... --set kmu-fed --out models/work/extra/kmu-fed

Held-out sets are never read: any path that names CK+ / Cohn-Kanade or a Taiwanese set (TFEID and the
like) is dropped on its name alone, before its bytes are fetched, and so is anything that looks like
FER2013 (we already train on it). The images are copied byte for byte; ``OUT`` lives under the
git-ignored ``models/work/`` and must never be committed. Contempt has no class of ours and is dropped.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from memegen.labels import LABELS
from memegen.offline.datasets import identity_of

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# Judged on these: never used in any form, not even opened (matched on the path, before reading a byte).
HELD_OUT = re.compile(r"(?i)(ck\+|ckplus|ck_plus|ck-plus|(^|/)ck(48)?(/|_)|cohn|kanade|tfeid|taiwan)")
# Already ours (FER2013 and its relabellings, the muxspace collection): overlap would leak validation.
OURS = re.compile(r"(?i)(fer[-_ ]?2013|ferplus|fer\+|muxspace|(^|/)legend\.csv$)")


@dataclass(frozen=True)
class Entry:
    """One labelled image found in the snapshot's tree."""

    path: str  # path inside the repository
    sha: str  # blob id
    label: str  # one of LABELS
    person: str  # identity, no "." or "/" in it
    sequence: str  # frames of one recorded sequence share this (the file's own path where there is none)
    frame: int  # order within the sequence
    name: str  # output file name, PERSON.rest.ext


Parser = Callable[[str, str], Entry | None]


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", text)


# --- KMU-FED: Keimyung University Facial Expression of Drivers (Korean, near-infrared, in a car) ----------
# Files such as 01_AN_mr_001.jpg: <subject number>_<class>_<subject initials>_<frame>. The initials are the
# person (the numbers are reported to be inconsistent between subjects); six classes, no neutral.
_KMU = re.compile(r"^(\d+)_(AN|DI|FE|HA|SA|SU)_([A-Za-z]+)_(\d+)\.(jpe?g|png|bmp)$", re.IGNORECASE)
_KMU_LABEL = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "SA": "sad", "SU": "surprise"}


def parse_kmu_fed(path: str, sha: str) -> Entry | None:
    """A KMU-FED frame, or None for any other file."""
    m = _KMU.match(PurePosixPath(path).name)
    if not m:
        return None
    number, code, initials, frame, ext = m.groups()
    person = "KMU" + _clean(initials.lower())
    label = _KMU_LABEL[code.upper()]
    return Entry(
        path=path,
        sha=sha,
        label=label,
        person=person,
        sequence=f"{person}-{code.upper()}-{number}",
        frame=int(frame),
        name=f"{person}.{code.upper()}.{int(number):02d}.{int(frame):03d}.{ext.lower()}",
    )


# --- KDEF: Karolinska Directed Emotional Faces (Swedish adults, posed, 562x762 colour) --------------------
# AF01ANS.JPG: session A/B, F/M, subject 01, expression, view (S straight, HL/HR half, FL/FR full profile).
_KDEF = re.compile(r"^([AB])([FM])(\d\d)(AF|AN|DI|HA|NE|SA|SU)(S|HL|HR|FL|FR)\.(jpe?g)$", re.IGNORECASE)
_KDEF_LABEL = {
    "AF": "fear",
    "AN": "angry",
    "DI": "disgust",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
KDEF_VIEWS = {"S"}  # straight views only: the profiles are far from what users upload


def parse_kdef(path: str, sha: str) -> Entry | None:
    """A straight-view KDEF photo, or None."""
    m = _KDEF.match(PurePosixPath(path).name)
    if not m:
        return None
    session, sex, number, code, view, ext = (g.upper() for g in m.groups())
    if view not in KDEF_VIEWS:
        return None
    person = f"KDEF{sex}{number}"  # the same person in sessions A and B
    return Entry(path, sha, _KDEF_LABEL[code], person, path, 0, f"{person}.{session}{code}{view}.{ext.lower()}")


# --- RaFD: Radboud Faces Database (Dutch Caucasian and Moroccan-Dutch adults, children; posed) ------------
# Rafd090_49_Moroccan_male_happy_frontal.jpg: camera angle, subject, group, sex, expression, gaze.
_RAFD = re.compile(
    r"^Rafd(\d{3})_(\d+)_([A-Za-z]+)_(male|female)_"
    r"(angry|contemptuous|disgusted|fearful|happy|neutral|sad|surprised)_(frontal|left|right)\.(jpe?g|png)$",
    re.IGNORECASE,
)
_RAFD_LABEL = {
    "angry": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "surprised": "surprise",
}
RAFD_ANGLES = {"090"}  # the frontal camera


def parse_rafd(path: str, sha: str) -> Entry | None:
    """A frontal-camera RaFD photo (contempt dropped), or None."""
    m = _RAFD.match(PurePosixPath(path).name)
    if not m:
        return None
    angle, number, group, _sex, expression, gaze, ext = m.groups()
    label = _RAFD_LABEL.get(expression.lower())
    if label is None or angle not in RAFD_ANGLES:
        return None
    person = f"RaFD{int(number):02d}"
    rest = f"{_clean(group)}.{expression.lower()}.{gaze.lower()}"
    return Entry(path, sha, label, person, path, 0, f"{person}.{angle}.{rest}.{ext.lower()}")


# --- Oulu-CASIA VIS (Finnish and Chinese adults, posed sequences from neutral to apex) --------------------
# .../VL/Strong/P001/Anger/000.jpeg: visible light only; the label is the folder, the person P001.
_OULU = re.compile(r"(?i)(^|/)VL/(Strong|Weak|Dark)/(P\d{3})/(Anger|Disgust|Fear|Happiness|Sadness|Surprise)/(\d+)\.")
_OULU_LABEL = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprise": "surprise",
}


def parse_oulu_casia(path: str, sha: str) -> Entry | None:
    """A visible-light Oulu-CASIA frame, or None."""
    m = _OULU.search(path)
    if not m:
        return None
    _, light, subject, expression, frame = m.groups()
    person = "OULU" + subject.upper()
    ext = PurePosixPath(path).suffix.lower()
    return Entry(
        path=path,
        sha=sha,
        label=_OULU_LABEL[expression.lower()],
        person=person,
        sequence=f"{person}-{light}-{expression}",
        frame=int(frame),
        name=f"{person}.{light.lower()}.{expression.lower()}.{int(frame):03d}{ext}",
    )


@dataclass(frozen=True)
class SetSpec:
    """How to recognise one named set's files, and which frames of a sequence carry its label."""

    parse: Parser
    population: str
    sequences: bool  # frames of recorded sequences, from a neutral onset to the apex


SETS: dict[str, SetSpec] = {
    "kmu-fed": SetSpec(parse_kmu_fed, "Korean adults, near-infrared in-car camera", sequences=True),
    "kdef": SetSpec(parse_kdef, "Swedish adults, posed, studio", sequences=False),
    "rafd": SetSpec(parse_rafd, "Dutch (Caucasian, Moroccan-Dutch) adults and children, posed", sequences=False),
    "oulu-casia": SetSpec(parse_oulu_casia, "Finnish and Chinese adults, posed sequences", sequences=True),
}


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={mirror}", *args], check=True, capture_output=True).stdout


def tree(mirror: Path, rev: str) -> Iterator[tuple[str, str]]:
    """(path, blob id) of every file in the snapshot at ``rev``."""
    out = _git(mirror, "ls-tree", "-r", "-z", "--full-tree", rev)
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, path = record.split(b"\t", 1)
        _mode, kind, sha = meta.decode().split()
        if kind == "blob":
            yield path.decode("utf-8", "surrogateescape"), sha


def blobs(mirror: Path, shas: list[str]) -> Iterator[tuple[str, bytes]]:
    """The bytes of each blob, in order, through one ``git cat-file --batch``."""
    proc = subprocess.Popen(
        ["git", f"--git-dir={mirror}", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for sha in shas:
            proc.stdin.write(sha.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                yield sha, b""
                continue
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)  # the newline after each object
            yield sha, data
    finally:
        proc.stdin.close()
        proc.wait()


def copies(entries: list[Entry]) -> list[str]:
    """The folders that hold a second copy of the same images (e.g. raw frames and aligned crops), if any."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_name[entry.name].append(entry.path)
    roots: set[str] = set()
    for paths in by_name.values():
        if len(paths) < 2:
            continue
        parts = [p.split("/") for p in paths]
        common = 0
        while all(len(q) > common and q[-1 - common] == parts[0][-1 - common] for q in parts):
            common += 1
        roots.update("/".join(q[: len(q) - common]) or "." for q in parts)
    return sorted(roots)


def select(entries: list[Entry], tail: float) -> list[Entry]:
    """One copy per output name, and of each sequence only its last ``tail`` share of frames (the apex end)."""
    unique: dict[str, Entry] = {}
    for entry in sorted(entries, key=lambda e: e.path):
        unique.setdefault(entry.name, entry)
    if tail >= 1.0:
        return sorted(unique.values(), key=lambda e: e.name)
    by_sequence: dict[str, list[Entry]] = defaultdict(list)
    for entry in unique.values():
        by_sequence[entry.sequence].append(entry)
    kept: list[Entry] = []
    for frames in by_sequence.values():
        frames.sort(key=lambda e: e.frame)
        keep = max(1, round(len(frames) * tail))
        kept.extend(frames[-keep:])
    return sorted(kept, key=lambda e: e.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True, help="the bare git directory fetch returned")
    parser.add_argument("--set", dest="name", choices=sorted(SETS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="e.g. models/work/extra/NAME")
    parser.add_argument("--rev", default="HEAD", help="commit or ref to read (default HEAD)")
    parser.add_argument("--under", default="", help="only paths below this folder of the repository")
    parser.add_argument(
        "--tail",
        type=float,
        default=None,
        help="share of each sequence's frames kept, from the apex end (default 0.5 for sequence sets, else 1)",
    )
    parser.add_argument("--replace", action="store_true", help="delete OUT first if it holds anything")
    args = parser.parse_args(argv)
    spec = SETS[args.name]
    tail = args.tail if args.tail is not None else (0.5 if spec.sequences else 1.0)

    if not (args.mirror / "HEAD").exists():
        print(f"error: {args.mirror} is not a git directory", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        if not args.replace:
            print(f"error: {args.out} is not empty (pass --replace)", file=sys.stderr)
            return 2
        shutil.rmtree(args.out)
    commit = _git(args.mirror, "rev-parse", args.rev).decode().strip()
    under = args.under.strip("/")

    found: list[Entry] = []
    held_out = ours = 0
    for path, sha in tree(args.mirror, commit):
        if under and not (path == under or path.startswith(under + "/")):
            continue
        if not path.lower().endswith(IMAGE_EXTS):
            continue
        if HELD_OUT.search(path):
            held_out += 1  # never fetched, never opened
            continue
        if OURS.search(path):
            ours += 1
            continue
        entry = spec.parse(path, sha)
        if entry is not None:
            found.append(entry)
    duplicated = copies(found)
    if duplicated:
        print(
            "error: the same images sit under several folders: " + ", ".join(duplicated) + "; pick one with --under",
            file=sys.stderr,
        )
        return 2
    chosen = select(found, tail)
    if not chosen:
        print(f"error: no {args.name} images in {args.mirror} at {commit[:12]}", file=sys.stderr)
        return 1

    counts: Counter[str] = Counter()
    people: set[str] = set()
    shapes: Counter[str] = Counter()
    unreadable = pointers = 0
    by_sha: dict[str, list[Entry]] = defaultdict(list)
    for entry in chosen:
        by_sha[entry.sha].append(entry)
    for sha, data in blobs(args.mirror, list(by_sha)):
        if data.startswith(b"version https://git-lfs"):
            pointers += len(by_sha[sha])
            continue
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if image is None:
            unreadable += len(by_sha[sha])
            continue
        colour = "grey" if image.ndim == 2 or np.ptp(image[..., :3].astype(np.int16), axis=2).max() <= 2 else "colour"
        for entry in by_sha[sha]:
            assert identity_of(entry.name) == entry.person, entry.name
            folder = args.out / entry.label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / entry.name).write_bytes(data)
            counts[entry.label] += 1
            people.add(entry.person)
            shapes[f"{image.shape[1]}x{image.shape[0]} {colour}"] += 1

    provenance = {
        "set": args.name,
        "population": spec.population,
        "mirror": str(args.mirror),
        "commit": commit,
        "under": under,
        "sequence_tail": tail,
        "images": sum(counts.values()),
        "per_class": {label: counts[label] for label in LABELS},
        "people": sorted(people),
        "sizes": dict(shapes.most_common()),
        "skipped": {
            "held_out_paths": held_out,
            "ours_paths": ours,
            "lfs_pointers": pointers,
            "unreadable": unreadable,
            "earlier_frames_of_sequences": len({e.name for e in found}) - len(chosen),
        },
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"{args.name} from {args.mirror} at {commit[:12]} -> {args.out}")
    for label in LABELS:
        print(f"  {label:9s} {counts[label]:6d}")
    print(f"  {'total':9s} {sum(counts.values()):6d} images, {len(people)} people")
    print(f"  sizes: {', '.join(f'{k} ({v})' for k, v in shapes.most_common(5))}")
    print(f"  skipped: {json.dumps(provenance['skipped'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
