"""The README against the code: its table of settings is the one the settings generate."""

from __future__ import annotations

from pathlib import Path

from memegen.settings import MARKERS, main, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def _text(name: str) -> str:
    return (ROOT / name).read_text()


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
