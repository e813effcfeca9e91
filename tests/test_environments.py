"""The environments by purpose: ``.venv`` runs the service and the tests and holds no training stack;
``requirements-train.txt`` (``.venv-train``) holds it."""

from __future__ import annotations

import json
import re
import subprocess

from tests.support import ROOT

RUN_TIME = ROOT / ".venv" / "bin" / "python"
# What every training environment has, whatever else requirements-train.txt comes to pin.
TRAINING_STACK = {"torch", "litert-torch", "ai-edge-quantizer", "efficientnet-lite-pytorch"}


def pins(name: str) -> set[str]:
    """The distributions a requirements file pins, by their normalized names."""
    lines = (line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines())
    return {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() for line in lines if line}


def test_the_training_stack_is_pinned_for_training_only() -> None:
    training = pins("requirements-train.txt")
    assert training >= TRAINING_STACK
    assert not training & (pins("requirements.txt") | pins("requirements-dev.txt"))


def test_the_run_time_environment_cannot_import_the_training_stack() -> None:
    """``.venv`` as ``make venv`` made it: none of requirements-train.txt's distributions, and no ``import torch``."""
    assert RUN_TIME.exists(), f"{RUN_TIME} is missing: make venv makes it"
    script = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "found = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        m.distribution(name)\n"
        "        found.append(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps({'installed': found, 'torch': u.find_spec('torch') is not None}))\n"
    )
    training = sorted(pins("requirements-train.txt"))
    result = subprocess.run([RUN_TIME, "-c", script, *training], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"installed": [], "torch": False}, "rebuild it: rm -rf .venv && make venv"
    # The library and the service load there all the same.
    imports = "import memegen.cloud.api, memegen.meme.engine, memegen.cloud.worker, local.run"
    loaded = subprocess.run([RUN_TIME, "-c", imports], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
