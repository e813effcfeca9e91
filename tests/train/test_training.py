"""A tiny real training run: prepare, search, train, quantize, combine, load."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from memegen.labels import LABELS
from memegen.vision.ensemble import Ensemble
from memegen.vision.manifest import Manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_datasets(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few images of every population and label, and one corrupt image."""
    root = tmp_path_factory.mktemp("datasets")
    for population in ("jaffe", "imfdb", "lfw", "fer2013/train", "fer2013/public_test"):
        for label in LABELS:
            target = root / population / label
            target.mkdir(parents=True)
            for path in sorted((datasets_dir / population / label).iterdir())[:4]:
                shutil.copy(path, target)
    (root / "lfw" / "happy" / "Broken_Person_0001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_smoke_training_run(
    tiny_datasets: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps of ``make train``, each for an epoch or two: crops, FER2013 members, the rest, the card."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    from models.train import build, card, fer, prepare
    from models.train import train as training
    from models.train.weights import METHODS

    # Every epoch of every network here is 2 batches (a few hundred faces) instead of train()'s 25 at
    # least: the same steps of the pipeline, in a fraction of the time.
    defaults = training.train.__kwdefaults__
    assert defaults is not None and "min_steps" in defaults
    monkeypatch.setitem(defaults, "min_steps", 2)

    data = tmp_path / "faces.npz"
    with caplog.at_level(logging.INFO):
        assert prepare.main(["--datasets", str(tiny_datasets), "--out", str(data), "--workers", "1"]) == 0
    assert "1 unreadable and skipped" in caplog.text
    import numpy as np

    # Every face's person, where its file name carries one (the build's folds keep people whole).
    prepared = np.load(data)
    jaffe_people = {path.name.split(".")[0] for path in (tiny_datasets / "jaffe").glob("*/*")}
    assert set(prepared["jaffe_identity"]) == jaffe_people
    assert set(prepared["fer2013_identity"]) == {""}
    assert len(prepared["lfw_identity"]) == len(prepared["lfw_y"]) and "" not in set(prepared["lfw_identity"])
    states = tmp_path / "fer"
    # The four teachers (FER2013 alone, with mixup, with the other populations), two students of
    # theirs, and a student of all six: a second generation, trained after the first.
    recipes = ["fer_a", "fer_b", "fer_c", "fer_d", "fer_e", "fer_f", "fer_g"]
    assert fer.main(["--data", str(data), "--out", str(states), "--epochs", "1", "--only", *recipes]) == 0
    assert sorted(p.name for p in states.glob("*.pt")) == [f"{r}.pt" for r in recipes]
    import torch

    student = torch.load(states / "fer_e.pt", weights_only=False)
    assert student["teachers"] == ["fer_a", "fer_b", "fer_c", "fer_d"] and student["config"]["distill"] > 0
    first, second = (np.load(fer.teachers_path(states, fer.SECOND[:n])) for n in (4, 6))
    for soft in (first, second):
        assert soft.shape[1] == len(LABELS) and np.allclose(soft.sum(1), 1, atol=1e-4)
    # Each student learned from its own teachers' reading, not from one file shared by every set.
    assert not np.allclose(first, second)
    assert torch.load(states / "fer_g.pt", weights_only=False)["teachers"] == list(fer.SECOND)
    out = tmp_path / "models"
    out.mkdir()
    (out / "stale.tflite").write_bytes(b"a member of an earlier build")
    args = ["--data", str(data), "--out", str(out), "--work", str(tmp_path / "work"), "--trials", "1"]
    args += ["--search-epochs", "1", "--epochs", "1", "--small-epochs", "2", "--threads", "2"]
    # A budget no extra view fits: the members still read the one view every face has.
    args += ["--budget-ms", "0.001"]
    # The build judges three of the seven, one of each generation: a member's export (float and int8
    # TFLite) is most of this test's time, and three prove the selection among recipes as well as seven.
    judged = ["fer_a", "fer_e", "fer_g"]
    assert build.main([*args, "--greedy", "2", "--states", *(str(states / f"{r}.pt") for r in judged)]) == 0
    ensemble = Ensemble.from_dir(out)
    names = [m.name for m in ensemble.members]
    fer_names = [n for n in names if n.startswith("fer2013")]
    assert fer_names == ["fer2013", "fer2013_2"][: len(fer_names)] and fer_names
    assert sorted(p.name for p in out.glob("*.tflite")) == sorted(f"{n}.tflite" for n in names)
    assert ensemble.crop.size == 48  # the crop prepare cut, written by the build
    record = json.loads((out / "training.json").read_text())
    assert set(record["search"]) == {"fer2013", "lfw", "jaffe", "imfdb"}
    assert record["report"]["combination"]["chosen"] in set(METHODS)
    assert set(record["report"]["combination"]["cross_validated"]) == {"average", "precision", "logloss", "shrunk"}
    assert record["report"]["combination"]["selection_method"] == "shrunk"
    # FER2013 names no one: its faces are split one by one; the others' folds keep people whole.
    assert record["report"]["people_folds"] == ["lfw", "jaffe", "imfdb"]
    assert record["report"]["objective"]["name"] == "judged mix"
    assert record["report"]["views"]["chosen"] == "single"
    greedy = record["report"]["greedy"]
    assert {step["added"] for step in greedy} - {None} <= set(judged)
    # Each step records what every recipe still out would have scored, or that none fit the budget,
    # counting the other populations' members (all of them, until pruning drops some).
    assert greedy[0]["added"] in judged and greedy[1]["over_budget_with"] == ["lfw", "jaffe", "imfdb"]
    assert all(set(step["tried"]) <= set(judged) and step["tried"] for step in greedy if "over_budget_with" not in step)
    # ... each split by the populations the judged mix counts.
    assert all(set(step["readings"]) == set(step["tried"]) for step in greedy)
    assert all(set(r) == {"fer2013", "jaffe"} for step in greedy for r in step["readings"].values())
    assert all(step["added"] is not None or "over_budget_with" in step for step in greedy[:-1])
    teachers = {r["recipe"]: r["teachers"] for r in record["report"]["fer_recipes"]}
    assert teachers == {"fer_a": [], "fer_e": recipes[:4], "fer_g": recipes[:6]}
    assert set(record["report"]["objectives"]) == {"judged mix", "populations alike"}
    assert {step["member"] for step in record["report"]["pruning"]} == {"lfw", "jaffe", "imfdb"}
    # Each member left out was judged against the noise of its change (the card's "gain needed" column);
    # the first step names the recipes that read FER2013's faces alike, and the budget's step needed no gain.
    assert all("needed" in step for step in record["report"]["pruning"])
    assert greedy[0]["added"] in greedy[0]["alike"] and "needed" not in greedy[1]
    readme = tmp_path / "README.md"
    readme.write_text("- the ensemble: <!-- card:summary -->old<!-- /card:summary -->, and more\n")
    assert card.main(["--data", str(data), "--models", str(out), "--readme", str(readme)]) == 0
    model_card = (out / "README.md").read_text()
    assert "Ensemble accuracy on `fer2013/public_test`" in model_card
    assert "faces together where the file names say whose they are (`lfw val`, `jaffe val`, `imfdb val`)" in model_card
    assert "judged with `shrunk`" in model_card
    assert "| gain needed |" in model_card and "read fer2013 val alike" in model_card
    # The project README's sentence comes from the card's measurement, between its markers.
    summary = readme.read_text()
    assert "old" not in summary and "public test" in summary and summary.endswith("-->, and more\n")

    # A student of the shipped ensemble on a machine without its teachers' float states: the
    # repository's int8 members of those recipes teach. Its teachers are whichever recipes ship today.
    shipped = fer.shipped_members()
    taught = tuple(shipped)
    student = fer.Recipe("fer_student", replace(fer.BASE, distill=0.5), "fer2013", seed=99, teachers=taught)
    monkeypatch.setattr(fer, "RECIPES", (*fer.RECIPES, student))
    newer = tmp_path / "fer_new"
    assert fer.main(["--data", str(data), "--out", str(newer), "--epochs", "1", "--only", "fer_student"]) == 0
    soft = np.load(fer.teachers_path(newer, taught))
    assert soft.shape[1] == len(LABELS) and np.allclose(soft.sum(1), 1, atol=1e-4)
    assert json.loads(fer.teachers_path(newer, taught).with_suffix(".json").read_text()) == {
        recipe: member["entry"]["sha256"] for recipe, member in shipped.items()
    }
    # In a run that trains a shipped teacher again, its students wait for the new one.
    assert fer.teacher_available(newer, taught[0], shipped, pending=set())
    assert not fer.teacher_available(newer, taught[0], shipped, pending={taught[0]})
    # A build that keeps the ensemble it replaces in the running, member files unchanged.
    first = json.loads((out / "ensemble.json").read_text())["members"]
    before = {m["name"]: m["sha256"] for m in first}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="build"):
        again = [*args, "--greedy", "3", "--states", str(newer / "fer_student.pt"), "--shipped", *before]
        assert build.main(again) == 0
    # The other populations' members, resumed from the first build's checkpoints, are the same weights:
    # their conversions are read back, not made again; the new student's are made.
    assert caplog.text.count("read back from") == 3
    manifest = json.loads((out / "ensemble.json").read_text())
    record = json.loads((out / "training.json").read_text())
    kept = [m for m in record["members"] if m.get("shipped")]
    assert {m["sha256"] for m in kept} <= set(before.values())
    assert {m["sha256"] for m in kept if m["population"] != "fer2013"} == {
        sha for name, sha in before.items() if not name.startswith("fer2013")
    } & {m["sha256"] for m in manifest["members"]}
    shipped_recipes = {m["recipe"] for m in first if m.get("recipe")}
    assert sorted(record["report"]["candidates"]) == sorted({"fer_student", *shipped_recipes})
    assert {r["recipe"] for r in record["report"]["fer_recipes"]} == {"fer_student", *shipped_recipes}
    assert sorted(p.name for p in out.glob("*.tflite")) == sorted(m["file"] for m in manifest["members"])
    Ensemble.from_dir(out)
    assert card.main(["--data", str(data), "--models", str(out), "--readme", str(readme)]) == 0
    assert ("(a) A member this build kept" in (out / "README.md").read_text()) == bool(kept)


def test_fer_members_resume_from_their_checkpoint(tiny_datasets: Path, tmp_path: Path) -> None:
    """A member killed after its first epoch goes on from its checkpoint, not from the start."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import torch

    from models.train import prepare

    data = tmp_path / "faces.npz"
    assert prepare.main(["--datasets", str(tiny_datasets), "--out", str(data), "--workers", "1", "--limit", "8"]) == 0
    out = tmp_path / "fer"
    command = [sys.executable, "-m", "models.train.fer", "--data", str(data), "--out", str(out)]
    # Epochs of 2 batches: the checkpoint and the resume are what is tested, not the learning.
    command += ["--epochs", "4", "--steps", "2", "--only", "fer_a", "--threads", "1"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "fer_a.ckpt").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    first.wait()
    assert not (out / "fer_a.pt").exists(), "killed before it finished"
    done = torch.load(out / "fer_a.ckpt", weights_only=False)["epoch"] + 1
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"resumed from {out / 'fer_a.ckpt'} at epoch {done}" in second.stderr
    history = torch.load(out / "fer_a.pt", weights_only=False)["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]


def test_missing_dataset_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.train import fer, prepare

    assert prepare.main(["--datasets", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected DIR/<label>/<image>" in err[0]
    assert fer.main(["--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "fer")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models.train.prepare" in err[0]


def test_two_recipes_of_one_name_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each recipe resumes from, and writes, the files of its name: a second recipe of that name would share them."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    from models.train import fer

    monkeypatch.setattr(fer, "RECIPES", (*fer.RECIPES, replace(fer.RECIPES[-1], seed=99)))
    # Refused before any data is read (this file stands in for the crops).
    assert fer.main(["--data", __file__, "--out", str(tmp_path / "fer"), "--only", fer.RECIPES[-1].name]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: recipes named twice: {fer.RECIPES[-1].name}"]
    assert not (tmp_path / "fer").exists()


def test_unknown_shipped_member_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``build --shipped`` with a name the committed manifest lacks stops before any data is read."""
    from models.train import build

    models = Path(__file__).resolve().parents[2] / "models"
    args = ["--data", "nowhere.npz", "--out", str(models), "--states", "fer_student.pt", "--greedy", "2"]
    shipped = [entry.name for entry in Manifest.read(models).members]
    assert build.main([*args, "--shipped", *shipped, "fer2013_9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --shipped fer2013_9: not a member of {models / 'ensemble.json'}"]


def test_gpu_teachers_and_students(tiny_datasets: Path, tmp_path: Path) -> None:
    """``models.train.gpu`` on the CPU, every network an eighth as wide: the pack, the two rounds, the states."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import numpy as np
    import torch

    from models.train import gpu, prepare
    from models.train.members import trained_fer_members
    from models.train.train import averaged_reading, load_split

    data, packed, out = tmp_path / "faces.npz", tmp_path / "pack.npz", tmp_path / "gpu"
    assert prepare.main(["--datasets", str(tiny_datasets), "--out", str(data), "--workers", "1", "--limit", "8"]) == 0
    assert gpu.main(["pack", "--data", str(data), "--out", str(packed)]) == 0
    faces, parts = dict(np.load(data)), gpu.load_packed(packed)
    for part, (population, split) in gpu.PARTS.items():
        # Lossless: the GPU learns from the very faces the CPU recipes do.
        assert np.array_equal(parts[part].x, load_split(faces, population, split, gpu.SIZE).x), part
    # Two epochs: the teachers differ from the one-epoch probe's.
    run = ["distil", "--data", str(packed), "--out", str(out), "--smoke", "--epochs", "2", "--workers", "2"]
    assert gpu.main(run) == 0
    # The students, as the build reads them; the teachers (30 to 70 MB each at full width) apart.
    students, _ = trained_fer_members(sorted(out.glob("*.pt")), len(gpu.STUDENTS))
    assert sorted(m["name"] for m in students) == [r.name for r in gpu.STUDENTS]
    teachers = [torch.load(out / "teachers" / f"{r.name}.pt", weights_only=False) for r in gpu.TEACHERS]
    for student in students:
        assert student["teachers"] == [r.name for r in gpu.TEACHERS] and student["config"]["distill"] > 0
    # The students learned from the trained teachers' reading, not the probe's.
    soft = averaged_reading(teachers, parts["fer_train"].x)
    assert np.allclose(np.load(out / "teachers.npy"), soft, atol=1e-5)
    assert all(isinstance(v, torch.Tensor) for m in students for v in m["state"].values())


@pytest.mark.parametrize(
    ("data", "others"), [("fer2013", ()), ("all", ("lfw", "jaffe", "imfdb")), ("posed", ("jaffe", "imfdb"))]
)
def test_a_recipe_learns_from_the_populations_its_data_names(data: str, others: tuple[str, ...]) -> None:
    """FER2013's training faces, then the training people of the populations ``data`` names; no validation face."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import numpy as np

    from models.train.fer import BASE, Recipe, training_faces
    from models.train.prepare import POPULATIONS
    from models.train.train import TRAIN, VAL

    arrays: dict[str, np.ndarray] = {}
    for index, population in enumerate(POPULATIONS):
        # Each population's faces are filled with its own value, and its labels are its index.
        arrays[f"{population}_x"] = np.full((5 + index, 48, 48), 10 * (index + 1), np.uint8)
        arrays[f"{population}_y"] = np.full(5 + index, index, np.int64)
        arrays[f"{population}_split"] = np.array([TRAIN] * (3 + index) + [VAL] * 2)
    soft = np.full((3, len(LABELS)), 1 / len(LABELS), np.float32)
    split = training_faces(arrays, Recipe("x", BASE, data, seed=0), soft=soft)

    fills = [10 * (1 + POPULATIONS.index(p)) for p in ("fer2013", *others)]
    counts = [3 + POPULATIONS.index(p) for p in ("fer2013", *others)]
    assert sorted(set(split.x.reshape(len(split.x), -1)[:, 0].tolist())) == sorted(fills)
    assert len(split.x) == sum(counts)
    assert split.soft is not None
    np.testing.assert_allclose(split.soft[:3], soft)  # FER2013's faces learn from the teachers' reading
    np.testing.assert_array_equal(split.soft[3:].argmax(1), split.y[3:])  # the others from their labels


def test_a_recipe_draws_the_populations_it_weighs_up_more_often() -> None:
    """``weigh``: each face of a weighed population is drawn that many times as often as its class alone says."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import numpy as np

    from models.train.fer import BASE, Recipe, training_faces
    from models.train.prepare import POPULATIONS
    from models.train.train import TRAIN, sampling_weights

    arrays: dict[str, np.ndarray] = {}
    for index, population in enumerate(POPULATIONS):
        arrays[f"{population}_x"] = np.full((4, 48, 48), 10 * (index + 1), np.uint8)
        arrays[f"{population}_y"] = np.zeros(4, np.int64)  # one class: only the weighing tells faces apart
        arrays[f"{population}_split"] = np.full(4, TRAIN)
    plain = training_faces(arrays, Recipe("x", BASE, "posed", seed=0))
    assert plain.weight is None
    split = training_faces(arrays, Recipe("x", BASE, "posed", seed=0, weigh=(("jaffe", 8.0), ("imfdb", 4.0))))
    fill = {10 * (POPULATIONS.index(p) + 1): p for p in POPULATIONS}
    chance = sampling_weights(split.y, 0.5, weight=split.weight)
    by_population = {fill[int(face[0, 0])]: float(p) for face, p in zip(split.x, chance, strict=True)}
    assert by_population["jaffe"] == pytest.approx(8 * by_population["fer2013"])
    assert by_population["imfdb"] == pytest.approx(4 * by_population["fer2013"])
    assert chance.sum() == pytest.approx(1.0)


def test_a_recipe_starts_from_the_state_it_names(
    tiny_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``start``: trained after the recipe it names, from that recipe's weights, not from fresh ones."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import torch

    from models.train import fer, prepare

    data = tmp_path / "faces.npz"
    assert prepare.main(["--datasets", str(tiny_datasets), "--out", str(data), "--workers", "1", "--limit", "8"]) == 0
    first = fer.Recipe("fer_first", replace(fer.BASE, epochs=1, steps=2), "fer2013", seed=1)
    # A learning rate too small to move a weight: what it ends with is what it started from.
    then = fer.Recipe("fer_then", replace(fer.BASE, epochs=1, steps=2, lr=1e-12), "fer2013", seed=2, start="fer_first")
    monkeypatch.setattr(fer, "RECIPES", (*fer.RECIPES, first, then))
    out = tmp_path / "fer"
    # Alone, it waits for a state that no run has trained.
    assert fer.main(["--data", str(data), "--out", str(out), "--only", "fer_then"]) == 2
    assert capsys.readouterr().err.strip() == "error: the recipes these need are not trained: fer_first"
    assert fer.main(["--data", str(data), "--out", str(out), "--only", "fer_then", "fer_first"]) == 0
    before, after = (torch.load(out / f"{name}.pt", weights_only=False) for name in ("fer_first", "fer_then"))
    assert after["start"] == "fer_first"
    convolutions = [k for k, v in before["state"].items() if k.endswith("weight") and v.ndim == 4]
    assert convolutions and all(torch.allclose(before["state"][k], after["state"][k]) for k in convolutions)


@pytest.mark.parametrize("arch", ["resnet", "vgg"])
def test_macs_are_what_the_network_computes(arch: str) -> None:
    """The cost column's formula against the convolutions' multiply-accumulates counted in a forward pass."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import torch

    from models.train.net import Config, ExpressionNet, macs

    counted = [0]

    def count(module: torch.nn.Module, _: object, out: torch.Tensor) -> None:
        if isinstance(module, torch.nn.Conv2d):
            counted[0] += out[0].numel() * module.in_channels * 9
        elif isinstance(module, torch.nn.Linear):
            counted[0] += module.in_features * module.out_features

    for size, width in ((48, 32), (56, 40), (40, 48)):
        config = Config(arch=arch, size=size, width=width)
        net = ExpressionNet(config).eval()
        counted[0] = 0
        for module in net.modules():
            module.register_forward_hook(count)
        with torch.no_grad():
            net(torch.zeros(1, 1, size, size))
        assert macs(config) == counted[0], (arch, size, width)


def test_an_unknown_architecture_is_refused() -> None:
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    from models.train.net import Config

    with pytest.raises(ValueError, match="arch 'inception' is not one of resnet, vgg"):
        Config(arch="inception")


def test_diversity_counts_where_two_members_disagree_and_what_their_average_gains() -> None:
    """Five faces: the two members disagree on three, each sure where it is right, and both miss the last."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import numpy as np

    from models.train.diversity import pairs

    def reading(*rows: tuple[int, float]) -> np.ndarray:
        out = np.full((len(rows), len(LABELS)), 0.0)
        for face, (label, sure) in enumerate(rows):
            out[face] = (1 - sure) / (len(LABELS) - 1)
            out[face, label] = sure
        return out

    labels = np.array([0, 0, 1, 1, 2])
    first = reading((0, 0.9), (0, 0.9), (0, 0.3), (2, 0.3), (0, 0.9))  # right on faces 0 and 1
    second = reading((0, 0.9), (1, 0.3), (1, 0.9), (1, 0.9), (0, 0.9))  # right on faces 0, 2 and 3
    (pair,) = pairs({"a": first, "b": second}, labels)
    assert (pair.first, pair.second) == ("a", "b")
    assert pair.disagree == pytest.approx(0.6) and pair.both_wrong == pytest.approx(0.2)
    assert pair.first_on_disagreements == pytest.approx(1 / 3)
    assert pair.second_on_disagreements == pytest.approx(2 / 3)
    assert pair.average_on_disagreements == 1.0 and pair.average == pytest.approx(0.8)
    assert pair.gain == pytest.approx(0.2)  # over the better member (0.6), not the worse


def test_a_trial_from_the_fer2013_members_weights_takes_its_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A population's trial that starts from the FER2013 member's weights builds that member's network
    (another network would take none of them)."""
    pytest.importorskip("torch", reason="training tools are in requirements-train.txt")
    import numpy as np

    from models.train import train as training
    from models.train.net import Config, ExpressionNet
    from models.train.search import FerStart, search
    from models.train.train import TRAIN, VAL

    # Which network each trial builds is the point, not what it learns: 2 batches an epoch, not 25.
    defaults = training.train.__kwdefaults__
    assert defaults is not None and "min_steps" in defaults
    monkeypatch.setitem(defaults, "min_steps", 2)

    fer = Config(arch="vgg", width=8, stages=3)
    init = FerStart(ExpressionNet(fer).state_dict(), fer)
    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {
        "jaffe_x": rng.integers(0, 255, (16, 48, 48), dtype=np.uint8),
        "jaffe_y": np.arange(16) % 7,
        "jaffe_split": np.array([TRAIN] * 12 + [VAL] * 4),
    }
    # Seed 3 draws one trial of each start first (random.Random("jaffe-3")).
    results = search("jaffe", data, trials=2, epochs=1, share=1.0, init=init, seed=3)
    started = {r["init"]: r["config"] for r in results}
    assert set(started) == {"fer2013", "scratch"}
    assert (started["fer2013"]["arch"], started["fer2013"]["width"], started["fer2013"]["stages"]) == ("vgg", 8, 3)
    assert started["scratch"]["arch"] == "resnet"
