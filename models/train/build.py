"""Search, train, quantize and combine the ensemble; write the models, manifest and card.

    python -m models.train.build --data models/work/faces.npz

For every population (FER2013, LFW, JAFFE, IMFDB): a small random search over
architecture, input size and training settings, each trial judged on the
population's validation split; the best trial is trained in full, converted to
TFLite and quantized to int8 with calibration faces. The members are then
combined with one weight per member per class, four ways (plain average,
per-class validation precision as the original MemeGen did, weights fitted to
validation log-loss, the same held close to the average), judged by two-fold
cross-validation on the pooled validation splits; FER2013's public test is never
used to choose anything.

The steps, each in its module: ``search`` (the random search), ``members`` (training in full,
export, scores), ``shipped`` (members of the shipped ensemble kept as candidates), ``views``
(how a member reads a face, and its time), ``pool`` (the validation faces, the objectives, the
combination), ``weights`` (fitting the combination), ``selection`` (which members stay) and
``outputs`` (the manifest, ``training.json`` and the work record). This module plans the members
and runs the steps in order.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memegen.vision.manifest import MANIFEST
from models.train.members import (
    FER_WITH_OTHERS,
    Candidate,
    build_member,
    export_member,
    load_net,
    trained_fer_members,
)
from models.train.net import Config
from models.train.outputs import WorkRecord, build_report, public_test_report, write_outputs
from models.train.pool import OBJECTIVE, Pool, choose_combination
from models.train.prepare import POPULATIONS
from models.train.search import FerStart, search
from models.train.selection import select_members
from models.train.shipped import place, shipped_member, shipped_names
from models.train.views import VIEW_SETS, choose_views, member_outputs, run_ms

log = logging.getLogger("build")


@dataclass(frozen=True, kw_only=True)
class Options:
    """The command line's choices (``_parser`` says what each means)."""

    data: Path
    out: Path
    work: Path
    trials: int
    search_epochs: int
    epochs: int
    small_epochs: int
    seed: int
    extra_fer: int
    states: tuple[Path, ...]
    fer_members: int
    greedy: int
    keep: tuple[str, ...]
    shipped: tuple[str, ...]
    threads: int
    budget_ms: float

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> Options:
        """The options of a command line (``sys.argv`` by default)."""
        args = _parser().parse_args(argv)
        return cls(
            data=args.data,
            out=args.out,
            work=args.work,
            trials=args.trials,
            search_epochs=args.search_epochs,
            epochs=args.epochs,
            small_epochs=args.small_epochs,
            seed=args.seed,
            extra_fer=args.extra_fer,
            states=tuple(args.states),
            fer_members=args.fer_members,
            greedy=args.greedy,
            keep=tuple(args.keep),
            shipped=tuple(args.shipped),
            threads=args.threads,
            budget_ms=args.budget_ms,
        )


def _parser() -> argparse.ArgumentParser:
    """The command line of ``python -m models.train.build``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("models/work/faces.npz"))
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--work", type=Path, default=Path("models/work"))
    parser.add_argument("--trials", type=int, default=5, help="search trials per population")
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=40, help="epochs of the chosen FER2013 and LFW members")
    parser.add_argument("--small-epochs", type=int, default=60, help="epochs of the JAFFE and IMFDB members")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--extra-fer", type=int, default=0, help="more FER2013 members, from the next-best search trials, other seeds"
    )
    parser.add_argument(
        "--states",
        type=Path,
        nargs="*",
        default=[],
        help="FER2013 members trained by models.train.fer (NAME.pt) or on a GPU (models.train.gpu's fer_N.pt):"
        " replace the FER2013 search",
    )
    parser.add_argument("--fer-members", type=int, default=4, help="how many of --states to keep, best first")
    parser.add_argument(
        "--greedy",
        type=int,
        default=0,
        help="with --states: export them all, then keep at most this many by forward selection on validation",
    )
    parser.add_argument(
        "--keep",
        nargs="*",
        default=[],
        help="members already trained (models/work/NAME.pt and their build.json entry) to export again, not retrain",
    )
    parser.add_argument(
        "--shipped",
        nargs="*",
        default=[],
        help="members of the ensemble in --out (by name) to keep as candidates without retraining: FER2013 ones"
        " join --states in the selection (needs --greedy), another population's replaces its search",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--budget-ms", type=float, default=8.0, help="the whole ensemble's time a face, one thread, for its views"
    )
    return parser


@dataclass(frozen=True)
class Trained:
    """Every candidate member, exported, and the work record with this build's searches and recipes."""

    members: list[Candidate]
    work: WorkRecord


def train_members(options: Options, data: dict[str, np.ndarray], work: WorkRecord) -> Trained:
    """Every member, exported to int8: the FER2013 members (trained ones from ``--states``, or searched
    and trained here), then one per other population (searched, trained, or ``--keep``-ed)."""
    previous = {m["name"]: m for m in work.members}

    def export(name: str, population: str, config: Config, state: dict[str, Any], **kw: Any) -> Candidate:
        net = load_net(config, state)
        return export_member(name, population, data, net, config, out_dir=options.out, work=options.work, **kw)

    members: list[Candidate] = []
    fer_init: FerStart | None = None
    plan = [(p, p, 0) for p in POPULATIONS]
    # Read before any export: the new members take the shipped ones' file names.
    shipped = [shipped_member(data, options.out, name) for name in options.shipped]
    shipped_others = {s.candidate.population: s for s in shipped if s.candidate.population != "fer2013"}
    if options.states:
        count = len(options.states) if options.greedy else options.fer_members
        fer_members, trials = trained_fer_members(list(options.states), count)
        # Every trained recipe, kept or not: the card compares them (what mixup, or more data, paid).
        recipes = [
            {
                "recipe": m["name"],
                "data": m.get("data", "fer2013"),
                "teachers": m.get("teachers", []),
                "config": m["config"],
                "history": m["history"],
                "held_epoch": m.get("epoch"),
                "val_accuracy": m["val_accuracy"],
            }
            for m in fer_members
        ]
        names = ["fer2013"] + [f"fer2013_{rank + 1}" for rank in range(1, len(fer_members))]
        for name, saved in zip(names, fer_members, strict=True):
            exported = export(
                name,
                "fer2013",
                Config(**saved["config"]),
                saved["state"],
                history=saved["history"],
                init="scratch",
                seed=0,
                datasets=FER_WITH_OTHERS.get(saved.get("data", "fer2013")),
            )
            # models.train.fer's recipe (fer_a, ...) or the GPU run's.
            members.append(exported.with_entry(recipe=saved["name"]))
        fer_init = FerStart(fer_members[0]["state"], Config(**fer_members[0]["config"]))
        plan = plan[1:]
        for kept in shipped:
            if kept.candidate.population == "fer2013":
                members.append(place(options.out, kept, f"shipped_{kept.candidate.name}"))
                if kept.recipe:
                    recipes.append(kept.recipe)
        work = replace(work.with_search("fer2013", trials), fer_recipes=recipes)
    else:
        plan += [(f"fer2013_{rank + 1}", "fer2013", rank) for rank in range(1, options.extra_fer + 1)]
    for name, population, rank in plan:
        if population in shipped_others and rank == 0:
            members.append(place(options.out, shipped_others[population], name))
            continue
        if name in options.keep:
            old = previous[name]
            state = torch.load(options.work / f"{name}.pt", weights_only=False)
            members.append(
                export(
                    name,
                    population,
                    Config(**old["config"]),
                    state,
                    history=old["history"],
                    init=old["init"],
                    seed=options.seed + rank,
                )
            )
            continue
        big = population in ("fer2013", "lfw")
        if population not in work.search:
            trials = search(
                population,
                data,
                trials=options.trials,
                epochs=options.search_epochs if big else options.small_epochs // 2,
                share=0.5 if big else 1.0,
                init=fer_init,
                seed=options.seed,
            )
            work = work.with_search(population, trials)
            work.write()
        ranked = sorted(work.search[population], key=lambda r: -r["val_accuracy"])
        member = build_member(
            name,
            population,
            data,
            ranked[rank % len(ranked)],
            epochs=options.epochs if big else options.small_epochs,
            init=fer_init,
            out_dir=options.out,
            work=options.work,
            seed=options.seed + rank,
        )
        if name == "fer2013":
            assert member.state is not None and member.entry.config is not None
            fer_init = FerStart(member.state, Config(**member.entry.config))
        members.append(member)
    return Trained(members, work)


def main(argv: list[str] | None = None) -> int:
    """Build the ensemble into ``--out``: 0, or 2 (with a one-line error) for options that cannot work."""
    options = Options.parse(argv)
    if options.shipped and not (options.states and options.greedy):
        print("error: --shipped needs --states and --greedy (the selection renames what it keeps)", file=sys.stderr)
        return 2
    if unknown := sorted(set(options.shipped) - set(shipped_names(options.out))):
        print(f"error: --shipped {' '.join(unknown)}: not a member of {options.out / MANIFEST}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(options.threads)
    data = dict(np.load(options.data))
    options.work.mkdir(parents=True, exist_ok=True)
    options.out.mkdir(parents=True, exist_ok=True)

    trained = train_members(options, data, WorkRecord.read(options.work))
    members, work = trained.members, trained.work
    models = {m.entry.file: (options.out / m.entry.file).read_bytes() for m in members}
    pool = Pool.of(data, OBJECTIVE, seed=options.seed)
    # Members are chosen on the one view every face has; the extra views, for the members kept,
    # where their cost fits the budget (chosen first, they would be priced for every candidate).
    single = member_outputs(models, [m.entry for m in members], pool.x, views=VIEW_SETS["single"])
    # Timed once, by model: the selection renames the files it keeps.
    ms = {
        m.entry.sha256: run_ms(models[m.entry.file], pool.x[0], size=m.entry.input_size, flip=m.entry.flip)
        for m in members
    }
    costs = [ms[m.entry.sha256] for m in members]
    selection = select_members(
        members, models, single, pool, greedy=options.greedy, budget_ms=options.budget_ms, costs=costs, out=options.out
    )
    one_view_ms = sum(ms[m.entry.sha256] for m in selection.members)
    members, probs, views = choose_views(
        selection.models,
        selection.members,
        pool,
        budget_ms=options.budget_ms,
        run_ms=one_view_ms,
        single=selection.probs,
    )
    method, weights, comparison = choose_combination(probs, pool)
    members, public_test = public_test_report(data, members, selection.models, weights)
    report = build_report(
        data,
        pool,
        public_test=public_test,
        method=method,
        comparison=comparison,
        selection=selection,
        fer_recipes=work.fer_recipes or [],
        views=views,
    )
    write_outputs(
        options.out,
        work,
        data,
        members,
        weights=weights,
        method=method,
        report=report,
        selection=selection,
        views=views,
    )
    log.info("ensemble (%s) on public_test: %.4f", method, report["public_test"]["ensemble"]["accuracy"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
