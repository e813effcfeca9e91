"""The README, DEVELOPMENT.md and docs/ against the code: the settings table is generated, what they name exists."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest

from memegen.settings import MARKERS, main, markdown_table

ROOT = Path(__file__).resolve().parents[1]
# The hand-written documents; bench.md and load.md are written by make bench and make load.
DOCS = (
    "README.md",
    "DEVELOPMENT.md",
    "docs/bad-input.md",
    "docs/faults.md",
    "docs/security.md",
    "docs/speed.md",
    "functions/README.md",
    "infra/README.md",
    "models/README.md",
)

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MODULE = re.compile(r"python -m ([\w.]+)")
DOTTED = re.compile(r"\bmemegen(?:\.\w+)+")
# Not a path of the repository: bucket prefixes with placeholders, URLs, api paths, globs, commands.
NOT_A_PATH = re.compile(r"[\s<>{}*|$=]|^/|^\.\.|^\w+://|^#")


def _text(name: str) -> str:
    return (ROOT / name).read_text()


def _tracked_roots() -> set[str]:
    """The top-level entries git tracks: a name in backticks that starts with one is a repository path."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in files.splitlines()}


def named_paths(text: str, roots: set[str], *, folder: str = "") -> set[str]:
    """The repository paths a Markdown text names: in inline code (from the repository's root), or as a
    link's target (from ``folder``, the document's own)."""
    prose = FENCE.sub("", text)
    links = [os.path.normpath(os.path.join(folder, link.split("#", 1)[0])) for link in LINK.findall(prose)]
    candidates = [token.split("::", 1)[0] for token in INLINE.findall(prose)] + links
    return {c for c in candidates if not NOT_A_PATH.search(c) and c.rstrip("/").split("/", 1)[0] in roots}


def missing(paths: set[str]) -> list[str]:
    """The paths that neither exist nor are outputs git ignores (``build/``, ``models/work/``: made by make)."""
    absent = sorted(p for p in paths if not (ROOT / p).exists())
    if not absent:
        return []
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(absent),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return [p for p in absent if p.rstrip("/") not in {i.rstrip("/") for i in ignored}]


def runnable(name: str) -> bool:
    """Whether ``python -m NAME`` finds a module: a file of the checkout (``memegen`` lives in ``shared/``), or
    an installed tool (``pytest``)."""
    parts = name.split(".")
    base = ROOT / "shared" if parts[0] == "memegen" else ROOT
    if parts[0] != "memegen" and not (ROOT / parts[0]).is_dir():
        return importlib.util.find_spec(name) is not None
    path = base.joinpath(*parts)
    return any(candidate.is_file() for candidate in (path.with_suffix(".py"), path / "__main__.py"))


def resolves(dotted: str) -> bool:
    """Whether ``memegen.a.b.C.d`` names a module and then attributes of it that exist."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_readme_settings_table_is_the_generated_one() -> None:
    """The README's list of settings is ``markdown_table()`` as it is now: ``make docs`` rewrites it."""
    readme = _text("README.md")
    start, end = MARKERS
    assert readme.count(start) == 1 and readme.count(end) == 1, "README.md needs one pair of settings markers"
    section = readme.split(start, 1)[1].split(end, 1)[0]
    assert section == "\n" + markdown_table() + "\n", "the README's settings table is stale: run make docs"


def test_make_docs_writes_the_table_in_place(tmp_path: Path) -> None:
    """The writer replaces only what lies between the markers, and refuses a file without them."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{MARKERS[0]}\nold table\n{MARKERS[1]}\nafter\n")
    assert main(["--readme", str(readme)]) == 0
    assert readme.read_text() == f"# Title\n\nbefore\n{MARKERS[0]}\n{markdown_table()}\n{MARKERS[1]}\nafter\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    assert main(["--readme", str(bare)]) == 1 and bare.read_text() == "no markers\n"


def test_every_setting_has_a_meaning() -> None:
    table = markdown_table().splitlines()[2:]
    assert len(table) == len(set(table)) > 10
    assert all(row.split(" | ")[3].strip(" |") for row in table)


@pytest.mark.parametrize("name", DOCS)
def test_every_path_named_exists(name: str) -> None:
    """Each repository path in backticks or a link exists, or is an output make writes (git-ignored)."""
    paths = named_paths(_text(name), _tracked_roots(), folder=os.path.dirname(name))
    assert paths, f"{name} names no path: the check would mean nothing"
    assert missing(paths) == [], f"{name} names paths that are not in the repository"


def test_the_path_check_sees_a_wrong_path() -> None:
    roots = _tracked_roots()
    text = "See `scripts/bench.py`, `shared/memegen/nowhere.py`, [the card](../models/README.md) and `uploads/`."
    paths = named_paths(text, roots, folder="docs")
    assert paths == {"scripts/bench.py", "shared/memegen/nowhere.py", "models/README.md"}
    assert missing(paths | {"build/examples/couple.jpg"}) == ["shared/memegen/nowhere.py"]


@pytest.mark.parametrize("name", DOCS)
def test_every_module_named_exists(name: str) -> None:
    """``python -m X`` runs a module of the checkout; ``memegen.x.Y`` in backticks resolves."""
    text = _text(name)
    commands = set(MODULE.findall(text))
    assert [m for m in sorted(commands) if not runnable(m)] == []
    dotted = {d for token in INLINE.findall(FENCE.sub("", text)) for d in DOTTED.findall(token)}
    assert [d for d in sorted(dotted) if not resolves(d)] == []


LAYOUT = re.compile(r"^## Layout\n(.*?)^## ", re.MULTILINE | re.DOTALL)
BULLET = re.compile(r"^- (.*?)(?=^- |^\S|\Z)", re.MULTILINE | re.DOTALL)
BARE_FILE = re.compile(r"`(\w+\.(?:py|json|html))`")


def unknown_files(section: str) -> list[str]:
    """The bare file names a layout bullet gives that are not in its folder (its first path) or below it."""
    unknown = []
    for bullet in BULLET.findall(section):
        folder = next((p for p in INLINE.findall(bullet) if p.endswith("/")), None)
        for name in BARE_FILE.findall(bullet):
            if folder is None or not any((ROOT / folder).rglob(name)):
                unknown.append(f"{folder}{name}")
    return unknown


def test_the_layout_names_modules_that_exist() -> None:
    """The README's layout names each layer's modules bare (``reader.py``): each is in its layer's folder."""
    section = LAYOUT.search(_text("README.md"))
    assert section is not None
    assert len(BARE_FILE.findall(section.group(1))) > 20
    assert unknown_files(section.group(1)) == []
    assert unknown_files("- `shared/memegen/vision/`: `reader.py` and `render.py`") == [
        "shared/memegen/vision/render.py"
    ]
