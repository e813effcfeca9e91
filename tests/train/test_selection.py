"""The build's choice of members: forward selection within the time budget, pruning by the gain a member brings.

The selection logic is checked on a scripted objective (which member sets score what), so that each
rule is seen alone; the smoke training run in ``test_training.py`` runs it on real members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the build's tools are in requirements-train.txt")

from models.train import prepare
from models.train.pool import MIN_GAIN, SE_RULE, Pool, choose_combination
from models.train.selection import greedy_fer_members, prune_population_members, select_within_budget
from models.train.weights import combine, fit_weights

# Members 0-2 read FER2013's faces, 3 and 4 are the JAFFE and LFW ones.
POPULATIONS = ["fer2013", "fer2013", "fer2013", "jaffe", "lfw"]


@dataclass
class Scripted:
    """A pool whose cross-validated objective is a table: the score of each set of members."""

    scores: dict[frozenset[int], float]
    asked: list[frozenset[int]] = field(default_factory=list)
    # The standard error of going to a set (the objective's noise), by set; none where absent.
    noise: dict[frozenset[int], float] = field(default_factory=dict)
    share: np.ndarray = field(default_factory=lambda: np.eye(len(prepare.POPULATIONS))[0])  # FER2013's faces alone

    def paired_se(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        return self.noise.get(frozenset(after), 0.0)

    def needed_gain(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        return Pool.needed_gain(self, probs, before, after)  # type: ignore[arg-type]

    def alone(self, population: str) -> Scripted:
        return self

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
    keep, _ = greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=3, **kw)  # type: ignore[arg-type]
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


def _select(scores: dict[frozenset[int], float]) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
    """``select_within_budget`` on a scripted objective: FER2013 members cost 1.5 ms a face, the others 1 ms."""
    costs = [1.5, 1.5, 1.5, 1.0, 1.0]
    pool = Scripted(scores)
    return select_within_budget(np.zeros((1, 5, 7)), pool, POPULATIONS, most=3, costs=costs, budget_ms=3.9)  # type: ignore[arg-type]


def test_the_selection_goes_on_where_pruning_frees_the_budget() -> None:
    # Every FER2013 member raises the objective; the JAFFE and LFW members (3, 4) raise none: pruning drops them.
    scores = {frozenset(fer): 0.6 + 0.02 * len(fer) - 0.001 * sum(fer) for fer in _subsets([0, 1, 2])}
    scores |= {frozenset(fer) | others: scores[frozenset(fer)] for fer in scores for others in ({3}, {4}, {3, 4})}
    # 3.9 ms a face (_select's costs): with both population members in, one FER2013 member fits; once they go, two.
    keep, steps, pruning = _select(scores)
    assert keep == [0, 1]
    assert [(step["added"], step.get("fixed")) for step in steps] == [(0, None), (None, [3, 4]), (1, None), (None, [])]
    assert [(step["member"], step["kept"]) for step in pruning] == [(3, False), (4, False)]
    # The LFW member earns its weight and stays: the JAFFE member's millisecond alone fits no other member.
    scores[frozenset({0, 3, 4})] = scores[frozenset({0, 4})] = scores[frozenset({0})] + 2 * MIN_GAIN
    keep, steps, pruning = _select(scores)
    assert keep == [0, 4]
    assert [step["added"] for step in steps] == [0, None, None]
    # ... and the set pruning judged is unchanged: it is not judged again.
    assert [(step["member"], step["kept"]) for step in pruning] == [(3, False), (4, True)]


def test_forward_selection_stops_when_no_member_adds_min_gain() -> None:
    gain = MIN_GAIN
    scores = {
        frozenset({0}): 0.60,
        frozenset({1}): 0.59,
        frozenset({2}): 0.58,
        frozenset({0, 1}): 0.60 + 0.9 * gain,  # below the gain a member must bring
        frozenset({0, 2}): 0.60 + 0.5 * gain,
    }
    assert _greedy(Scripted(scores)) == [0, 3, 4]
    # The step that stopped is recorded, with what each member left would have given.
    _, steps = greedy_fer_members(np.zeros((1, 5, 7)), Scripted(scores), POPULATIONS, most=3)  # type: ignore[arg-type]
    tried = [{0: 0.60, 1: 0.59, 2: 0.58}, {1: 0.60 + 0.9 * gain, 2: 0.60 + 0.5 * gain}]
    assert steps == [
        {
            "added": 0,
            "score": 0.60,
            "tried": tried[0],
            "readings": {c: {"fer2013": v} for c, v in tried[0].items()},
            "alike": [0],
        },
        {
            "added": None,
            "score": 0.60,
            "tried": tried[1],
            "readings": {c: {"fer2013": v} for c, v in tried[1].items()},
            "needed": gain,
        },
    ]
    scores[frozenset({0, 2})] = 0.60 + 1.1 * gain
    assert _greedy(Scripted(scores)) == [0, 2, 3, 4]


@dataclass
class Mixed(Scripted):
    """A scripted pool whose objective also counts JAFFE's faces (a fifth), read as ``jaffe`` says."""

    jaffe: dict[frozenset[int], float] = field(default_factory=dict)
    share: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.0, 0.2, 0.0]))

    def judged_readings(self, probs: np.ndarray, members: list[int]) -> dict[str, float]:
        return {**super().judged_readings(probs, members), "jaffe": self.jaffe.get(frozenset(members), 0.0)}

    def weighted(self, readings: dict[str, float]) -> float:
        return 0.8 * readings["fer2013"] + 0.2 * readings["jaffe"]

    def alone(self, population: str) -> Scripted:
        # FER2013's faces alone: the table's FER2013 readings, with the same noise.
        return Scripted(self.scores, noise=self.noise)


def test_the_first_member_is_the_best_reader_of_faces_in_the_wild() -> None:
    # Member 1 scores the judged mix highest on JAFFE's faces; member 0 reads FER2013's best, and leads.
    fer = {frozenset({0}): 0.69, frozenset({1}): 0.665, frozenset({2}): 0.67, frozenset({0, 1}): 0.70}
    jaffe = {frozenset({0}): 0.58, frozenset({1}): 0.72, frozenset({2}): 0.60, frozenset({0, 1}): 0.70}
    # With member 0 in, member 2 would read FER2013 best, but member 1 raises the judged mix most: it joins.
    fer[frozenset({0, 2})], jaffe[frozenset({0, 2})] = 0.72, 0.50
    pool = Mixed(fer, jaffe=jaffe)
    keep, steps = greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=2)  # type: ignore[arg-type]
    assert [step["added"] for step in steps] == [0, 1]
    assert keep == [0, 1, 3, 4]
    assert steps[0]["alike"] == [0]


def test_among_members_that_read_the_wild_alike_the_judged_mix_chooses_the_first() -> None:
    fer = {frozenset({0}): 0.69, frozenset({1}): 0.665, frozenset({2}): 0.685}
    jaffe = {frozenset({0}): 0.58, frozenset({1}): 0.72, frozenset({2}): 0.65}
    # Member 2 reads FER2013's faces half a point worse than member 0, within a noise of one point;
    # member 1, 2.5 points worse, is not alike. Of the two alike, member 2 scores the judged mix best.
    pool = Mixed(fer, jaffe=jaffe, noise={frozenset({0}): 0.01})
    _, steps = greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=1)  # type: ignore[arg-type]
    assert (steps[0]["added"], steps[0]["alike"]) == (2, [0, 2])
    # Within a noise of 0.4 point, member 0 stands alone.
    pool = Mixed(fer, jaffe=jaffe, noise={frozenset({0}): 0.004})
    _, steps = greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=1)  # type: ignore[arg-type]
    assert (steps[0]["added"], steps[0]["alike"]) == (0, [0])


def test_the_first_member_needs_an_objective_that_counts_faces_in_the_wild() -> None:
    pool = Mixed({frozenset({0}): 0.69}, share=np.array([0.0, 0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="does not count fer2013"):
        greedy_fer_members(np.zeros((1, 5, 7)), pool, POPULATIONS, most=1)  # type: ignore[arg-type]


def test_a_member_joins_only_where_its_gain_is_larger_than_the_noise() -> None:
    gain = MIN_GAIN
    scores = {frozenset({0}): 0.60, frozenset({1}): 0.59, frozenset({2}): 0.58, frozenset({0, 1}): 0.60 + 5 * gain}
    # Member 1 adds five times the fixed step, but the two sets' readings differ by more noise than that.
    noisy = Scripted(scores, noise={frozenset({0, 1}): 6 * gain})
    assert _greedy(noisy) == [0, 3, 4]
    _, steps = greedy_fer_members(np.zeros((1, 5, 7)), noisy, POPULATIONS, most=3)  # type: ignore[arg-type]
    assert steps[-1]["added"] is None and steps[-1]["needed"] == pytest.approx(6 * gain)
    assert _greedy(Scripted(scores, noise={frozenset({0, 1}): 4 * gain})) == [0, 1, 3, 4]


def test_a_population_member_goes_where_what_it_adds_is_within_the_noise() -> None:
    gain = MIN_GAIN
    scores = {frozenset({0, 1}): 0.70, frozenset({0}): 0.70 - 3 * gain}

    def prune(noise: float) -> tuple[list[int], list[dict[str, Any]]]:
        pool = Scripted(scores, noise={frozenset({0, 1}): noise})
        return prune_population_members(np.zeros((1, 2, 7)), pool, ["fer2013", "jaffe"])  # type: ignore[arg-type]

    # The JAFFE member adds three times the fixed step: within a noise of four, it goes; of two, it stays.
    keep, steps = prune(4 * gain)
    assert keep == [0]
    assert steps[0]["needed"] == pytest.approx(4 * gain)
    assert prune(2 * gain)[0] == [0, 1]


def test_the_noise_of_a_change_is_paired_and_counted_by_population() -> None:
    """``Pool.paired_se``: only the faces two sets read differently make noise, each population by its share."""
    pool = _validation_pool(40)
    right, wrong = np.eye(7)[pool.y], np.eye(7)[(pool.y + 1) % 7]
    fer, jaffe, lfw = (pool.origin == prepare.POPULATIONS.index(name) for name in ("fer2013", "jaffe", "lfw"))
    # Member 0 reads half of FER2013's faces right, and every other face. Member 1 reads 4 of FER2013's
    # faces differently (2 gained, 2 lost: no change in accuracy, but noise), 30 of JAFFE's 40 and none of LFW's.
    read_by_first = ~fer | (np.arange(len(pool.y)) % 2 == 0)
    swapped = fer & (np.cumsum(fer) <= 4)
    read_by_second = (read_by_first ^ swapped) & ~(jaffe & (np.cumsum(jaffe) > 30)) & ~lfw
    first = np.where(read_by_first[:, None], right, wrong)
    second = np.where(read_by_second[:, None], right, wrong)
    probs = np.stack([first, second, first], 1)
    # With no real change, a population's accuracy changes with a variance of the share of its faces read
    # differently over their count: 4 of FER2013's 40, 10 of JAFFE's 40; LFW counts nothing in the judged mix.
    share = {name: pool.share[prepare.POPULATIONS.index(name)] for name in ("fer2013", "jaffe")}
    expected = np.sqrt(share["fer2013"] ** 2 * (4 / 40) / 40 + share["jaffe"] ** 2 * (10 / 40) / 40)
    assert pool.paired_se(probs, [0], [1]) == pytest.approx(expected, rel=1e-9)
    assert pool.paired_se(probs, [0], [2]) == 0.0
    assert pool.needed_gain(probs, [0], [2]) == MIN_GAIN
    assert pool.needed_gain(probs, [0], [1]) == pytest.approx(SE_RULE * expected, rel=1e-9)


def test_forward_selection_judges_fer2013_members_without_the_members_pruned_after() -> None:
    # Member 1 reads best alone; with the JAFFE and LFW members (3, 4) mixed in, member 0 would win.
    scores = {frozenset({0}): 0.60, frozenset({1}): 0.62, frozenset({0, 3, 4}): 0.65, frozenset({1, 3, 4}): 0.58}
    pool = Scripted(scores)
    assert _greedy(pool) == [1, 3, 4]
    # Every set it scored holds FER2013 members only: the others are pruned after, by their own gain.
    assert pool.asked and all(key <= {0, 1, 2} for key in pool.asked)


def test_a_population_member_goes_unless_it_raises_the_objective_by_min_gain() -> None:
    gain = MIN_GAIN
    scores = {
        frozenset({0, 1, 2}): 0.70,
        frozenset({0, 2}): 0.70 - 0.5 * gain,  # JAFFE's member (1) adds half the gain: it goes
        frozenset({0}): 0.70 - 2.0 * gain,  # LFW's (2) adds twice the gain, JAFFE's gone: it stays
    }
    pool = Scripted(scores)
    keep, steps = prune_population_members(np.zeros((1, 3, 7)), pool, ["fer2013", "jaffe", "lfw"])  # type: ignore[arg-type]
    assert keep == [0, 2]
    assert [step["kept"] for step in steps] == [False, True]


def _validation_pool(count: int) -> Pool:
    """The judged mix's pool of ``count`` blank validation faces a population, labelled 0, 1, ..., 6, 0, ..."""
    data: dict[str, np.ndarray] = {}
    for population in prepare.POPULATIONS:
        data[f"{population}_x"] = np.zeros((count, 1, 1), np.uint8)
        data[f"{population}_y"] = np.arange(count) % 7
        data[f"{population}_split"] = np.full(count, 1)  # every face a validation face
    return Pool.of(data, "judged mix", seed=0)


def _subsets(items: list[int]) -> list[tuple[int, ...]]:
    return [tuple(i for i in items if mask >> i & 1) for mask in range(1, 2 ** len(items))]


def test_the_greedy_record_splits_each_score_by_the_populations_the_objective_counts() -> None:
    """A tried set's reading of FER2013's and JAFFE's faces (the judged mix's), and the card's cell for it."""
    from models.train import card

    pool = _validation_pool(8)
    right = np.eye(7)[pool.y]
    # Member 0 reads every face right; member 1 only FER2013's (JAFFE's and the rest it reads as the next label).
    wrong = np.eye(7)[(pool.y + 1) % 7]
    fer = (pool.origin == prepare.POPULATIONS.index("fer2013"))[:, None]
    probs = np.stack([right, np.where(fer, right, wrong)], 1)
    assert pool.judged_readings(probs, [0]) == {"fer2013": 1.0, "jaffe": 1.0}
    assert pool.judged_readings(probs, [1]) == {"fer2013": 1.0, "jaffe": 0.0}
    # The objective is those readings weighted: the judged mix's FER2013 share for member 1.
    assert pool.cross_validated(probs, [1]) == pytest.approx(pool.share[0], abs=1e-12)

    report: dict[str, Any] = {
        "min_gain": MIN_GAIN,
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
    # A step the budget stopped says so, and which other members the budget counted then.
    report["greedy"].append(
        {"added": None, "score": 0.6, "tried": {}, "readings": {}, "over_budget_with": ["lfw", "jaffe"]}
    )
    assert card._greedy_table(report)[-1] == "| 2 | none (none fits the budget with lfw, jaffe in) | 60.0% |  |"
    # Only a build that weighed the noise has a "gain needed" column, and says how it chose the first member
    # (earlier builds took a fixed step, and the best score first).
    text = "\n".join(card._greedy_table(report))
    assert "gain needed |" not in text and "the first is" not in text and "standard error" not in text
    report |= {"se_rule": 1.0, "first_reads": "fer2013"}
    report["greedy"][0]["alike"] = ["fer_x", "fer_y"]
    report["greedy"].insert(1, {**report["greedy"][0], "added": None, "needed": 0.0123})
    del report["greedy"][1]["alike"]
    table = card._greedy_table(report)
    assert "the one that reads fer2013 val best or, among those within the gain needed" in "\n".join(table)
    assert "1 standard error of the objective's change" in "\n".join(table)
    assert table[-3].startswith("| 1 | fer_x | 60.0% | fer_x, fer_y read fer2013 val alike | fer_x 60.0%")
    assert table[-2].startswith("| 2 | none (no recipe adds the gain needed) | 60.0% | 1.23 point | fer_x 60.0%")
    assert table[-1] == "| 3 | none (none fits the budget with lfw, jaffe in) | 60.0% |  |  |"


def _chasing_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """700 faces; 10 disgust faces weigh 40 each, as a small population's few faces weigh in the objective.

    Member 0 reads every face right at 0.6 but those ten (as neutral); member 1 reads those ten right,
    and every other face as a wrong label at 0.6. Returns the outputs, labels, weights and the ten.
    """
    rng = np.random.default_rng(0)
    y = np.arange(700) % 7
    few = np.flatnonzero(y == 1)[:10]
    right = np.full((700, 7), 0.4 / 6)
    right[np.arange(700), np.where(np.isin(np.arange(700), few), 6, y)] = 0.6
    other = np.full((700, 7), 0.4 / 6)
    other[np.arange(700), np.where(np.isin(np.arange(700), few), 1, (y + rng.integers(1, 7, 700)) % 7)] = 0.6
    weight = np.ones(700)
    weight[few] = 40.0
    return np.stack([right, other], 1), y, weight, few


def test_shrunk_weights_stay_closer_to_the_average_than_plain_log_loss_ones() -> None:
    probs, y, weight, few = _chasing_pool()
    free = fit_weights("logloss", probs, y, weight)
    shrunk = fit_weights("shrunk", probs, y, weight)
    for weights in (free, shrunk):
        # Both learn to trust member 1 for disgust, which reads the ten faces right.
        assert (combine(weights, probs).argmax(1) == y)[few].all()
        assert weights[1, 1] > 0.7
    # Elsewhere member 1 is only noise: the free fit silences it (measured: under 0.01), the shrunk
    # fit keeps it near the average (measured: 0.14 to 0.15; no penalty gives the free fit's).
    others = [c for c in range(7) if c not in (1, 6)]
    assert free[1, others].max() < 0.02
    assert shrunk[1, others].min() > 0.12


def test_members_views_and_objectives_are_judged_with_the_shrunk_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    probs, y, _, _ = _chasing_pool()
    pool = _validation_pool(len(y))
    assert (pool.y == np.tile(y, len(prepare.POPULATIONS))).all()
    probs = np.concatenate([probs] * len(prepare.POPULATIONS))
    methods: list[str] = []
    real = fit_weights

    def spy(method: str, *args: np.ndarray) -> np.ndarray:
        methods.append(method)
        return real(method, *args)

    # The pool fits every combination it judges, and the one it chooses: all through one name.
    monkeypatch.setattr("models.train.pool.fit_weights", spy)
    pool.cross_validated(probs, [0, 1])
    assert set(methods) == {"shrunk"}
    methods.clear()
    _, _, comparison = choose_combination(probs, pool)
    assert set(comparison["methods"]) == {"average", "precision", "logloss", "shrunk"}
    # Past the methods compared, the objectives' table is fitted with the shrunk weights alone.
    assert set(methods[: 2 * 4]) == {"average", "precision", "logloss", "shrunk"}
    assert set(methods[2 * 4 : -1]) == {"shrunk"}


def test_the_cross_validation_folds_keep_each_person_whole() -> None:
    """Weights fitted on one fold are judged on people they never saw: a person's faces share a fold."""
    data: dict[str, np.ndarray] = {}
    for population in prepare.POPULATIONS:
        data[f"{population}_x"] = np.zeros((120, 1, 1), np.uint8)
        data[f"{population}_y"] = np.arange(120) % 7
        data[f"{population}_split"] = np.arange(120) % 2  # every other face a training face
    # JAFFE's faces are three women's, 40 each, every face marked with its woman; FER2013's name no one.
    data["jaffe_identity"] = np.repeat(["KA", "KL", "KM"], 40)
    data["jaffe_x"] = np.repeat([1, 2, 3], 40).astype(np.uint8).reshape(120, 1, 1)
    data["fer2013_identity"] = np.full(120, "")
    pool = Pool.of(data, "judged mix", seed=0)
    assert len(pool.folds) == len(pool.y) == 4 * 60
    jaffe = pool.origin == prepare.POPULATIONS.index("jaffe")
    folds = [set(pool.folds[jaffe & (pool.x[:, 0, 0] == woman)]) for woman in (1, 2, 3)]
    assert all(len(fold) == 1 for fold in folds)
    assert set().union(*folds) == {0, 1}
    # Faces of no known person are split face by face, half and half.
    fer = pool.origin == prepare.POPULATIONS.index("fer2013")
    assert pool.folds[fer].sum() == 30
    # Faces prepared before people were recorded (no identity arrays): face by face too.
    del data["jaffe_identity"]
    assert Pool.of(data, "judged mix", seed=0).folds[jaffe].sum() == 30


def test_the_card_says_how_the_folds_and_weights_were_made_as_the_build_recorded() -> None:
    from models.train import card

    assert card._folds_text({}) == card._penalties_text({}) == []  # a build before either: nothing said
    said = " ".join(card._folds_text({"people_folds": ["jaffe", "imfdb"]}))
    assert "(`jaffe val`, `imfdb val`)" in said and "faces of `fer2013 val`, `lfw val` are split one by one" in said
    assert "one by one (the prepared faces record no people)" in " ".join(card._folds_text({"people_folds": []}))
    combination = {"selection_method": "shrunk", "penalties": {"logloss": 0.001, "shrunk": 0.1}}
    said = " ".join(card._penalties_text(combination))
    assert "(`logloss` 0.001, `shrunk` 0.1)" in said and "judged with `shrunk`" in said


def test_a_fitted_combination_replaces_the_plain_average_only_beyond_the_noise() -> None:
    """Weights fitted to the validation faces win only by more than the gain a member needs.

    Two members that read every face alike, one of them less sure: fitted weights may lower the
    log-loss but read no face differently, so the average stays (the best score, ties broken by
    log-loss, chose a fitted method before). Where member 1 alone reads a class right, the fit wins.
    """
    pool = _validation_pool(140)
    y = pool.y
    # Member 0 reads about a third of the faces as neutral, the rest right; member 1 the same, less sure.
    guess = np.where(np.random.default_rng(0).random(len(y)) < 0.3, 6, y)
    sure = np.full((len(y), 7), 0.02)
    sure[np.arange(len(y)), guess] = 0.88
    unsure = np.full((len(y), 7), 0.1)
    unsure[np.arange(len(y)), guess] = 0.4
    method, _, comparison = choose_combination(np.stack([sure, unsure], 1), pool)
    scores = {m: judged["score"] for m, judged in comparison["methods"].items()}
    assert (
        len(set(scores.values())) == 1
        and min(comparison["methods"][m]["log_loss"] for m in scores) < (comparison["methods"]["average"]["log_loss"])
    )
    assert method == "average"
    # Member 0 reads every angry face as sad and member 1 reads them right: the fit is worth its noise.
    angry = y == 0
    sure[angry] = 0.02
    sure[angry, 4] = 0.88
    helper = unsure.copy()
    helper[angry] = 0.05
    helper[angry, 0] = 0.7
    method, _, comparison = choose_combination(np.stack([sure, helper], 1), pool)
    gain = comparison["methods"][method]["score"] - comparison["methods"]["average"]["score"]
    assert method != "average" and gain >= comparison["methods"][method]["needed_gain"]
