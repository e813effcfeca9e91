"""Which members the ensemble keeps: forward selection of the FER2013 members within the time budget,
pruning of the other populations' members by the gain each brings, and the kept members' names.

Every choice is made on the pooled validation faces (``models.train.pool``), never on FER2013's
public test. Each step is recorded (``training.json``'s ``greedy`` and ``pruning``) for the card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.train.members import Candidate
from models.train.pool import Pool
from models.train.prepare import POPULATIONS

log = logging.getLogger("build")

# The population whose validation faces choose the forward selection's first member, the ensemble's
# reader of faces in the wild (``first_member``).
FIRST_READS = "fer2013"


def prune_population_members(
    probs: np.ndarray, pool: Pool, populations: list[str], *, members: list[int] | None = None
) -> tuple[list[int], list[dict[str, Any]]]:
    """The members worth their cost: a LFW, JAFFE or IMFDB member stays only where it earns its weight.

    Each in turn is left out; when the cross-validated score of the combination without it is
    within ``Pool.needed_gain`` of the score with it, it goes (one member less to run for the same
    accuracy, within the noise). FER2013 members always stay. ``members`` are the ones in (by default all).
    Validation splits only.
    """
    kept = list(range(len(populations))) if members is None else sorted(members)
    steps: list[dict[str, Any]] = []
    with_it = pool.cross_validated(probs, kept)
    for index in list(kept):
        population = populations[index]
        if population == "fer2013":
            continue
        without = [k for k in kept if k != index]
        without_it = pool.cross_validated(probs, without)
        needed = pool.needed_gain(probs, without, kept)
        dropped = without_it > with_it - needed
        steps.append({"member": index, "with": with_it, "without": without_it, "needed": needed, "kept": not dropped})
        log.info("member %d (%s): %.4f with it, %.4f without", index, population, with_it, without_it)
        if dropped:
            kept, with_it = without, without_it
    return kept, steps


def first_member(
    probs: np.ndarray, pool: Pool, candidates: list[int], scores: dict[int, float]
) -> tuple[int, list[int]]:
    """The forward selection's first member, and the candidates that read faces in the wild alike.

    The first is the ensemble's reader of faces in the wild: the one that reads ``FIRST_READS``'s
    validation faces best, or, among those that read them within the gain needed of it (within the
    noise), the one the objective ``scores`` best. The judged mix alone would let JAFFE's few faces
    pick a member that reads the wild far worse; FER2013's alone would pick on a face or two.
    """
    if pool.share[POPULATIONS.index(FIRST_READS)] == 0:
        raise ValueError(f"the objective does not count {FIRST_READS}, whose faces choose the first member")
    wild = pool.alone(FIRST_READS)
    reading = {c: wild.cross_validated(probs, [c]) for c in candidates}
    best = max(candidates, key=lambda c: reading[c])
    alike = [c for c in candidates if c == best or reading[c] > reading[best] - wild.needed_gain(probs, [c], [best])]
    return max(alike, key=lambda c: scores[c]), alike


def greedy_fer_members(
    probs: np.ndarray,
    pool: Pool,
    populations: list[str],
    *,
    most: int,
    costs: list[float] | None = None,
    budget_ms: float = float("inf"),
    chosen: list[int] | None = None,
    fixed: list[int] | None = None,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Which FER2013 members to keep: forward selection by the combination's cross-validated score.

    The other populations' members are returned too, to be pruned after (``prune_population_members``),
    and are left out of the sets this selection scores: a FER2013 member is judged by how it reads, not
    by how the weights fitted on one fold mix it with members that may then go. The first is the reader
    of faces in the wild (``first_member``); each step after adds the
    FER2013 member that raises the score of the cross-validated ``SELECTION_METHOD`` combination most,
    and the selection stops when the best of them raises it by less than ``Pool.needed_gain``, ``most``
    are in, or no other fits ``budget_ms`` a face with the members in (``costs``: each member's
    milliseconds a face).
    Validation splits only. ``chosen`` are FER2013 members already in (an earlier selection's), ``fixed``
    the other populations' members the budget counts (by default all of them).

    Each step records the member added (None for the last step, where none raised the score enough,
    or none fit the budget: then ``fixed`` says which other members it counted),
    the score then, the score each member tried would have given (``tried``), and that score split by
    the populations the objective counts (``readings``): a member may read one kind of face better and
    another worse. The first step records the candidates that read faces in the wild alike (``alike``),
    each later one the gain the best member tried needed (``needed``); a step the budget stopped, neither.
    """
    fixed = [i for i, p in enumerate(populations) if p != "fer2013"] if fixed is None else list(fixed)
    chosen = list(chosen or [])
    pool_left = [i for i, p in enumerate(populations) if p == "fer2013" and i not in chosen]
    costs = costs or [0.0] * len(populations)
    steps: list[dict[str, Any]] = []
    best = pool.cross_validated(probs, sorted(chosen)) if chosen else -1.0
    while pool_left and len(chosen) < most:
        spent = sum(costs[i] for i in [*chosen, *fixed])
        # The first member is always taken: an ensemble needs one reader of faces in the wild.
        fits = [c for c in pool_left if not chosen or spent + costs[c] <= budget_ms]
        if not fits:
            steps.append({"added": None, "score": best, "tried": {}, "readings": {}, "fixed": fixed})
            break
        readings = {c: pool.judged_readings(probs, sorted([*chosen, c])) for c in fits}
        scores = {c: pool.weighted(readings[c]) for c in fits}
        if chosen:
            pick = max(scores, key=lambda c: scores[c])
            needed = pool.needed_gain(probs, sorted(chosen), sorted([*chosen, pick]))
            why: dict[str, Any] = {"needed": needed}
            if scores[pick] < best + needed:
                # Recorded too: what each member left would have scored, so the card shows why none joined.
                steps.append({"added": None, "score": best, "tried": scores, "readings": readings, **why})
                break
        else:
            pick, alike = first_member(probs, pool, fits, scores)
            why = {"alike": alike}
        chosen.append(pick)
        pool_left.remove(pick)
        best = scores[pick]
        steps.append({"added": pick, "score": best, "tried": scores, "readings": readings, **why})
        log.info("greedy selection: member %d in, %.4f", pick, best)
    return sorted(chosen) + fixed, steps


def select_within_budget(
    probs: np.ndarray, pool: Pool, populations: list[str], *, most: int, costs: list[float], budget_ms: float
) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
    """FER2013 members by forward selection, then the others pruned; again while pruning frees the budget.

    The forward selection counts every other population's member in the budget, and pruning may then
    drop some: where the budget is what stopped the selection, it goes on with the members kept, and
    pruning judges the larger set again. Returns the members kept (indices into ``populations``), the
    selection's steps and the pruning's (``member`` an index into ``populations``), every pass's in order.
    Validation splits only.
    """
    chosen: list[int] = []
    fixed = [i for i, p in enumerate(populations) if p != "fer2013"]
    steps: list[dict[str, Any]] = []
    pruning: list[dict[str, Any]] = []
    while True:
        keep, new_steps = greedy_fer_members(
            probs, pool, populations, most=most, costs=costs, budget_ms=budget_ms, chosen=chosen, fixed=fixed
        )
        steps += new_steps
        if pruning and [k for k in keep if populations[k] == "fer2013"] == sorted(chosen):
            # A later pass that added no member: pruning would judge the same set again.
            return keep, steps, pruning
        kept, new_pruning = prune_population_members(probs, pool, populations, members=keep)
        pruning += new_pruning
        chosen = [k for k in kept if populations[k] == "fer2013"]
        freed = [i for i in fixed if i not in kept]
        fixed = [i for i in fixed if i in kept]
        if not (new_steps and "fixed" in new_steps[-1]) or not freed:
            return sorted(chosen) + fixed, steps, pruning
        log.info("pruning freed %.2f ms a face: the selection goes on", sum(costs[i] for i in freed))


@dataclass(frozen=True)
class Selection:
    """The members kept (FER2013 ones renamed fer2013, fer2013_2, ...), their outputs on the pool, their
    model bytes by file, and the record of the choice: the forward selection's steps (``greedy``, by
    recipe), the FER2013 recipes it chose among (``candidates``) and the pruning's steps (by name)."""

    members: list[Candidate]
    probs: np.ndarray
    models: dict[str, bytes]
    greedy: list[dict[str, Any]]
    candidates: list[str]
    pruning: list[dict[str, Any]]


def select_members(
    members: list[Candidate],
    models: dict[str, bytes],
    probs: np.ndarray,
    pool: Pool,
    *,
    greedy: int,
    budget_ms: float,
    costs: list[float],
    out: Path,
) -> Selection:
    """The members that earn their cost: FER2013 ones by forward selection (``greedy``, at most that many),
    the others by pruning.

    ``costs`` are the members' milliseconds a face (one view with its mirror image): the forward
    selection adds none past ``budget_ms``, and goes on where pruning frees time (``select_within_budget``).
    With ``greedy``, the kept FER2013 members' models are written to ``out`` under their new names.
    """
    # A build without greedy chooses no FER2013 member: an earlier build's selection would be shown as its.
    steps_by_recipe: list[dict[str, Any]] = []
    candidates: list[str] = []
    populations = [m.population for m in members]
    names = [m.name for m in members]
    if not greedy:
        keep, pruning = prune_population_members(probs, pool, populations)
    else:
        keep, steps, pruning = select_within_budget(
            probs, pool, populations, most=greedy, costs=costs, budget_ms=budget_ms
        )
        recipe = ["?" if m.entry.recipe is None else m.entry.recipe for m in members]
        steps_by_recipe = [
            {
                "added": None if step["added"] is None else recipe[step["added"]],
                "score": step["score"],
                **({"needed": step["needed"]} if "needed" in step else {}),
                **({"alike": [recipe[c] for c in step["alike"]]} if "alike" in step else {}),
                "tried": {recipe[c]: score for c, score in step["tried"].items()},
                "readings": {recipe[c]: reading for c, reading in step["readings"].items()},
                **({"over_budget_with": [names[i] for i in step["fixed"]]} if "fixed" in step else {}),
            }
            for step in steps
        ]
        candidates = [r for r, m in zip(recipe, members, strict=True) if m.population == "fer2013"]
    named_pruning = [{**step, "member": names[step["member"]]} for step in pruning]
    kept, probs = [members[i] for i in keep], probs[:, keep]
    if greedy:
        kept, models = _renamed(kept, models, out)
    return Selection(
        kept, probs, {m.entry.file: models[m.entry.file] for m in kept}, steps_by_recipe, candidates, named_pruning
    )


def _renamed(members: list[Candidate], models: dict[str, bytes], out: Path) -> tuple[list[Candidate], dict[str, bytes]]:
    """The FER2013 members as fer2013, fer2013_2, ... in their order, their models written to ``out``
    (an earlier build's FER2013 files gone), and every member's model by its file."""
    for stale in out.glob("fer2013*.tflite"):
        stale.unlink()
    renamed: list[Candidate] = []
    files: dict[str, bytes] = {}
    rank = 0
    for member in members:
        model_bytes = models[member.entry.file]
        if member.population == "fer2013":
            rank += 1
            name = "fer2013" if rank == 1 else f"fer2013_{rank}"
            member = member.with_entry(name=name, file=f"{name}.tflite")
            (out / member.entry.file).write_bytes(model_bytes)
        renamed.append(member)
        files[member.entry.file] = model_bytes
    return renamed, files
