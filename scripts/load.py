"""`make load`: uploads through the signed-URL flow of the whole local stack, several at a time.

    python -m scripts.load --uploads 500 --concurrency 8

Starts ``python -m local.run`` (storage server, both functions, event bridge), then each client
thread asks the api for an upload (``POST /v1/uploads``), PUTs a real photo to the signed URL
with the signed headers, and polls ``GET /v1/memes/{id}`` until the meme is done. Reports
uploads per second, the time from a finished PUT to a done meme (p50, p95, p99), the stack's
peak memory (all its processes together), and checks that N uploads gave exactly N memes and N
records. Writes the figures to docs/load.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from local.stack import ROOT, running_stack
from memegen.settings import Settings

REPORT = ROOT / "docs" / "load.md"
PHOTOS = ("obama-480p.jpg", "two_people.jpg", "portrait-img1.jpg", "biden.jpg", "obama-720p.jpg")


@dataclass(frozen=True)
class Result:
    """One upload: seconds from the finished PUT to a done meme, and its final status."""

    seconds: float
    status: str


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
            rss[int(stat.parent.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    family, frontier = {pid}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - family
        family |= frontier
    return sum(rss.get(p, 0) for p in family) / 1e6


def one_upload(page: str, photo: bytes, *, timeout: float = 120) -> Result:
    created = requests.post(f"{page}v1/uploads", json={"content_type": "image/jpeg"}, timeout=30)
    created.raise_for_status()
    upload = created.json()
    put = requests.put(upload["upload_url"], data=photo, headers=upload["upload_headers"], timeout=60)
    put.raise_for_status()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status = requests.get(page.rstrip("/") + upload["status_url"], timeout=30).json()
        if status["status"] != "pending":
            return Result(time.monotonic() - started, status["status"])
        time.sleep(0.05)
    return Result(time.monotonic() - started, "timeout")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(uploads: int, concurrency: int, photos_dir: Path) -> dict[str, float]:
    """Run the load against a fresh stack; the figures."""
    photos = [(photos_dir / name).read_bytes() for name in PHOTOS if (photos_dir / name).exists()]
    if not photos:
        raise SystemExit(f"no test photos in {photos_dir}: set MEMEGEN_PHOTOS")
    settings = Settings.from_env()
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp) / "key.json") as stack:
        peak, done = [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(stack.process.pid))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda i: one_upload(stack.page, photos[i % len(photos)]), range(uploads)))
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        client = storage.Client(
            project="load",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{stack.storage_port}"},
        )
        memes = sum(1 for _ in client.list_blobs(settings.output_bucket, prefix="memes/"))
        # Not the api's issued records (0.json, "pending"): one record per upload that was made.
        records = sum(
            1 for b in client.list_blobs(settings.output_bucket, prefix="records/") if not b.name.endswith("/0.json")
        )
    latencies = [r.seconds for r in results]
    return {
        "uploads": uploads,
        "concurrency": concurrency,
        "done": sum(r.status == "done" for r in results),
        "memes": memes,
        "records": records,
        "seconds": elapsed,
        "per_second": uploads / elapsed,
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "mean": statistics.fmean(latencies),
        "peak_mb": peak[0],
    }


def report(figures: dict[str, float]) -> str:
    return "\n".join(
        [
            "# `make load`",
            "",
            f"{figures['uploads']:.0f} uploads, {figures['concurrency']:.0f} at a time, through the signed-URL flow",
            "(`POST /v1/uploads`, `PUT` to the signed URL, the event bridge, `on_upload`, polling",
            f"`GET /v1/memes/{{id}}`), on loopback, {os.cpu_count()} CPUs, one `on_upload` process.",
            "",
            "| figure | value |",
            "|---|---:|",
            f"| uploads per second | {figures['per_second']:.2f} |",
            f"| upload to meme, p50 | {figures['p50']:.2f} s |",
            f"| upload to meme, p95 | {figures['p95']:.2f} s |",
            f"| upload to meme, p99 | {figures['p99']:.2f} s |",
            f"| peak memory of the whole stack | {figures['peak_mb']:.0f} MB |",
            f"| memes done / memes in the bucket / records | {figures['done']:.0f} / {figures['memes']:.0f}"
            f" / {figures['records']:.0f} |",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("MEMEGEN_PHOTOS", "../shared/photos")))
    args = parser.parse_args()
    figures = run(args.uploads, args.concurrency, args.photos)
    text = report(figures)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    print(text)
    ok = figures["done"] == figures["memes"] == figures["records"] == args.uploads
    print("exactly one meme per upload" if ok else "MISMATCH: uploads, memes and records differ")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
