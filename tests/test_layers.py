"""The library's layers, as its folders say: what each may import, and how big a folder or module may grow.

base (the package root) <- vision <- meme <- cloud; offline reads vision. The base's entry points
(``__init__``'s ``make_meme``, ``__main__``'s command line) put the layers together and may import any.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import memegen

PACKAGE = Path(memegen.__file__).resolve().parent
# The layers each layer may import, besides the base (which every module may).
MAY_IMPORT = {
    "base": set(),
    "vision": {"vision"},
    "meme": {"vision", "meme"},
    "cloud": {"vision", "meme", "cloud"},
    "offline": {"vision", "offline"},
}
ENTRY_POINTS = {"__init__.py", "__main__.py"}
MAX_MODULES = 12
MAX_LINES = 450


def _layer(parts: tuple[str, ...]) -> str:
    """The layer of ``memegen.<parts>``: its subpackage, or the base for a module at the package root."""
    return parts[0] if len(parts) > 1 and parts[0] in MAY_IMPORT else "base"


def _imported(tree: ast.AST) -> list[str]:
    """Every ``memegen`` module a module imports, at the top or inside a function or TYPE_CHECKING block."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            if node.module == "memegen":
                names += [f"memegen.{alias.name}" for alias in node.names]
    return [name for name in names if name.startswith("memegen.")]


def violations(package: Path) -> list[str]:
    """Each import of a layer that the importing module's layer may not import, as ``module -> imported``."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.as_posix() in ENTRY_POINTS:
            continue
        layer = _layer(relative.parts)
        for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            first = name.split(".")[1]
            target = first if first in MAY_IMPORT else "base"
            if target != "base" and target not in MAY_IMPORT[layer]:
                found.append(f"{relative.as_posix()} -> {name}")
    return found


def test_each_layer_imports_only_the_layers_below_it() -> None:
    assert violations(PACKAGE) == []


def test_the_check_sees_an_import_of_a_layer_above(tmp_path: Path) -> None:
    copy = tmp_path / "memegen"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    crop = copy / "vision" / "crop.py"
    crop.write_text(crop.read_text(encoding="utf-8") + "\nfrom memegen.meme.captions import MAX_CAPTION\n")
    settings = copy / "settings.py"
    settings.write_text(settings.read_text(encoding="utf-8") + "\nimport memegen.cloud.api\n")
    assert violations(copy) == ["settings.py -> memegen.cloud.api", "vision/crop.py -> memegen.meme.captions"]


def test_no_folder_holds_more_than_12_modules_and_no_module_is_over_450_lines() -> None:
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    crowded = {folder.name: n for folder in folders if (n := len(list(folder.glob("*.py")))) > MAX_MODULES}
    assert crowded == {}
    long = {
        path.relative_to(PACKAGE).as_posix(): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
