"""``local.stack``: processes started in their own groups, waited for until they serve, stopped."""

from __future__ import annotations

import re
import signal
import sys
import threading

import pytest

from local.stack import Stack, Stopped, free_port, wait_for, wait_until_serving

pytestmark = pytest.mark.integration

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_server_answering_404_is_serving_and_stops_with_its_group() -> None:
    stack = Stack()
    port = free_port()
    server = stack.start("files", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"])
    try:
        # Any answer says it is up: the stack's servers answer 404 or 405 at paths they do not serve.
        wait_until_serving(f"http://127.0.0.1:{port}/no-such-file", process=server.process, name="files", timeout=60)
    finally:
        stack.stop()
    assert server.process.returncode == -signal.SIGTERM and not server.group_alive()


def test_a_server_that_exits_while_starting_is_named() -> None:
    stack = Stack()
    broken = stack.start("broken", [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match=r"^broken exited with status 3 while starting$"):
        wait_until_serving(f"http://127.0.0.1:{free_port()}/", process=broken.process, name="broken", timeout=60)
    assert stack.exited() is broken


def test_waiting_ends_when_told_to_stop_or_when_time_is_up() -> None:
    stack = Stack()
    quiet = stack.start("quiet", SLEEP)
    url = f"http://127.0.0.1:{free_port()}/"
    try:
        stop = threading.Event()
        stop.set()
        with pytest.raises(Stopped):
            wait_until_serving(url, process=quiet.process, stop=stop)
        with pytest.raises(TimeoutError, match=rf"^quiet did not answer at {re.escape(url)} within 1 s$"):
            wait_until_serving(url, process=quiet.process, name="quiet", timeout=1)
    finally:
        stack.stop()


def test_what_ignores_the_signal_is_killed_and_its_output_kept() -> None:
    stack = Stack()
    stubborn = stack.start(
        "stubborn",
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True);"
            " time.sleep(60)",
        ],
        capture=True,
    )
    wait_for(lambda: stubborn.output == ["ready\n"], timeout=60, failure="it never said it was ready")
    stack.stop(signum=signal.SIGINT, timeout=0.5)
    assert stubborn.process.returncode == -signal.SIGKILL and stubborn.output == ["ready\n"]
