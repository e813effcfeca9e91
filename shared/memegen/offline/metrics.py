"""Scores of predicted labels: plain numpy, so training machines need nothing else of memegen."""

from __future__ import annotations

import numpy as np

from memegen.labels import LABELS


def score(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, dict[str, float], list[list[int]]]:
    """Accuracy, macro recall (over the labels present), per-class recall, confusion matrix."""
    k = len(LABELS)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(axis=1)
    recall = np.divide(np.diag(confusion), support, out=np.zeros(k), where=support > 0)
    present = support > 0
    accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    macro = float(recall[present].mean()) if present.any() else 0.0
    return accuracy, macro, {LABELS[i]: float(recall[i]) for i in range(k) if present[i]}, confusion.tolist()
