"""How the members' probabilities are combined: one weight per member per class, fitted four ways."""

from __future__ import annotations

import numpy as np
import torch

from memegen.labels import LABELS

# How strongly each combination fitted to validation log-loss is held to the plain average: the mean
# square of each weight's log-ratio to the geometric mean of its class's weights costs this much of the
# objective-weighted log-loss. "logloss"
# is held only enough to stay finite; "shrunk" trades a little fit for steadiness: the validation
# faces of a small population (JAFFE's 65, in three women) weigh much in the objective, and
# per-class weights fitted freely chase single faces of them.
PENALTIES = {"logloss": 1e-3, "shrunk": 0.1}
METHODS = ("average", "precision", *PENALTIES)
# The combination every other choice (views, members, the objectives' table) is judged with.
SELECTION_METHOD = "shrunk"


def fit_weights(method: str, probs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """(members, 7) weights from member probabilities (n, members, 7), labels and per-face weights.

    ``method`` is one of ``METHODS``. ``sample_weight`` lets every population count the same,
    whatever its size: LFW's 1,900 neutral and happy validation faces would otherwise outvote the
    rest and favour the members that say "neutral". Each class's weights sum to 1 over the members.
    """
    members = probs.shape[1]
    if method == "average":
        return np.full((members, len(LABELS)), 1.0 / members)
    if method == "precision":
        predicted = probs.argmax(2)
        weights = np.zeros((members, len(LABELS)))
        for m in range(members):
            for c in range(len(LABELS)):
                chosen = predicted[:, m] == c
                share = sample_weight[chosen].sum() / sample_weight.mean()
                hits = sample_weight[chosen & (y == c)].sum() / sample_weight.mean()
                # Laplace smoothing keeps a member that never predicts c from a zero weight.
                weights[m, c] = (hits + 1) / (share + 2)
        return weights / weights.sum(0, keepdims=True)
    if method in PENALTIES:
        penalty = PENALTIES[method]
        target = torch.from_numpy(y)
        p = torch.from_numpy(probs).double()
        sw = torch.from_numpy(sample_weight / sample_weight.sum()).double()
        # Log-weights: all zero is the plain average, which the penalty pulls towards.
        raw = torch.zeros(members, len(LABELS), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([raw], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            w = torch.softmax(raw, 0)
            mixed = (p * w).sum(1)
            mixed = mixed / mixed.sum(1, keepdim=True)
            nll = -torch.log(mixed[torch.arange(len(y)), target].clamp_min(1e-9))
            centred = raw - raw.mean(0, keepdim=True)
            loss = (sw * nll).sum() + penalty * (centred**2).mean()
            loss.backward()
            return loss

        optimizer.step(closure)
        return torch.softmax(raw, 0).detach().numpy()
    raise ValueError(method)


def combine(weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(n, 7): the members' probabilities (n, members, 7) weighted by ``weights`` (members, 7), normalised."""
    mixed = (probs * weights).sum(1)
    return mixed / mixed.sum(1, keepdims=True)
