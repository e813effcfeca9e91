"""The machine a figure was measured on, in words: int8 inference speed depends on it several times over."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The CPU features that decide how fast int8 TFLite runs (XNNPACK's int8 kernels), fastest first.
INT8_FEATURES = ("avx512_vnni", "avx_vnni", "avx512bw", "avx2")


def describe(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``"AMD EPYC, 2 CPUs, avx2"``: the CPU's model, its count, and its fastest int8 feature."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    best = next((feature for feature in INT8_FEATURES if feature in flags), "none of " + ", ".join(INT8_FEATURES))
    return f"{model}, {os.cpu_count()} CPUs, {best}"
