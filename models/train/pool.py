"""What every choice of the build is judged on: the pooled validation faces, the objectives, the combination.

The ``Pool`` holds every population's validation faces (none of FER2013's public test), each counted
by the objective, with the two folds of every cross-validation; ``choose_combination`` picks how the
members' probabilities are weighted by the cross-validated objective.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from memegen.labels import LABELS
from models.train.members import scores_of
from models.train.prepare import POPULATIONS
from models.train.train import VAL
from models.train.weights import METHODS, SELECTION_METHOD, combine, fit_weights

log = logging.getLogger("build")

# What every choice of the build (views, members, combination) is judged by: accuracy on the mix
# of faces the ensemble is judged on, FER2013 faces in the wild of public_test's kind and posed
# faces of new people, in the proportions of issue 11's held-out sets (3,589 and 927 faces),
# estimated on FER2013's and JAFFE's validation splits. LFW's and IMFDB's validation faces are
# scored and reported beside (their members still compete), not fitted to: the card compares this
# objective with every population counting the same.
OBJECTIVES: dict[str, dict[str, float]] = {
    "judged mix": {"fer2013": 3589, "lfw": 0, "jaffe": 927, "imfdb": 0},
    "populations alike": {"fer2013": 1, "lfw": 1, "jaffe": 1, "imfdb": 1},
}
OBJECTIVE = "judged mix"
# A member is run only where it raises the cross-validated objective by this much (0.1 point), and by
# SE_RULE standard errors of the change (``Pool.paired_se``): every member costs about a millisecond
# a face, and the objective's noise is larger than a fixed step. JAFFE's few validation faces of three
# women weigh a fifth of the judged mix, so one face moves it a third of a point, and the standard error
# of the change a member makes is typically most of a point. A one-sided test at one standard error:
# the cheaper set stays unless the larger one reads better by more than the noise of the faces they
# read differently. (It is face by face: JAFFE's faces are of few women, so it still understates the
# noise of meeting new people.)
MIN_GAIN = 0.001
SE_RULE = 1.0
# The combination that fits nothing, kept unless a fitted one clears the gain a member needs.
PLAIN = "average"


def _counted(shares: dict[str, float], origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each population's share (``shares`` scaled to sum to 1), and each face's weight (its share spread)."""
    share = np.array([shares[name] for name in POPULATIONS], dtype=np.float64)
    share /= share.sum()
    return share, share[origin] / np.bincount(origin, minlength=len(POPULATIONS))[origin]


def val_people(data: dict[str, np.ndarray], population: str) -> np.ndarray | None:
    """The person of each of a population's validation faces, or None where not every one is known
    (FER2013 names no one; faces prepared before people were recorded)."""
    people = data.get(f"{population}_identity")
    if people is None:
        return None
    people = people[data[f"{population}_split"] == VAL]
    return None if len(people) == 0 or (people == "").any() else people


def _person_folds(people: np.ndarray | None, count: int, rng: np.random.Generator) -> np.ndarray:
    """Two folds of ``count`` faces: whole people, alternately in a shuffled order, where ``people`` names
    every face's; otherwise face by face at random."""
    if people is None:
        return rng.permutation(count) % 2
    if len(people) != count:
        raise ValueError(f"{len(people)} people for {count} faces")
    names = np.unique(people)
    fold_of = dict(zip(names[rng.permutation(len(names))], np.arange(len(names)) % 2, strict=True))
    return np.array([fold_of[person] for person in people], dtype=np.int64)


@dataclass(frozen=True)
class Pool:
    """The pooled validation faces every choice is made on (none of public_test), and how they count.

    ``share`` is each population's part of the objective (summing to 1), ``weight`` each face's
    (a population's share spread over its faces), ``folds`` the two folds of every cross-validation.
    """

    x: np.ndarray
    y: np.ndarray
    origin: np.ndarray  # index into POPULATIONS
    share: np.ndarray
    weight: np.ndarray
    folds: np.ndarray

    @classmethod
    def of(cls, data: dict[str, np.ndarray], objective: str, *, seed: int) -> Pool:
        """The validation faces of ``data`` (``prepare``'s arrays), counted by ``objective``.

        The folds keep each person whole where the faces' people are known (``NAME_identity``): the
        weights fitted on one fold are judged on people they never saw, as the ensemble will be.
        """
        rng = np.random.default_rng(seed)
        x, y, origin, folds = [], [], [], []
        for index, name in enumerate(POPULATIONS):
            mask = data[f"{name}_split"] == VAL
            x.append(data[f"{name}_x"][mask])
            y.append(data[f"{name}_y"][mask].astype(np.int64))
            origin.append(np.full(mask.sum(), index))
            folds.append(_person_folds(val_people(data, name), int(mask.sum()), rng))
        labels, where = np.concatenate(y), np.concatenate(origin)
        return cls(np.concatenate(x), labels, where, *_counted(OBJECTIVES[objective], where), np.concatenate(folds))

    def with_objective(self, objective: str) -> Pool:
        """The same faces and folds, counted by another objective."""
        return self._counted_by(OBJECTIVES[objective])

    def alone(self, population: str) -> Pool:
        """The same faces and folds, counting ``population``'s alone."""
        return self._counted_by({name: float(name == population) for name in POPULATIONS})

    def _counted_by(self, shares: dict[str, float]) -> Pool:
        return Pool(self.x, self.y, self.origin, *_counted(shares, self.origin), self.folds)

    def per_population(self, probs: np.ndarray) -> dict[str, float]:
        """Accuracy of (n, 7) probabilities on each population's validation faces."""
        return self.accuracies(probs.argmax(1) == self.y)

    def accuracies(self, hits: np.ndarray) -> dict[str, float]:
        """Each population's share of faces read right, from whether each face was (``hits``)."""
        return {name: float(hits[self.origin == i].mean()) for i, name in enumerate(POPULATIONS)}

    def score(self, probs: np.ndarray) -> float:
        """The objective: the populations' accuracies, weighted by their shares."""
        return float(self.share @ np.array(list(self.per_population(probs).values())))

    def held_out(self, method: str, probs: np.ndarray) -> np.ndarray:
        """(n, 7): each face's combined probabilities, with weights fitted on the other fold."""
        combined = np.zeros((len(self.y), len(LABELS)))
        for fold in (0, 1):
            fit_on = self.folds != fold
            w = fit_weights(method, probs[fit_on], self.y[fit_on], self.weight[fit_on])
            combined[self.folds == fold] = combine(w, probs[self.folds == fold])
        return combined

    def hits(self, probs: np.ndarray, members: list[int]) -> np.ndarray:
        """Whether the cross-validated ``SELECTION_METHOD`` combination of ``members`` reads each face right."""
        hits: np.ndarray = self.held_out(SELECTION_METHOD, probs[:, members]).argmax(1) == self.y
        return hits

    def paired_se(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        """The standard error of the objective's change from members ``before`` to ``after``, were there none.

        Paired, face by face: the two sets read most faces alike, and only the faces they read
        differently make noise. A counted population's accuracy changes by the mean of its faces'
        changes (-1, 0 or 1), whose variance with no real change is the share of its faces read
        differently over their count (McNemar's); the objective weighs it by the share squared.
        """
        return self.change_se(self.hits(probs, before), self.hits(probs, after))

    def change_se(self, before: np.ndarray, after: np.ndarray) -> float:
        """``paired_se`` of the change between two readings of the faces: whether each face was read right."""
        change = after.astype(np.float64) - before
        variance = 0.0
        for index, share in enumerate(self.share):
            faces = change[self.origin == index]
            if share > 0 and len(faces):
                variance += share**2 * float(np.mean(faces**2)) / len(faces)
        return float(np.sqrt(variance))

    def needed_gain(self, probs: np.ndarray, before: list[int], after: list[int]) -> float:
        """How much more ``after`` must score than ``before`` to be worth its extra member."""
        return max(MIN_GAIN, SE_RULE * self.paired_se(probs, before, after))

    def cross_validated(self, probs: np.ndarray, members: list[int]) -> float:
        """The objective's score of the ``SELECTION_METHOD`` combination of ``members``, two-fold."""
        return self.weighted(self.judged_readings(probs, members))

    def judged_readings(self, probs: np.ndarray, members: list[int]) -> dict[str, float]:
        """What ``cross_validated`` scores, by population: the accuracy on each one the objective counts."""
        readings = self.accuracies(self.hits(probs, members))
        return {name: readings[name] for name, share in zip(POPULATIONS, self.share, strict=True) if share > 0}

    def weighted(self, readings: dict[str, float]) -> float:
        """The objective from ``judged_readings``: each population's accuracy weighted by its share."""
        return float(sum(self.share[POPULATIONS.index(name)] * value for name, value in readings.items()))


def choose_combination(probs: np.ndarray, pool: Pool) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Average, per-class precision, log-loss or shrunk log-loss weights, judged by cross-validation.

    The plain average fits nothing to the validation faces; a fitted method replaces it only where its
    cross-validated score is higher by the gain a member needs (``MIN_GAIN``, and ``SE_RULE`` standard
    errors of the change, paired face by face): weights fitted to a few hundred posed faces otherwise
    move with their noise. Of the methods that clear it, the best score wins.

    Returns the method, its weights fitted on all the pool, and the comparison, which also says
    what each population's faces would read under every objective (the card's table).
    """
    comparison: dict[str, Any] = {}
    hits = {}
    for method in METHODS:
        held_out = pool.held_out(method, probs)
        hits[method] = held_out.argmax(1) == pool.y
        comparison[method] = scores_of(pool.y, held_out)
        comparison[method]["score"] = pool.score(held_out)
        comparison[method]["populations"] = pool.per_population(held_out)
        log.info("combination %s: cross-validated score %.4f", method, comparison[method]["score"])
    base = comparison[PLAIN]["score"]
    for method in METHODS:
        if method != PLAIN:
            comparison[method]["needed_gain"] = max(MIN_GAIN, SE_RULE * pool.change_se(hits[PLAIN], hits[method]))
    cleared = [m for m in METHODS if m == PLAIN or comparison[m]["score"] - base >= comparison[m]["needed_gain"]]
    method = max(cleared, key=lambda m: (comparison[m]["score"], -comparison[m]["log_loss"]))
    objectives = {}
    for objective in OBJECTIVES:
        other = pool.with_objective(objective)
        held_out = other.held_out(SELECTION_METHOD, probs)
        objectives[objective] = {"score": other.score(held_out), "populations": other.per_population(held_out)}
    return method, fit_weights(method, probs, pool.y, pool.weight), {"methods": comparison, "objectives": objectives}
