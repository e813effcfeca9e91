"""The build's choice of members: forward selection within the time budget, pruning by the gain a member brings.

The selection logic is checked on a scripted objective (which member sets score what), so that each
rule is seen alone; the smoke training run in ``test_training.py`` runs it on real members.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

pytest.importorskip("torch", reason="the build's tools are in requirements-train.txt")

from models.train import build

# Members 0-2 read FER2013's faces, 3 and 4 are the JAFFE and LFW ones.
POPULATIONS = ["fer2013", "fer2013", "fer2013", "jaffe", "lfw"]


@dataclass
class Scripted:
    """A pool whose cross-validated objective is a table: the score of each set of members."""

    scores: dict[frozenset[int], float]
    asked: list[frozenset[int]] = field(default_factory=list)

    def cross_validated(self, probs: np.ndarray, members: list[int]) -> float:
        return self.weighted(self.judged_readings(probs, members))

    def judged_readings(self, probs: np.ndarray, members: list[int]) -> dict[str, float]:
        # The table's score, as if the objective counted FER2013's faces alone.
        key = frozenset(members)
        self.asked.append(key)
        return {"fer2013": self.scores.get(key, 0.0)}

    def weighted(self, readings: dict[str, float]) -> float:
        return readings["fer2013"]


def _greedy(pool: Scripted, **kw: object) -> list[int]:
    keep, _ = build.greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=3, **kw)  # type: ignore[arg-type]
    return keep


def test_forward_selection_stops_at_the_time_budget() -> None:
    # Every FER2013 member added raises the objective: only the budget stops the selection.
    scores = {frozenset(fer): 0.6 + 0.02 * len(fer) - 0.001 * sum(fer) for fer in _subsets([0, 1, 2])}
    assert _greedy(Scripted(scores)) == [0, 1, 2, 3, 4]
    # The two population members cost 1 ms a face each, a FER2013 member 1.5 ms: 4 ms fit one, 5 ms two.
    costs = [1.5, 1.5, 1.5, 1.0, 1.0]
    assert _greedy(Scripted(scores), costs=costs, budget_ms=4.0) == [0, 3, 4]
    assert _greedy(Scripted(scores), costs=costs, budget_ms=5.0) == [0, 1, 3, 4]
    # The first member is taken whatever it costs: the ensemble must read faces in the wild.
    assert _greedy(Scripted(scores), costs=costs, budget_ms=1.0) == [0, 3, 4]


def test_forward_selection_stops_when_no_member_adds_min_gain() -> None:
    gain = build.MIN_GAIN
    scores = {
        frozenset({0}): 0.60,
        frozenset({1}): 0.59,
        frozenset({2}): 0.58,
        frozenset({0, 1}): 0.60 + 0.9 * gain,  # below the gain a member must bring
        frozenset({0, 2}): 0.60 + 0.5 * gain,
    }
    assert _greedy(Scripted(scores)) == [0, 3, 4]
    # The step that stopped is recorded, with what each member left would have given.
    _, steps = build.greedy_fer_members(np.zeros((1, 5, 7)), Scripted(scores), POPULATIONS, most=3)  # type: ignore[arg-type]
    tried = [{0: 0.60, 1: 0.59, 2: 0.58}, {1: 0.60 + 0.9 * gain, 2: 0.60 + 0.5 * gain}]
    assert steps == [
        {"added": 0, "score": 0.60, "tried": tried[0], "readings": {c: {"fer2013": v} for c, v in tried[0].items()}},
        {"added": None, "score": 0.60, "tried": tried[1], "readings": {c: {"fer2013": v} for c, v in tried[1].items()}},
    ]
    scores[frozenset({0, 2})] = 0.60 + 1.1 * gain
    assert _greedy(Scripted(scores)) == [0, 2, 3, 4]


def test_forward_selection_judges_fer2013_members_without_the_members_pruned_after() -> None:
    # Member 1 reads best alone; with the JAFFE and LFW members (3, 4) mixed in, member 0 would win.
    scores = {frozenset({0}): 0.60, frozenset({1}): 0.62, frozenset({0, 3, 4}): 0.65, frozenset({1, 3, 4}): 0.58}
    pool = Scripted(scores)
    assert _greedy(pool) == [1, 3, 4]
    # Every set it scored holds FER2013 members only: the others are pruned after, by their own gain.
    assert pool.asked and all(key <= {0, 1, 2} for key in pool.asked)


def test_a_population_member_goes_unless_it_raises_the_objective_by_min_gain() -> None:
    gain = build.MIN_GAIN
    scores = {
        frozenset({0, 1, 2}): 0.70,
        frozenset({0, 2}): 0.70 - 0.5 * gain,  # JAFFE's member (1) adds half the gain: it goes
        frozenset({0}): 0.70 - 2.0 * gain,  # LFW's (2) adds twice the gain, JAFFE's gone: it stays
    }
    pool = Scripted(scores)
    keep, steps = build.prune_population_members(np.zeros((1, 3, 7)), pool, ["fer2013", "jaffe", "lfw"])  # type: ignore[arg-type]
    assert keep == [0, 2]
    assert [step["kept"] for step in steps] == [False, True]


def _subsets(items: list[int]) -> list[tuple[int, ...]]:
    return [tuple(i for i in items if mask >> i & 1) for mask in range(1, 2 ** len(items))]


def test_the_greedy_record_splits_each_score_by_the_populations_the_objective_counts() -> None:
    """A tried set's reading of FER2013's and JAFFE's faces (the judged mix's), and the card's cell for it."""
    from models.train import card

    data: dict[str, np.ndarray] = {}
    for population in build.POPULATIONS:
        data[f"{population}_x"] = np.zeros((8, 48, 48), np.uint8)
        data[f"{population}_y"] = np.arange(8) % 7
        data[f"{population}_split"] = np.full(8, 1)  # every face a validation face
    pool = build.Pool.of(data, "judged mix", seed=0)
    right = np.eye(7)[pool.y]
    # Member 0 reads every face right; member 1 only FER2013's (JAFFE's and the rest it reads as the next label).
    wrong = np.eye(7)[(pool.y + 1) % 7]
    fer = (pool.origin == build.POPULATIONS.index("fer2013"))[:, None]
    probs = np.stack([right, np.where(fer, right, wrong)], 1)
    assert pool.judged_readings(probs, [0]) == {"fer2013": 1.0, "jaffe": 1.0}
    assert pool.judged_readings(probs, [1]) == {"fer2013": 1.0, "jaffe": 0.0}
    # The objective is those readings weighted: the judged mix's FER2013 share for member 1.
    assert pool.cross_validated(probs, [1]) == pytest.approx(pool.share[0], abs=1e-12)

    report = {
        "min_gain": build.MIN_GAIN,
        "views": {"budget_ms": 8.0},
        "greedy": [
            {
                "added": "fer_x",
                "score": 0.6,
                "tried": {"fer_x": 0.6, "fer_y": 0.55},
                "readings": {"fer_x": {"fer2013": 0.61, "jaffe": 0.56}, "fer_y": {"fer2013": 0.69, "jaffe": 0.0}},
            }
        ],
    }
    row = card._greedy_table(report)[-1]
    assert "fer_x 60.0% (fer2013 val 61.0%, jaffe val 56.0%), fer_y 55.0% (fer2013 val 69.0%, jaffe val 0.0%)" in row
