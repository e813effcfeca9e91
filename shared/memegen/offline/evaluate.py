"""Accuracy of the ensemble on a folder-per-class set of face images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from memegen.labels import LABELS
from memegen.offline.datasets import cuts_of, list_samples, read_gray
from memegen.offline.metrics import score
from memegen.vision.detect import FaceDetector
from memegen.vision.ensemble import Ensemble


@dataclass(frozen=True)
class Report:
    """What ``evaluate`` measured; ``as_dict`` is the ``--json`` output."""

    n: int
    accuracy: float
    macro_recall: float
    per_class: dict[str, float]
    confusion: list[list[int]]
    skipped: list[str] = field(default_factory=list)
    faces_found: int = 0
    model_version: str = ""
    # Each member alone (with its own views and mirror image) on the same crops: name -> (accuracy, macro recall).
    members: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def over_best_member(self) -> float:
        """The ensemble's accuracy less its best member's (0 for a single member)."""
        return self.accuracy - max((acc for acc, _ in self.members.values()), default=self.accuracy)

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_recall": round(self.macro_recall, 4),
            "per_class": {k: round(v, 4) for k, v in self.per_class.items()},
            "confusion": self.confusion,
            "labels": list(LABELS),
            "skipped": self.skipped,
            "faces_found": self.faces_found,
            "model_version": self.model_version,
            "members": {
                name: {"accuracy": round(acc, 4), "macro_recall": round(macro, 4)}
                for name, (acc, macro) in self.members.items()
            },
            "over_best_member": round(self.over_best_member, 4),
        }


def evaluate(directory: Path, *, ensemble: Ensemble, detector: FaceDetector) -> Report:
    """Classify every image of ``directory`` (``<label>/<image>``) and score the answers.

    Each image goes through the same face crop as training (``cuts_of``, at each member's side): the
    detector's aligned crop where a face does not fill the image, the whole
    image where it does. An unreadable image is skipped and listed. Each
    member's own reading of the same crops is scored too (``Report.members``),
    from the probabilities the ensemble combines, so it costs nothing more.
    """
    truth: list[int] = []
    readings: list[np.ndarray] = []
    skipped: list[str] = []
    found = 0
    for sample in list_samples(directory):
        gray = read_gray(sample.path)
        if gray is None:
            skipped.append(str(sample.path))
            continue
        crop = ensemble.crop
        face, was_found = cuts_of(gray, detector, sizes=ensemble.crop_sizes, scale=crop.scale, shift=crop.shift)
        found += was_found
        truth.append(sample.label)
        readings.append(ensemble.member_probabilities(face))
    y_true = np.array(truth, dtype=np.int64)
    probs = np.stack(readings) if readings else np.zeros((0, len(ensemble.members), len(LABELS)))
    accuracy, macro, per_class, confusion = score(y_true, ensemble.combine(probs).argmax(-1))
    members = {}
    for i, member in enumerate(ensemble.members):
        member_accuracy, member_macro, _, _ = score(y_true, probs[:, i].argmax(-1))
        members[member.name] = (member_accuracy, member_macro)
    return Report(len(truth), accuracy, macro, per_class, confusion, skipped, found, ensemble.version, members)


def plot_confusion(confusion: list[list[int]], path: Path, *, title: str) -> None:
    """Draw a row-normalised confusion matrix as a PNG (Pillow only, no plotting library)."""
    cell, margin_left, margin_top = 64, 110, 70
    k = len(LABELS)
    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = Image.new("RGB", (margin_left + k * cell + 10, margin_top + k * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.text((10, 10), title, fill="black", font=font)
    draw.text((margin_left, margin_top + k * cell + 12), "predicted", fill="black", font=font)
    for j, label in enumerate(LABELS):
        draw.text((margin_left + j * cell + 4, margin_top - 22), label[:8], fill="black", font=font)
    for i, label in enumerate(LABELS):
        draw.text((10, margin_top + i * cell + cell // 2 - 8), label, fill="black", font=font)
        for j in range(k):
            shade = int(255 * (1 - rows[i, j]))
            x0, y0 = margin_left + j * cell, margin_top + i * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=(shade, shade, 255), outline="grey")
            text_colour = "white" if rows[i, j] > 0.5 else "black"
            draw.text((x0 + 6, y0 + 16), f"{rows[i, j]:.2f}", fill=text_colour, font=font)
            draw.text((x0 + 6, y0 + 34), f"{int(matrix[i, j])}", fill=text_colour, font=font)
    image.save(path)
