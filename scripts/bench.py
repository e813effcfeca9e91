"""`make bench`: how fast the engine is, one thread, warm; written to docs/bench.md.

Every time is reported in milliseconds and as a ratio to a baseline measured
in the same run, a plain full-size ``cv2.imdecode`` of the same JPEG: these
machines are shared and noisy, so compare ratios across runs, not milliseconds.

Goals (issues 2 and 3): the whole ``make`` of a 12 MP photo at most 1.3x the
baseline; per face, detection plus the ensemble under 10 ms; the ensemble
alone under 5 ms per face; cold start (imports and every model) under 1 s;
peak memory for a 12 MP photo under 300 MB. Issue 37: the zoom meme (gif, webp-zoom) of a 12 MP
photo at most 400 ms and 2 MB (its rows stand beside the still meme's make in the same run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from memegen.contract import IMAGE_SUFFIXES, ZOOM_CODECS
from memegen.meme.engine import Engine, Meme
from memegen.offline.host import describe
from memegen.settings import Settings
from memegen.vision.crop import align_crops
from memegen.vision.detect import Face
from memegen.vision.detect.plan import SHAPES_KEPT

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "bench.md"
README = ROOT / "README.md"
SIZES = {"12 MP": (4000, 3000), "2.6 MP": (1862, 1396), "0.5 MP": (816, 612)}
# The peer, the `fer` package's detect_emotions (its Haar cascade and its int8 model, no meme drawn),
# runs in its own environment (TensorFlow never enters ours): scripts/peer.py, in the same run.
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
PEER_SCRIPT = ROOT / "scripts" / "peer.py"
PEER_REPEAT = 5


def median_ms(fn: Callable[[], object], *, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def zoom_rows(engine: Engine, data: bytes, *, decode: float) -> list[str]:
    """The table rows of the zoom meme's make, one per zoom format: ms, x decode, and its size."""
    rows = []
    for name in ZOOM_CODECS:
        make = median_ms(partial(engine.make, data, format=name), repeat=10)
        meme = engine.make(data, format=name)
        rows.append(
            f"| make, zoom meme `{name}` ({meme.zoom[1] if meme.zoom else 0} frames, {len(meme.image) / 1e6:.2f} MB)"
            f" | {make:.1f} | {make / decode:.2f} |"
        )
    return rows


def source_image() -> tuple[str, np.ndarray]:
    """A real portrait, or a synthetic scene where the photos are absent."""
    photos = Path(os.environ.get("MEMEGEN_PHOTOS", "../shared/photos"))
    source = photos / "portrait-img13.jpg"
    if source.exists():
        return source.name, np.asarray(cv2.imread(str(source), cv2.IMREAD_COLOR))
    noise = np.random.default_rng(0).integers(0, 255, size=(750, 1000, 3), dtype=np.uint8)
    return "a synthetic scene", cv2.GaussianBlur(noise, (0, 0), 2)


def group_photo(rgb: np.ndarray, face: Face) -> np.ndarray:
    """Ten copies of a face, 5 across and 2 down, on a grey 1600x1200 canvas."""
    x, y, w, h = face.box
    pad = w // 3
    patch = rgb[max(y - pad, 0) : y + h + pad, max(x - pad, 0) : x + w + pad]
    patch = cv2.resize(patch, (240, 300), interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 128, dtype=np.uint8)
    for i in range(10):
        row, col = divmod(i, 5)
        canvas[200 + row * 420 : 500 + row * 420, 40 + col * 310 : 280 + col * 310] = patch
    return canvas


def jpeg(image: np.ndarray, size: tuple[int, int]) -> bytes:
    resized = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


# Peak memory is the child's own VmHWM: getrusage's ru_maxrss would also count the
# parent's resident memory at the moment it spawned the child (Linux carries it over exec).
_CHILD = """
import sys, time
started = time.perf_counter()
from memegen.meme.engine import Engine
from memegen.settings import Settings
imported = time.perf_counter()
engine = Engine.from_settings(Settings.from_env())
loaded = time.perf_counter()

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

rss_loaded = peak_kb()
engine.make(open(sys.argv[1], "rb").read())
print(imported - started, loaded - imported, rss_loaded, peak_kb())
"""


def cold_start_and_memory(photo: Path) -> tuple[float, float, float, float]:
    """Seconds to import, and to load every model; peak RSS (MB) after loading and after one meme.

    The times of the fastest of three fresh processes, the memory the largest of the three.
    """
    env = {**os.environ, "MEMEGEN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(photo)], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), float(out[1]), int(out[2]) / 1024, int(out[3]) / 1024))
    fastest = min(runs, key=lambda r: r[0] + r[1])
    return fastest[0], fastest[1], max(r[2] for r in runs), max(r[3] for r in runs)


def bench_photos() -> list[Path]:
    """Every real photo in MEMEGEN_PHOTOS (portraits from 240p to 12 MP, couples, a team), by name."""
    folder = Path(os.environ.get("MEMEGEN_PHOTOS", ROOT.parent / "shared" / "photos"))
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class Peer:
    """The peer in its own environment, one photo at a time, so that both run within seconds of each other.

    This machine's speed moves within minutes: timing all of the peer's photos before or after all
    of MemeGen's made the ratio move by a quarter between runs. Between its photos the peer's process
    is stopped (SIGSTOP), so that nothing of it runs while MemeGen is timed: left running, it slowed
    MemeGen's own figures beside it (the runs are in issue 37's closing note).
    ``reason`` says why it is not running (not installed, or failed), and then ``run`` returns None.
    """

    def __init__(self, *, repeat: int) -> None:
        self.name, self.reason = "", ""
        self._process: subprocess.Popen[str] | None = None
        if not PEER_PYTHON.exists():
            self.reason = "`fer` is not installed (no .venv-peer: `make bench` makes it from requirements-peer.txt)"
            return
        # TensorFlow's log goes to a file: a pipe nobody reads would fill and stop the peer.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by close(), at the end of `with`
        self._process = subprocess.Popen(
            [str(PEER_PYTHON), str(PEER_SCRIPT), "--repeat", str(repeat)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        header = self._reply()
        if header is not None:
            self.name = f"`fer` {header['version']}"

    def run(self, photo: Path) -> dict[str, Any] | None:
        """The peer's times (``ms``, each run) and face count (``faces``) for one photo, or None."""
        if self._process is None or self._process.stdin is None:
            return None
        self._process.send_signal(signal.SIGCONT)
        try:
            self._process.stdin.write(f"{photo}\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            self._failed()
            return None
        reply = self._reply()
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)
        return reply

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the peer's process (killed if it does not end within a minute) and drop its log."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGCONT)  # a stopped process would never read the end of its input
        try:
            with contextlib.suppress(BrokenPipeError):  # the peer already gone: the line unsent stays so
                if process.stdin is not None:
                    process.stdin.close()
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            self._log.close()

    def _reply(self) -> dict[str, Any] | None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("{"):
                reply: dict[str, Any] = json.loads(line)
                return reply
        self._failed()
        return None

    def _failed(self) -> None:
        if self._process is not None:
            self._log.seek(0)
            self.reason = f"`fer` could not run: {(self._log.read().strip().splitlines() or ['no output'])[-1]}"
            self.close()


def side_by_side(engine: Engine, photos: list[Path], *, repeat: int) -> tuple[list[str], dict[str, Any]]:
    """MemeGen's whole meme and stages against the peer's detect_emotions, photo by photo, in one run.

    MemeGen starts from the file's bytes (decode included) and ends with the encoded meme; the peer
    gets the decoded photo and draws nothing. Each photo is run once to warm up, then ``repeat``
    times, by the peer and then by MemeGen before the next photo; the median counts.
    """
    if not photos:
        return ["## Side by side with `fer`", "", "No photos: set MEMEGEN_PHOTOS.", ""], {}
    rows, makes, faces_ms, ratios = [], [], [], []
    found = {"memegen": 0, "peer": 0}
    with Peer(repeat=repeat) as peer:
        uploads = [(photo, photo.read_bytes()) for photo in photos]
        timed = [(photo, data, peer.run(photo), _timed_makes(engine, data, repeat=repeat)) for photo, data in uploads]
    for photo, data, reply, (times, stages, meme) in timed:
        # Where the peer stopped part of the way, none of its figures count: no ratio from some photos only.
        row = None if peer.reason else reply
        make = statistics.median(times)
        stage = {k: statistics.median(s[k] for s in stages) for k in ("read", "faces", "caption", "render")}
        makes.append(make)
        faces_ms.append(stage["faces"])
        found["memegen"] += len(meme.faces)
        peer_cells = "| - | - |"
        if row:
            peer_ms = statistics.median(row["ms"])
            ratios.append(peer_ms / make)
            found["peer"] += row["faces"]
            peer_cells = f"| {peer_ms:.0f} | {peer_ms / make:.1f} |"
        width, height = _size(data)
        rows.append(
            f"| {photo.name} | {width}x{height} | {len(meme.faces)} / {row['faces'] if row else '-'}"
            f" | {make:.0f} | {stage['read']:.0f} | {stage['faces']:.0f} | {stage['caption']:.1f}"
            f" | {stage['render']:.0f} {peer_cells}"
        )
    lines = [
        f"## Side by side with {peer.name or 'the peer'}",
        "",
        f"{len(photos)} real photos (MEMEGEN_PHOTOS), one thread, warm, median of {repeat} runs each, the peer and"
        " MemeGen in turn photo by photo. MemeGen: bytes in, the meme's JPEG out; the peer: `detect_emotions` on"
        " the decoded photo, no meme drawn.",
        "",
    ]
    if peer.reason:
        lines += [f"The peer did not run: {peer.reason}. MemeGen alone:", ""]
    lines += [
        "| photo | size | faces: MemeGen / peer | MemeGen meme, ms | read | faces | caption | render | peer, ms"
        " | peer / MemeGen |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    # A function instance meets photos of many shapes in turn: the detector rebuilds an interpreter
    # for a shape it no longer keeps, which the warm runs above never pay.
    in_turn_ms, in_turn_faces = [], []
    for photo in photos:
        ms, meme = _timed_make(engine, photo.read_bytes())
        in_turn_ms.append(ms)
        in_turn_faces.append(meme.timings_ms["faces"])
    summary: dict[str, Any] = {
        "photos": len(photos),
        "make_ms": statistics.median(makes),
        "faces_ms": statistics.median(faces_ms),
        "faces_ms_max": max(faces_ms),
        "in_turn_make_ms": statistics.median(in_turn_ms),
        "in_turn_faces_ms": statistics.median(in_turn_faces),
        "found": found,
        "peer": "" if peer.reason else peer.name,
    }
    lines += ["", f"Medians over the {len(photos)} photos: the whole meme {summary['make_ms']:.0f} ms, its faces stage"]
    lines[-1] += f" {summary['faces_ms']:.1f} ms (at most {summary['faces_ms_max']:.0f} ms)."
    lines.append(
        f"The photos once each, one after the other (not warm: the detector keeps {SHAPES_KEPT} input shapes and"
        f" rebuilds the others): the whole meme {summary['in_turn_make_ms']:.0f} ms, its faces stage"
        f" {summary['in_turn_faces_ms']:.1f} ms (medians)."
    )
    if ratios:
        summary.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios))
        lines.append(
            f"The peer takes **{summary['ratio']:.1f} times** as long as MemeGen's whole meme (median of the"
            f" per-photo ratios; {summary['ratio_min']:.1f} to {summary['ratio_max']:.1f}). Faces found in all:"
            f" MemeGen {found['memegen']}, the peer {found['peer']} (neither count is checked against the truth here)."
        )
    lines.append("")
    return lines, summary


def _timed_makes(engine: Engine, data: bytes, *, repeat: int) -> tuple[list[float], list[dict[str, float]], Meme]:
    """One meme to warm up, then ``repeat`` timed: each one's milliseconds and stages, and the last meme."""
    meme = engine.make(data)
    times, stages = [], []
    for _ in range(repeat):
        ms, meme = _timed_make(engine, data)
        times.append(ms)
        stages.append(meme.timings_ms)
    return times, stages, meme


def _timed_make(engine: Engine, data: bytes) -> tuple[float, Meme]:
    """One meme from upload bytes, and the milliseconds it took."""
    started = time.perf_counter()
    meme = engine.make(data)
    return (time.perf_counter() - started) * 1000, meme


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def write_readme(path: Path, summary: dict[str, Any]) -> None:
    """The README's speed sentence, between its ``<!-- bench:peer -->`` markers, from this run."""
    if not summary or not path.exists():
        return
    if "ratio" in summary:
        sentence = (
            f"On the {summary['photos']} real photos of MEMEGEN_PHOTOS, in one run, {summary['peer']}'s"
            f" `detect_emotions` took a median {summary['ratio']:.1f} times as long as MemeGen's whole meme"
            f" ({summary['ratio_min']:.1f} to {summary['ratio_max']:.1f} times), and MemeGen's faces stage"
            f" took a median {summary['faces_ms']:.1f} ms (at most {summary['faces_ms_max']:.0f} ms), warm;"
            f" {summary['in_turn_faces_ms']:.1f} ms with the photos met once each in turn."
        )
    else:
        sentence = (
            f"On the {summary['photos']} real photos of MEMEGEN_PHOTOS the whole meme took a median"
            f" {summary['make_ms']:.0f} ms and its faces stage {summary['faces_ms']:.1f} ms (the peer did not run)."
        )
    replace_between_markers(path, "peer", sentence)


def replace_between_markers(path: Path, name: str, text: str) -> None:
    """Put ``text`` between the ``<!-- bench:NAME -->`` marker pair of ``path`` (a README), if it has them."""
    old = path.read_text() if path.exists() else ""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        path.write_text(head + start + text + end + rest.split(end, 1)[1])


# Cloud Run functions' list prices (1 vCPU, 1 GiB), and the storage round trip, which the bench
# cannot measure: inputs of the Scale estimate, not measurements.
PRICE_VCPU_SECOND = 0.000024
PRICE_GIB_SECOND = 0.0000025
PRICE_INVOCATION = 0.40 / 1_000_000
STORAGE_SECONDS = (0.1, 0.3)


def scale_section(*, make_ms: dict[str, float], cold_ms: float, peak_mb: float) -> str:
    """The README's Scale paragraph and table, derived from this run's per-meme cost."""
    big, small = make_ms["12 MP"] / 1000, make_ms["0.5 MP"] / 1000
    low, high = big + STORAGE_SECONDS[0], big + STORAGE_SECONDS[1]
    per_instance = (60 / high, 60 / low)
    burst = 1000 / 60
    cost = [w * (PRICE_VCPU_SECOND + PRICE_GIB_SECOND) * 1000 + PRICE_INVOCATION * 1000 for w in (low, high)]
    return "\n".join(
        [
            "Cloud Functions scales the deployment past one machine. This run's `make bench` (one CPU) measured"
            f" {big:.2f} s for a 12 MP photo's meme and {small:.2f} s for a 0.5 MP one, {cold_ms / 1000:.2f} s to"
            f" import and load the models and {peak_mb:.0f} MB of memory at peak; reading the upload from and writing"
            f" the meme to Cloud Storage in the same region adds an estimated {STORAGE_SECONDS[0]} to"
            f" {STORAGE_SECONDS[1]} s (not measured here). So a meme costs {low:.2f} to {high:.2f} s of one instance:",
            "",
            "| uploads a minute | busy `on_upload` instances (one meme at a time each) | what happens |",
            "|---:|---:|---|",
            "| 1 | 0 to 1 | each meme usually meets a cold instance: container start (a few seconds, not measured"
            f" here) plus {cold_ms / 1000:.2f} s of imports and model loading, then {low:.2f} to {high:.2f} s of"
            " work |",
            f"| 10 | 1 | one warm instance keeps up (it serves {per_instance[0]:.0f} to {per_instance[1]:.0f} memes a"
            " minute) |",
            "| 100 | 1 to 2 | warm instances; a burst adds an instance with one cold start |",
            f"| 1,000 | about {burst * low:.0f} to {burst * high:.0f} | Eventarc delivers about {burst:.0f} a second;"
            " the autoscaler adds instances up to `on_upload_max_instances` (20 by default); above the cap,"
            " deliveries are refused and retried with backoff, so nothing is lost, only delayed |",
            "",
            f"At Cloud Run functions' list prices for 1 vCPU and 1 GiB (${PRICE_VCPU_SECOND} per vCPU-second,"
            f" ${PRICE_GIB_SECOND} per GiB-second, $0.40 per million invocations), compute costs about"
            f" ${cost[0]:.3f} to ${cost[1]:.3f} per 1,000 memes; at 1,000 uploads a minute, about"
            f" ${cost[0] * 1440:.0f} to ${cost[1] * 1440:.0f} a day, before Cloud Storage, network and Eventarc.",
        ]
    )


def write_scale(path: Path, *, make_ms: dict[str, float], cold_ms: float, peak_mb: float) -> None:
    """The README's Scale section, between its ``<!-- bench:scale -->`` markers, from this run."""
    body = scale_section(make_ms=make_ms, cold_ms=cold_ms, peak_mb=peak_mb)
    replace_between_markers(path, "scale", "\n" + body + "\n")


def main() -> int:
    cv2.setNumThreads(1)
    settings = Settings.from_env()
    engine = Engine.from_settings(replace(settings, threads=1))
    name, image = source_image()
    lines = [
        "# `make bench`",
        "",
        f"{describe()}; one thread, warm, medians; photo: {name} resized to each size (JPEG quality 92).",
        "Ratios are to a plain full-size `cv2.imdecode` of the same file, measured in the same run.",
        "",
    ]
    twelve: bytes = b""
    make_ms: dict[str, float] = {}
    for label, size in SIZES.items():
        data = jpeg(image, size)
        twelve = twelve or data
        buffer = np.frombuffer(data, dtype=np.uint8)
        decode = median_ms(partial(cv2.imdecode, buffer, cv2.IMREAD_COLOR), repeat=10)
        make = median_ms(partial(engine.make, data), repeat=10)
        make_ms[label] = make
        meme = engine.make(data)
        lines += [
            f"## {label} ({size[0]}x{size[1]}, {len(data) / 1e6:.1f} MB, {len(meme.faces)} face(s))",
            "",
            "| stage | ms | x decode |",
            "|---|---:|---:|",
            f"| baseline: cv2.imdecode, full size | {decode:.1f} | 1.00 |",
            f"| **make (whole engine)** | **{make:.1f}** | **{make / decode:.2f}** |",
        ]
        for stage, ms in meme.metadata()["timings_ms"].items():
            lines.append(f"| &nbsp; {stage} (in the last make) | {ms:.1f} | {ms / decode:.2f} |")
        if label == "12 MP":
            lines += zoom_rows(engine, data, decode=decode)
        lines.append("")

    buffer = np.frombuffer(twelve, dtype=np.uint8)
    full = np.asarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR))
    rgb = cv2.cvtColor(cv2.resize(full, (1600, 1200), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    faces = engine.detector.detect(rgb)
    sides = engine.ensemble.crop_sizes

    def cut() -> dict[int, np.ndarray]:
        # Every side a member reads the face at, each cut once, as the engine does.
        if not faces:
            return {side: cv2.resize(gray[:64, :64], (side, side)) for side in sides}
        return align_crops(rgb, faces[0], sizes=sides, gray=True)

    crops = cut()
    group = group_photo(rgb, faces[0]) if faces else rgb
    ensemble = median_ms(lambda: engine.ensemble.classify(crops), repeat=300)
    crop_ms = median_ms(cut, repeat=200)
    lines += [
        "## Per face",
        "",
        "Detection runs once per photo, so its share per face falls with the number of faces.",
        "",
        "| stage | ms |",
        "|---|---:|",
    ]
    for what, picture in (("a 1600x1200 portrait", rgb), ("a 1600x1200 group", group)):
        count = len(engine.read_faces(picture, scale=1.0))
        ms = median_ms(partial(engine.read_faces, picture, scale=1.0), repeat=10)
        per_face = ms / max(count, 1)
        lines.append(
            f"| faces stage (detect, align, ensemble), {what}: {count} face(s) | {ms:.1f}, {per_face:.1f} a face |"
        )
    lines += [
        f"| align_crops, one face, at {' and '.join(f'{side} px' for side in sides)} | {crop_ms:.2f} |",
        f"| **ensemble.classify, one face (every member, with its mirror image)** | **{ensemble:.2f}** |",
    ]
    for member, side in zip(engine.ensemble.members, engine.ensemble.cuts, strict=True):
        face = crops[side]
        lines.append(f"| &nbsp; member {member.name} | {median_ms(partial(member.predict, face), repeat=300):.2f} |")

    with_photo = ROOT / "build" / "bench-12mp.jpg"
    with_photo.parent.mkdir(parents=True, exist_ok=True)
    with_photo.write_bytes(twelve)
    imports, load, rss_loaded, rss_peak = cold_start_and_memory(with_photo)
    cold = imports + load
    lines += [
        "",
        "## Cold start and memory (a fresh process, best of three)",
        "",
        "| what | figure |",
        "|---|---:|",
        f"| import the engine (NumPy, OpenCV, Pillow, LiteRT, memegen) | {imports * 1000:.0f} ms |",
        f"| load every model (detector, ensemble, captions) | {load * 1000:.0f} ms |",
        f"| peak memory, models loaded | {rss_loaded:.0f} MB |",
        f"| peak memory, after one 12 MP meme | {rss_peak:.0f} MB |",
        "",
    ]
    peer_lines, summary = side_by_side(engine, bench_photos(), repeat=PEER_REPEAT)
    lines += peer_lines
    text = "\n".join(lines)
    write_readme(README, summary)
    write_scale(README, make_ms=make_ms, cold_ms=cold * 1000, peak_mb=rss_peak)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)
    print(f"written to {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
