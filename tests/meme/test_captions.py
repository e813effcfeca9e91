"""The caption bank's contents and the chooser's rules: bank choice, determinism, spread, overrides."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from memegen.errors import CaptionsExhausted, MemeGenError
from memegen.labels import LABELS
from memegen.meme.captions import (
    CAPTIONS_FILE,
    GROUP_KINDS,
    MAX_LINE,
    Caption,
    CaptionBank,
    CaptionBankError,
    choose_caption,
)

IDEAL_LINE = 40


def seed(n: int | str) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = json.loads(CAPTIONS_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def bank() -> CaptionBank:
    return CaptionBank.load()


def all_lines(bank: CaptionBank) -> list[tuple[str, str]]:
    return [(name, line) for name in bank.names for pair in bank.pairs(name) for line in pair]


# --- the data -----------------------------------------------------------------------------------


def test_bank_sizes(raw: dict[str, Any]) -> None:
    assert set(raw) == {"labels", "groups", "adjectives", "no_face"}
    assert set(raw["labels"]) == set(LABELS)
    for label in LABELS:
        assert len(raw["labels"][label]) >= 40, label
    assert set(raw["groups"]) == set(GROUP_KINDS)
    assert set(GROUP_KINDS) == {f"all_{label}" for label in LABELS} | {"odd_one_out", "mixed"}
    for kind in GROUP_KINDS:
        assert len(raw["groups"][kind]) >= 15, kind
    assert len(raw["no_face"]) >= 30
    assert set(raw["adjectives"]) == set(LABELS)


def test_bank_names(bank: CaptionBank) -> None:
    expected = [*LABELS, *(f"group:{kind}" for kind in GROUP_KINDS), "no_face"]
    assert list(bank.names) == expected


def test_no_duplicate_pairs_within_a_bank(bank: CaptionBank) -> None:
    for name in bank.names:
        pairs = [(top.upper(), bottom.upper()) for top, bottom in bank.pairs(name)]
        assert len(pairs) == len(set(pairs)), name


def test_most_pairs_have_both_lines(bank: CaptionBank) -> None:
    for name in bank.names:
        pairs = bank.pairs(name)
        both = sum(1 for top, bottom in pairs if top and bottom)
        assert both >= 0.8 * len(pairs), name
        assert all(top or bottom for top, bottom in pairs), name


def test_line_lengths(bank: CaptionBank) -> None:
    lines = all_lines(bank)
    too_long = [(name, line) for name, line in lines if len(line) > MAX_LINE]
    assert not too_long
    assert MAX_LINE <= 70
    over_ideal = [(name, line) for name, line in lines if len(line) > IDEAL_LINE]
    assert len(over_ideal) <= 0.05 * len(lines), over_ideal


def test_placeholders_only_in_odd_one_out(bank: CaptionBank) -> None:
    for name, line in all_lines(bank):
        if name != "group:odd_one_out":
            assert "{" not in line and "}" not in line, (name, line)
    with_placeholders = [p for p in bank.pairs("group:odd_one_out") if "{" in p[0] + p[1]]
    assert len(with_placeholders) >= 8


def test_adjectives(bank: CaptionBank) -> None:
    for label in LABELS:
        words = bank.adjectives(label)
        assert words and all(word and word == word.upper() for word in words), label
    assert len({bank.adjectives(label)[0] for label in LABELS}) == len(LABELS)


def test_every_entry_is_fully_filled(bank: CaptionBank) -> None:
    # One seed per odd_one_out entry (the index hash is pinned below), then every (rest, odd) pair of labels.
    size = len(bank.pairs("group:odd_one_out"))
    seeds: dict[int, bytes] = {}
    n = 0
    while len(seeds) < size:
        s = seed(n)
        seeds.setdefault(int.from_bytes(hashlib.sha256(s + b"group:odd_one_out").digest()[:8], "big") % size, s)
        n += 1
    for rest in LABELS:
        for odd in LABELS:
            if rest == odd:
                continue
            for s in seeds.values():
                caption = choose_caption([rest, rest, odd], bank=bank, seed=s)
                text = caption.top + caption.bottom
                assert "{" not in text and "}" not in text, (rest, odd, caption)
                assert len(caption.top) <= MAX_LINE and len(caption.bottom) <= MAX_LINE
    # Every other bank, reached through the chooser with faces that select it.
    selectors: list[list[str]] = [[], ["happy", "sad", "angry"], *([label] for label in LABELS)]
    selectors += [[label, label] for label in LABELS]
    reached = set()
    for labels in selectors:
        for n in range(300):
            caption = choose_caption(labels, bank=bank, seed=seed(n))
            assert "{" not in caption.top + caption.bottom and "}" not in caption.top + caption.bottom
            reached.add(caption.bank)
    assert reached | {"group:odd_one_out"} == set(bank.names)


def test_caption_bank_error_is_a_memegen_error() -> None:
    assert issubclass(CaptionBankError, MemeGenError)


# --- choosing -----------------------------------------------------------------------------------


def test_one_face_uses_its_label_bank(bank: CaptionBank) -> None:
    for label in LABELS:
        caption = choose_caption([label], bank=bank, seed=seed(label))
        assert caption.bank == label
        assert (caption.top, caption.bottom) in bank.pairs(label)


def test_no_face(bank: CaptionBank) -> None:
    caption = choose_caption([], bank=bank, seed=seed("landscape"))
    assert caption.bank == "no_face"
    assert (caption.top, caption.bottom) in bank.pairs("no_face")
    assert choose_caption((), bank=bank, seed=seed("landscape")) == caption


def test_determinism_across_loads() -> None:
    first, second = CaptionBank.load(), CaptionBank.load(CAPTIONS_FILE)
    assert first is not second
    for n in range(100):
        for labels in (["happy"], [], ["sad", "sad"], ["happy", "happy", "angry"], ["fear", "sad", "happy"]):
            assert choose_caption(labels, bank=first, seed=seed(n)) == choose_caption(labels, bank=second, seed=seed(n))


def test_same_seed_same_caption_different_seed_can_differ(bank: CaptionBank) -> None:
    a = choose_caption(["happy"], bank=bank, seed=seed(1))
    assert a == choose_caption(["happy"], bank=bank, seed=seed(1))
    assert any(choose_caption(["happy"], bank=bank, seed=seed(n)) != a for n in range(2, 10))


def test_index_is_the_documented_hash(bank: CaptionBank) -> None:
    # Pin the scheme: changing it would change every returning user's meme.
    s = seed("pinned")
    pairs = bank.pairs("neutral")
    index = int.from_bytes(hashlib.sha256(s + b"neutral").digest()[:8], "big") % len(pairs)
    caption = choose_caption(["neutral"], bank=bank, seed=s)
    assert (caption.top, caption.bottom) == pairs[index]


@pytest.mark.parametrize("label", LABELS)
def test_spread_over_a_label_bank(bank: CaptionBank, label: str) -> None:
    captions = {choose_caption([label], bank=bank, seed=seed(n)) for n in range(200)}
    assert len(captions) >= 25


def test_spread_over_no_face(bank: CaptionBank) -> None:
    captions = {choose_caption([], bank=bank, seed=seed(n)) for n in range(200)}
    assert len(captions) >= 20


def test_banks_are_decorrelated(bank: CaptionBank) -> None:
    # The same photo must not sit at the same index of every bank.
    def position(name: str, n: int) -> int:
        labels = [name] if name in LABELS else []
        caption = choose_caption(labels, bank=bank, seed=seed(n))
        return bank.pairs(name).index((caption.top, caption.bottom))

    same = sum(position("happy", n) == position("sad", n) for n in range(200))
    assert same < 40


# --- group rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("faces", [2, 3, 5])
def test_all_same(bank: CaptionBank, label: str, faces: int) -> None:
    caption = choose_caption([label] * faces, bank=bank, seed=seed(faces))
    assert caption.bank == f"group:all_{label}"
    assert (caption.top, caption.bottom) in bank.pairs(f"group:all_{label}")


@pytest.mark.parametrize(
    "labels",
    [
        ["happy", "happy", "angry"],
        ["angry", "happy", "happy"],
        ["happy", "sad", "happy", "happy"],
        ["neutral"] * 6 + ["surprise"],
    ],
)
def test_odd_one_out(bank: CaptionBank, labels: list[str]) -> None:
    caption = choose_caption(labels, bank=bank, seed=seed("odd"))
    assert caption.bank == "group:odd_one_out"


@pytest.mark.parametrize(
    "labels",
    [
        ["happy", "sad", "angry"],
        ["happy", "happy", "sad", "sad"],
        ["fear", "fear", "happy", "sad", "neutral"],
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
    ],
)
def test_mixed(bank: CaptionBank, labels: list[str]) -> None:
    caption = choose_caption(labels, bank=bank, seed=seed("mixed"))
    assert caption.bank == "group:mixed"
    assert (caption.top, caption.bottom) in bank.pairs("group:mixed")


def placeholder_data(raw: dict[str, Any]) -> dict[str, Any]:
    """The real bank with an odd_one_out bank whose every entry shows which word went where."""
    data = copy.deepcopy(raw)
    data["groups"]["odd_one_out"] = [{"top": f"REST {{rest}} {n}", "bottom": "ODD {odd}"} for n in range(15)]
    return data


def test_placeholders_name_the_right_faces(raw: dict[str, Any]) -> None:
    bank = CaptionBank(placeholder_data(raw))
    for n in range(30):
        caption = choose_caption(["sad", "happy", "happy"], bank=bank, seed=seed(n))
        rest_word = caption.top.removeprefix("REST ").rsplit(" ", 1)[0]
        odd_word = caption.bottom.removeprefix("ODD ")
        assert rest_word in bank.adjectives("happy")
        assert odd_word in bank.adjectives("sad")


def test_two_faces_the_biggest_sets_the_norm(raw: dict[str, Any]) -> None:
    bank = CaptionBank(placeholder_data(raw))
    for n in range(30):
        caption = choose_caption(["fear", "happy"], bank=bank, seed=seed(n))
        assert caption.bank == "group:odd_one_out"
        assert caption.top.removeprefix("REST ").rsplit(" ", 1)[0] in bank.adjectives("fear")
        assert caption.bottom.removeprefix("ODD ") in bank.adjectives("happy")
    swapped = choose_caption(["happy", "fear"], bank=bank, seed=seed(0))
    assert swapped.top.removeprefix("REST ").rsplit(" ", 1)[0] in bank.adjectives("happy")


def test_adjectives_are_spread_and_deterministic(raw: dict[str, Any]) -> None:
    bank = CaptionBank(placeholder_data(raw))
    odd_words = {choose_caption(["happy", "angry"], bank=bank, seed=seed(n)).bottom for n in range(100)}
    assert odd_words == {f"ODD {word}" for word in bank.adjectives("angry")}
    assert choose_caption(["happy", "angry"], bank=bank, seed=seed(5)) == choose_caption(
        ["happy", "angry"], bank=bank, seed=seed(5)
    )


def test_single_adjective_string_is_accepted(raw: dict[str, Any]) -> None:
    data = placeholder_data(raw)
    data["adjectives"]["angry"] = "CROSS"
    bank = CaptionBank(data)
    assert bank.adjectives("angry") == ("CROSS",)
    assert choose_caption(["happy", "angry"], bank=bank, seed=seed(0)).bottom == "ODD CROSS"


# --- user override ------------------------------------------------------------------------------


def test_user_both(bank: CaptionBank) -> None:
    caption = choose_caption(["happy"], bank=bank, seed=seed(0), top="  hello  ", bottom="\tworld\n")
    assert caption == Caption(top="hello", bottom="world", bank="user")


def test_user_top_only(bank: CaptionBank) -> None:
    caption = choose_caption([], bank=bank, seed=seed(0), top=" ONLY TOP ")
    assert caption == Caption(top="ONLY TOP", bottom="", bank="user")


def test_user_bottom_only(bank: CaptionBank) -> None:
    caption = choose_caption(["sad", "sad"], bank=bank, seed=seed(0), bottom="ONLY BOTTOM")
    assert caption == Caption(top="", bottom="ONLY BOTTOM", bank="user")


def test_user_text_is_not_formatted(bank: CaptionBank) -> None:
    caption = choose_caption(["happy", "angry"], bank=bank, seed=seed(0), top="{odd} {rest} {0}")
    assert caption.top == "{odd} {rest} {0}"


def test_blank_user_text_falls_back_to_the_bank(bank: CaptionBank) -> None:
    caption = choose_caption(["happy"], bank=bank, seed=seed(3), top="   ", bottom="")
    assert caption == choose_caption(["happy"], bank=bank, seed=seed(3))
    assert caption.bank == "happy"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [["joy"], ["happy", "Happy"], ["happy", ""], ["contempt", "sad", "sad"]])
def test_unknown_label_raises_value_error(bank: CaptionBank, labels: list[str]) -> None:
    with pytest.raises(ValueError, match="unknown expression label"):
        choose_caption(labels, bank=bank, seed=seed(0))


def test_unknown_label_raises_even_with_user_text(bank: CaptionBank) -> None:
    with pytest.raises(ValueError):
        choose_caption(["joy"], bank=bank, seed=seed(0), top="hi")


def test_bare_string_labels_rejected(bank: CaptionBank) -> None:
    with pytest.raises(TypeError):
        choose_caption("happy", bank=bank, seed=seed(0))


def test_seed_must_be_bytes(bank: CaptionBank) -> None:
    with pytest.raises(TypeError):
        choose_caption(["happy"], bank=bank, seed="abc")  # type: ignore[arg-type]


def _break(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


def _distinct(n: int) -> list[dict[str, str]]:
    return [{"top": f"T{i}", "bottom": f"B{i}"} for i in range(n)]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("labels", "happy"), _distinct(39), "at least 40"),
        (("labels", "happy"), _DELETE, "missing"),
        (("labels", "joy"), _distinct(40), "unknown"),
        (("labels",), [], "expected an object"),
        (("groups", "mixed"), _distinct(14), "at least 15"),
        (("groups", "all_sad"), _DELETE, "missing"),
        (("no_face",), _distinct(29), "at least 30"),
        (("no_face",), _DELETE, "missing"),
        (("no_face",), {"top": "A", "bottom": "B"}, "expected a list"),
        (("adjectives", "fear"), _DELETE, "missing"),
        (("adjectives", "fear"), [], "non-empty list"),
        (("adjectives", "fear"), ["SCARED", 3], "not a non-empty string"),
        (("adjectives", "fear"), ["{odd}"], "brace"),
        (("labels", "sad", 0), {"top": "A"}, "exactly 'top' and 'bottom'"),
        (("labels", "sad", 0), {"top": "A", "bottom": "B", "extra": "C"}, "exactly 'top' and 'bottom'"),
        (("labels", "sad", 0), {"top": "A", "bottom": None}, "must be strings"),
        (("labels", "sad", 0), {"top": 1, "bottom": "B"}, "must be strings"),
        (("labels", "sad", 0), {"top": " ", "bottom": ""}, "both empty"),
        (("labels", "sad", 0), ["A", "B"], "exactly 'top' and 'bottom'"),
        (("labels", "sad", 0), {"top": "X" * 71, "bottom": "B"}, "at most 70"),
        (("labels", "sad", 0), {"top": "ME: {odd}", "bottom": "B"}, "only allowed in group:odd_one_out"),
        (("labels", "sad", 0), {"top": "{name}", "bottom": "B"}, "stray brace"),
        (("groups", "odd_one_out", 0), {"top": "{name}", "bottom": "B"}, "unknown placeholder"),
        (("groups", "odd_one_out", 0), {"top": "X" * 60 + "{odd}", "bottom": "B"}, "once filled"),
        (("extra",), 1, "unknown"),
    ],
)
def test_invalid_bank_raises(raw: dict[str, Any], path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(CaptionBankError, match=re.escape(message)):
        CaptionBank(_break(raw, path, value))


def test_duplicate_pair_raises(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    first = data["labels"]["angry"][0]
    data["labels"]["angry"].append({"top": first["top"].lower(), "bottom": "  " + first["bottom"]})
    with pytest.raises(CaptionBankError, match="repeats"):
        CaptionBank(data)


def test_not_a_mapping_raises() -> None:
    with pytest.raises(CaptionBankError):
        CaptionBank([])  # type: ignore[arg-type]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptionBankError, match="cannot read"):
        CaptionBank.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CaptionBankError, match="not JSON"):
        CaptionBank.load(bad)
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"labels": {}}), encoding="utf-8")
    with pytest.raises(CaptionBankError, match=re.escape(small.name)):
        CaptionBank.load(small)


def test_valid_copy_still_loads(raw: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert CaptionBank.load(path).names == CaptionBank.load().names


def test_another_caption_differs_until_the_bank_is_used_up(bank: CaptionBank) -> None:
    seed = hashlib.sha256(b"one photo").digest()
    size = len(bank.pairs("happy"))
    captions = [choose_caption(["happy"], bank=bank, seed=seed, variant=n) for n in range(size)]
    assert captions[0] == choose_caption(["happy"], bank=bank, seed=seed)  # variant 0 is the photo's caption
    assert len({(c.top, c.bottom) for c in captions}) == size  # every variant a different caption
    with pytest.raises(CaptionsExhausted, match="no more captions"):
        choose_caption(["happy"], bank=bank, seed=seed, variant=size)
    with pytest.raises(ValueError, match="variant"):
        choose_caption(["happy"], bank=bank, seed=seed, variant=-1)


def test_a_jubilant_team_reads_as_one_despite_a_small_frown_at_the_back(bank: CaptionBank) -> None:
    labels = ["happy"] * 19 + ["sad"]
    sizes = [40.0 * 40.0] * 19 + [15.0 * 15.0]  # the odd face is small, at the back
    weighted = choose_caption(labels, weights=[s * 0.9 for s in sizes], bank=bank, seed=seed("team"))
    assert weighted.bank == "group:all_happy"
    # One vote each, the same faces are an odd one out; and a real split stays one.
    assert choose_caption(labels, bank=bank, seed=seed("team")).bank == "group:odd_one_out"
    split = choose_caption(["happy"] * 3 + ["sad"] * 2, weights=[1.0] * 5, bank=bank, seed=seed("split"))
    assert split.bank == "group:mixed"
    # Two faces keep their joke: the other face is the odd one, whatever its size.
    pair = choose_caption(["happy", "sad"], weights=[100.0, 1.0], bank=bank, seed=seed("pair"))
    assert pair.bank == "group:odd_one_out"
    with pytest.raises(ValueError, match="weights"):
        choose_caption(labels, weights=[1.0], bank=bank, seed=seed("team"))
