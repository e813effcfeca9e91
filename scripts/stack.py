"""Local processes for ``make load`` and the tests: the whole stack (``python -m local.run``) started, its
page found and stopped with Ctrl-C; and a wait for any one server to answer."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from local.run import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    """A running stack: its page, its storage server's port, and (once stopped) how it ended."""

    process: subprocess.Popen[str]
    storage_port: int
    page: str = ""
    output: list[str] = field(default_factory=list)
    status: int | None = None


@contextmanager
def running_stack(key: Path, *, timeout: float = 45) -> Iterator[Stack]:
    """Start the stack, wait for its page, yield it; on the way out send Ctrl-C and wait for it to stop."""
    storage_port = free_port()
    command = [sys.executable, "-m", "local.run", f"--storage-port={storage_port}", f"--key={key}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack = Stack(process, storage_port)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not stack.page and time.monotonic() < deadline and process.poll() is None:
            try:
                stack.output.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
            if match := re.search(r"MemeGen is running at (http://127\.0\.0\.1:\d+/)", stack.output[-1]):
                stack.page = match[1]
        assert stack.page, "no page address:\n" + "".join(stack.output)
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        stack.status = process.wait(timeout=30)
        reader.join(timeout=5)  # the end of the output: every process that held the pipe has exited
        while not lines.empty():
            stack.output.append(lines.get())


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0, failure: str = "timed out waiting") -> None:
    """Poll ``condition`` until it holds; an ``AssertionError`` saying ``failure`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.02)


def wait_until_serving(url: str, *, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until ``url`` answers, failing early if the process serving it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before serving {url}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")
