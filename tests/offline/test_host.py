"""The machine a time was taken on, as the card and the bench name it."""

from __future__ import annotations

from pathlib import Path

from memegen.offline.host import describe


def test_the_fastest_int8_feature_is_named(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512bw avx512_vnni\n")
    assert describe(cpuinfo).startswith("AMD EPYC, ")
    assert describe(cpuinfo).endswith(" CPUs, avx512_vnni")
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2\n")
    assert describe(cpuinfo).endswith(" CPUs, avx2")


def test_a_machine_without_cpuinfo_is_still_named(tmp_path: Path) -> None:
    assert "none of avx512_vnni" in describe(tmp_path / "absent")
