"""Local processes, one way: started each in its own process group, waited for until they serve, stopped.

``python -m local.run`` keeps the stack's servers in a ``Stack``; ``running_stack`` (``make load``, the
tests) starts ``python -m local.run`` itself the same way, finds its page and stops it with Ctrl-C. Both,
and every test that starts a server, wait for it with ``wait_until_serving``.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# A server's first answer, on a busy machine: functions-framework imports the engine and loads its models.
STARTUP_SECONDS = 120.0
STOP_SECONDS = 10.0
PR_SET_PDEATHSIG = 1
# What local.run prints once its page answers.
_RUNNING = re.compile(r"MemeGen is running at (http://127\.0\.0\.1:\d+/)")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``HOST:port`` now."""
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child before exec (Linux): if this process dies, even by SIGKILL, the child gets
    # SIGTERM instead of living on as an orphan holding its port.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One process of a ``Stack``, the leader of its own process group."""

    name: str
    process: subprocess.Popen[Any]
    url: str  # where it answers HTTP; "" for a process that serves nothing
    # What it printed (stdout and stderr), line by line, when started with capture=True.
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = field(default=None, repr=False)

    def group_alive(self) -> bool:
        """Whether any process of its group is left."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            # The group id was reused by a process that is not ours: our group is gone.
            return False
        return True

    def stop(self, *, signum: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> None:
        """``signum`` to the whole group, then SIGKILL to whatever is left after ``timeout`` seconds."""
        self._signal(signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.poll()
            if self.process.returncode is not None and not self.group_alive():
                break
            time.sleep(0.05)
        else:
            self._signal(signal.SIGKILL)
            self.process.wait()
        if self._reader is not None:
            # To the end of its output: every process that held the pipe has exited.
            self._reader.join(timeout=5)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return


class Stack:
    """Processes started in order and stopped in reverse order: sources before sinks."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        url: str = "",
        env: Mapping[str, str] | None = None,
        capture: bool = False,
    ) -> Child:
        """Start a child in its own process group (so that a terminal's Ctrl-C reaches only its parent).

        With ``capture``, what it prints is kept in its ``output`` rather than shown.
        """
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=None if env is None else dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=capture,
        )
        child = Child(name, process, url)
        if capture:
            child._reader = threading.Thread(target=_collect, args=(process, child.output), daemon=True)
            child._reader.start()
        self.children.append(child)
        return child

    def stop(self, *, signum: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> None:
        """Stop every child and its process group, the last started first (see ``Child.stop``)."""
        for child in reversed(self.children):
            child.stop(signum=signum, timeout=timeout)

    def exited(self) -> Child | None:
        """A child that has exited, if any."""
        return next((child for child in self.children if child.process.poll() is not None), None)


def _collect(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)


class Stopped(Exception):
    """A signal came while waiting for a server."""


def wait_until_serving(
    url: str,
    *,
    process: subprocess.Popen[Any],
    name: str = "",
    timeout: float = STARTUP_SECONDS,
    stop: threading.Event | None = None,
) -> None:
    """Wait until ``url`` answers HTTP, any status (a 404 or 405 says it is up as well as a 200).

    Raises ``RuntimeError`` as soon as ``process`` (the server, called ``name``) exits, ``TimeoutError``
    after ``timeout`` seconds, and ``Stopped`` once ``stop`` is set.
    """
    called = name or repr(process.args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise Stopped
        if process.poll() is not None:
            raise RuntimeError(f"{called} exited with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (OSError, http.client.HTTPException):
            # Refused, reset or cut off: not listening yet, or a server still starting up.
            time.sleep(0.1)
    raise TimeoutError(f"{called} did not answer at {url} within {timeout:.0f} s")


@dataclass
class StackProcess:
    """The whole stack in one process (``python -m local.run``), as ``running_stack`` started it.

    ``page`` is its page's address; ``storage_port`` its storage server's port on ``HOST``.
    """

    child: Child
    storage_port: int
    page: str = ""

    @property
    def process(self) -> subprocess.Popen[Any]:
        """The ``python -m local.run`` process."""
        return self.child.process

    @property
    def output(self) -> list[str]:
        """What it printed, line by line (stdout and stderr): all of it once stopped."""
        return self.child.output

    @property
    def status(self) -> int | None:
        """Its exit status once stopped; None while it runs."""
        return self.child.process.returncode


@contextmanager
def running_stack(key: Path, *, timeout: float = 45) -> Iterator[StackProcess]:
    """Start the stack, wait for its page, yield it; on the way out send Ctrl-C and wait for it to stop."""
    storage_port = free_port()
    command = [sys.executable, "-m", "local.run", f"--storage-port={storage_port}", f"--key={key}"]
    stack = Stack()
    running = StackProcess(stack.start("local.run", command, capture=True), storage_port)
    try:
        deadline = time.monotonic() + timeout
        while not running.page and time.monotonic() < deadline and running.process.poll() is None:
            time.sleep(0.1)
            running.page = _page(running.output)
        assert running.page, "no page address:\n" + "".join(running.output)
        yield running
    finally:
        # Ctrl-C, as a person stops `make run`; what it leaves after 30 s is killed (and fails the status).
        stack.stop(signum=signal.SIGINT, timeout=30)


def _page(output: list[str]) -> str:
    """The page's address local.run printed, or "" before it did."""
    return next((match[1] for line in list(output) if (match := _RUNNING.search(line))), "")


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0, failure: str = "timed out waiting") -> None:
    """Poll ``condition`` until it holds; an ``AssertionError`` saying ``failure`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.02)
