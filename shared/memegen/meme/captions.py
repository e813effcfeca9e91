"""The caption stage: a bank of top/bottom meme captions, and a deterministic chooser.

The captions are data (``captions.json`` beside this module), validated once when
the bank is built. The chooser maps the faces' expression labels to one bank and
picks an entry by hashing the caller's seed (the SHA-256 of the uploaded image),
so a retried upload gets the same meme while different photos spread over the bank.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memegen.errors import CaptionBankError, CaptionRefused, CaptionsExhausted
from memegen.labels import LABELS
from memegen.meme.fonts import SCRIPTS, undrawable

CAPTIONS_FILE = Path(__file__).resolve().with_name("captions.json")

MIN_LABEL_PAIRS = 40
MIN_GROUP_PAIRS = 15
MIN_NO_FACE_PAIRS = 30
# The renderer shrinks the font to fit; past this a line is unreadable on a phone.
MAX_LINE = 70
# The share of a group's weight (face area times confidence) one label needs to speak for the group.
CONSENSUS = 0.75

GROUP_KINDS: tuple[str, ...] = (*(f"all_{label}" for label in LABELS), "odd_one_out", "mixed")
NO_FACE = "no_face"
USER = "user"
GROUP_PREFIX = "group:"
ODD_ONE_OUT = GROUP_PREFIX + "odd_one_out"
MIXED = GROUP_PREFIX + "mixed"
_PLACEHOLDERS = ("{odd}", "{rest}")
_SECTIONS = frozenset({"labels", "groups", "adjectives", NO_FACE})

Pair = tuple[str, str]

# A person's own caption: at most this many characters a line.
MAX_CAPTION = 120
# Cc: C0/C1 controls (newline and tab included); Zl/Zp: the Unicode line and paragraph separators.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def own_caption(value: str | None, *, name: str) -> str | None:
    """A person's own caption line, stripped, or None for none; ``CaptionRefused`` past the limits.

    The api checks what it signs, and the engine checks again whatever reaches it, so that
    text from anywhere else (unsigned object metadata, the command line) meets the same limits.
    """
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_CAPTION:
        raise CaptionRefused(f"{name} is {len(text)} characters long; the limit is {MAX_CAPTION}")
    if any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in text):
        raise CaptionRefused(f"{name} must not contain control characters (newlines and tabs included)")
    if missing := undrawable(text):
        shown = missing if len(missing) <= 8 else missing[:8] + "..."
        raise CaptionRefused(f"{name} has characters MemeGen cannot draw ({shown}): use {SCRIPTS}")
    return text or None


@dataclass(frozen=True)
class Caption:
    """The two lines of a meme and the bank they came from.

    ``bank`` is a label (``"happy"``), ``"group:<kind>"`` (``"group:odd_one_out"``),
    ``"no_face"``, or ``"user"`` for a caption the user typed.
    """

    top: str
    bottom: str
    bank: str


class CaptionBank:
    """Validated, immutable caption banks: one per label, one per group kind, and ``no_face``.

    Bank names are the labels, ``"group:<kind>"`` for each of ``GROUP_KINDS``, and ``"no_face"``.
    Build it once (``CaptionBank.load()``) and share it: it is read-only.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        """Validate ``data`` (the parsed ``captions.json``) and keep a copy of it.

        Raises ``CaptionBankError`` naming the first rule broken: a missing or unknown
        section, label or group kind; a bank under its minimum size; a pair without a
        ``str`` top and bottom, with both empty, with a line over ``MAX_LINE``, or
        repeated within its bank; a placeholder outside ``odd_one_out``; or a label
        without adjectives.
        """
        if not isinstance(data, Mapping):
            raise CaptionBankError(f"caption bank: expected a JSON object, got {type(data).__name__}")
        _exact_keys(data, _SECTIONS, "caption bank")
        # Adjectives first: they bound the length of a filled odd_one_out line.
        adjectives = _section(data, "adjectives")
        _exact_keys(adjectives, frozenset(LABELS), "adjectives")
        self._adjectives: dict[str, tuple[str, ...]] = {
            label: _adjective_list(adjectives[label], label) for label in LABELS
        }
        longest_adjective = max(len(word) for words in self._adjectives.values() for word in words)

        self._banks: dict[str, tuple[Pair, ...]] = {}
        labels = _section(data, "labels")
        _exact_keys(labels, frozenset(LABELS), "labels")
        for label in LABELS:
            self._banks[label] = _pairs(labels[label], name=label, minimum=MIN_LABEL_PAIRS)
        groups = _section(data, "groups")
        _exact_keys(groups, frozenset(GROUP_KINDS), "groups")
        for kind in GROUP_KINDS:
            name = GROUP_PREFIX + kind
            self._banks[name] = _pairs(
                groups[kind],
                name=name,
                minimum=MIN_GROUP_PAIRS,
                fill_width=longest_adjective if name == ODD_ONE_OUT else None,
            )
        self._banks[NO_FACE] = _pairs(data[NO_FACE], name=NO_FACE, minimum=MIN_NO_FACE_PAIRS)

    @classmethod
    def load(cls, path: Path | None = None) -> CaptionBank:
        """Read and validate a caption bank file; by default ``captions.json`` beside this module.

        Raises ``CaptionBankError`` if the file cannot be read, is not JSON, or is not a valid bank.
        """
        path = CAPTIONS_FILE if path is None else path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CaptionBankError(f"caption bank {path}: cannot read it ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise CaptionBankError(f"caption bank {path}: not JSON ({exc})") from exc
        try:
            return cls(data)
        except CaptionBankError as exc:
            raise CaptionBankError(f"{path}: {exc}") from exc

    @property
    def names(self) -> tuple[str, ...]:
        """Every bank's name: the labels, then ``"group:<kind>"`` per kind, then ``"no_face"``."""
        return tuple(self._banks)

    def pairs(self, name: str) -> tuple[Pair, ...]:
        """The ``(top, bottom)`` pairs of one bank, placeholders unfilled. ``KeyError`` if unknown."""
        return self._banks[name]

    def adjectives(self, label: str) -> tuple[str, ...]:
        """The words that may replace ``{odd}``/``{rest}`` for ``label``. ``KeyError`` if unknown."""
        return self._adjectives[label]


def choose_caption(
    labels: Sequence[str],
    *,
    bank: CaptionBank,
    seed: bytes,
    top: str | None = None,
    bottom: str | None = None,
    variant: int = 0,
    weights: Sequence[float] | None = None,
) -> Caption:
    """Pick the caption for a photo whose faces show ``labels`` (biggest face first).

    The bank: no face -> ``no_face``; one face -> that label's bank; two or more ->
    ``group:all_<label>`` when all agree, ``group:odd_one_out`` when all but exactly
    one agree, ``group:mixed`` otherwise. Two faces that differ count as odd one out,
    the biggest face setting the norm (``{rest}``) and the other being the odd one:
    the biggest face is usually the subject, and the smaller one reacting differently
    is the joke. The entry, and the adjectives filled into ``{odd}`` and ``{rest}``,
    are picked by hashing ``seed`` with the bank's name, so the same seed always gives
    the same caption.

    If ``top`` or ``bottom`` is given and not blank, they are returned stripped (a
    missing one as ``""``) with bank ``"user"``, and no bank is used. All-blank input
    (an empty form field, say) falls back to the bank rather than giving a blank meme.

    ``weights`` (one per label, e.g. face area times confidence) let a group of three or more read
    as one: when the faces of one label carry ``CONSENSUS`` of the weight, the group is
    ``group:all_<label>`` however many small or unsure faces read otherwise (a jubilant team
    with one frowning face at the back). Without weights every face counts the same.

    ``variant`` n > 0 asks for another caption of the same photo: the bank's entry n places
    after variant 0's, so variants 0 to size - 1 are all different; past that the bank is
    exhausted (``CaptionsExhausted``).

    Raises ``ValueError`` for a label not in ``memegen.labels.LABELS``.
    """
    if isinstance(labels, str):
        # A bare string is a Sequence[str] too; iterating it would report one letter as the unknown label.
        raise TypeError(f"labels must be a sequence of labels, not the string {labels!r}")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown expression label(s) {unknown}: expected some of {list(LABELS)}")
    if not isinstance(seed, bytes):
        raise TypeError(f"seed must be bytes (the SHA-256 of the image), not {type(seed).__name__}")

    if top is not None or bottom is not None:
        user_top, user_bottom = (top or "").strip(), (bottom or "").strip()
        if user_top or user_bottom:
            return Caption(top=user_top, bottom=user_bottom, bank=USER)

    if weights is not None and len(weights) != len(labels):
        raise ValueError(f"{len(weights)} weights for {len(labels)} labels")
    if variant < 0:
        raise ValueError(f"variant must be 0 or more, not {variant}")
    name, rest, odd = _bank_for(labels, weights)
    pairs = bank.pairs(name)
    if variant >= len(pairs):
        raise CaptionsExhausted(
            f"MemeGen has no more captions for this photo (all {len(pairs)} were used): write your own"
        )
    chosen_top, chosen_bottom = pairs[(_index(seed, name, len(pairs)) + variant) % len(pairs)]
    if rest is not None and odd is not None:
        words = {
            "{rest}": _adjective(bank, seed, role="rest", label=rest),
            "{odd}": _adjective(bank, seed, role="odd", label=odd),
        }
        chosen_top, chosen_bottom = _fill(chosen_top, words), _fill(chosen_bottom, words)
    return Caption(top=chosen_top, bottom=chosen_bottom, bank=name)


def odd_one_out(labels: Sequence[str], *, weights: Sequence[float] | None = None) -> int | None:
    """The index in ``labels`` (biggest face first) of the face a ``group:odd_one_out`` caption is about.

    None when ``choose_caption`` would pick another bank for these faces. Of two faces that
    differ, the smaller one is odd (see ``choose_caption``); of more, the one whose label differs.
    """
    name, rest, _ = _bank_for(labels, weights)
    if name != ODD_ONE_OUT:
        return None
    return 1 if len(labels) == 2 else next(index for index, label in enumerate(labels) if label != rest)


def _bank_for(labels: Sequence[str], weights: Sequence[float] | None = None) -> tuple[str, str | None, str | None]:
    """The bank's name, and the ``rest`` and ``odd`` labels when it is odd one out."""
    if not labels:
        return NO_FACE, None, None
    if len(labels) == 1:
        return labels[0], None, None
    if weights is not None and len(labels) >= 3 and (total := sum(max(w, 0.0) for w in weights)) > 0:
        shares: dict[str, float] = {}
        for label, weight in zip(labels, weights, strict=True):
            shares[label] = shares.get(label, 0.0) + max(weight, 0.0) / total
        leader, share = max(shares.items(), key=lambda item: item[1])
        if share >= CONSENSUS:
            return f"{GROUP_PREFIX}all_{leader}", None, None
    counts = Counter(labels)
    if len(counts) == 1:
        return f"{GROUP_PREFIX}all_{labels[0]}", None, None
    if len(labels) == 2:
        return ODD_ONE_OUT, labels[0], labels[1]
    (rest, shared), *_ = counts.most_common(1)
    if shared == len(labels) - 1:
        odd = next(label for label in labels if label != rest)
        return ODD_ONE_OUT, rest, odd
    return MIXED, None, None


def _index(seed: bytes, salt: str, size: int) -> int:
    # Salting with the bank's name decorrelates the banks: one photo's position in
    # the happy bank says nothing about its position in the sad one.
    digest = hashlib.sha256(seed + salt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % size


def _adjective(bank: CaptionBank, seed: bytes, *, role: str, label: str) -> str:
    words = bank.adjectives(label)
    return words[_index(seed, f"adjective:{role}:{label}", len(words))]


def _fill(line: str, words: Mapping[str, str]) -> str:
    # Plain replacement, not str.format: a stray brace in the data must not raise at request time.
    for placeholder, word in words.items():
        line = line.replace(placeholder, word)
    return line


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data[key]
    if not isinstance(value, Mapping):
        raise CaptionBankError(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _exact_keys(data: Mapping[str, Any], expected: frozenset[str], where: str) -> None:
    # Strict both ways: a misspelt key would otherwise silently drop a bank.
    missing = sorted(expected - set(data))
    unknown = sorted(set(data) - expected)
    if missing or unknown:
        raise CaptionBankError(f"{where}: missing {missing}, unknown {unknown}")


def _adjective_list(value: Any, label: str) -> tuple[str, ...]:
    words = [value] if isinstance(value, str) else value
    if not isinstance(words, list) or not words:
        raise CaptionBankError(f"adjectives.{label}: expected a word or a non-empty list of words")
    result: list[str] = []
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise CaptionBankError(f"adjectives.{label}: {word!r} is not a non-empty string")
        if "{" in word or "}" in word:
            raise CaptionBankError(f"adjectives.{label}: {word!r} contains a brace")
        result.append(word.strip())
    return tuple(result)


def _pairs(value: Any, *, name: str, minimum: int, fill_width: int | None = None) -> tuple[Pair, ...]:
    """Validate one bank; ``fill_width`` (the longest adjective) allows placeholders, else none may appear."""
    if not isinstance(value, list):
        raise CaptionBankError(f"{name}: expected a list of pairs, got {type(value).__name__}")
    if len(value) < minimum:
        raise CaptionBankError(f"{name}: {len(value)} pairs, at least {minimum} needed")
    pairs: list[Pair] = []
    seen: set[Pair] = set()
    for number, entry in enumerate(value):
        where = f"{name}[{number}]"
        if not isinstance(entry, Mapping) or set(entry) != {"top", "bottom"}:
            raise CaptionBankError(f"{where}: expected an object with exactly 'top' and 'bottom'")
        top, bottom = entry["top"], entry["bottom"]
        if not isinstance(top, str) or not isinstance(bottom, str):
            raise CaptionBankError(f"{where}: top and bottom must be strings")
        pair = (top.strip(), bottom.strip())
        if not any(pair):
            raise CaptionBankError(f"{where}: top and bottom are both empty")
        for line in pair:
            _check_line(line, where=where, fill_width=fill_width)
        # Case and spacing do not make a different caption; a repeat would just be picked twice as often.
        key = (" ".join(pair[0].upper().split()), " ".join(pair[1].upper().split()))
        if key in seen:
            raise CaptionBankError(f"{where}: repeats an earlier pair {pair}")
        seen.add(key)
        pairs.append(pair)
    return tuple(pairs)


def _check_line(line: str, *, where: str, fill_width: int | None) -> None:
    bare = line
    for placeholder in _PLACEHOLDERS:
        bare = bare.replace(placeholder, "")
    if bare != line and fill_width is None:
        raise CaptionBankError(f"{where}: placeholders are only allowed in {ODD_ONE_OUT}: {line!r}")
    if "{" in bare or "}" in bare:
        raise CaptionBankError(f"{where}: stray brace or unknown placeholder in {line!r}")
    # Measure the line as it will be rendered: every placeholder as the longest adjective.
    filled = len(bare) + sum(line.count(p) for p in _PLACEHOLDERS) * (fill_width or 0)
    if filled > MAX_LINE:
        raise CaptionBankError(f"{where}: {filled} characters once filled, at most {MAX_LINE}: {line!r}")
