"""MSA (CMU-MOSI/MOSEI, CH-SIMS/v2): binary weighted F1 ("WAF") and accuracy (evaluation-and-data.md §1.4).

Samples whose GT valence is exactly 0 are removed. y = gt > 0; ŷ = pred > 0, so a neutral prediction (0)
counts as "not positive". Weighted F1 averages the two classes' F1 weighted by true support. Values x100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from emox_jax.eval.classification import classification_scores
from emox_jax.eval.modes import check_mode

PARITY_QUIRKS = {
    "unparsable_as_neutral": "an answer the sentiment step cannot read becomes 0 (neutral) and so counts as a "
                             "correct 'not positive' on negative samples (clean: an unparsable answer is always "
                             "a miss)",
}


def msa_scores(gt: Sequence[float], pred: Sequence[float | None], *, mode: str = "clean") -> dict:
    """gt[i]: signed GT valence; pred[i]: predicted signed score, or None when unparsable.

    Returns {"weighted_f1", "accuracy", "n_scored", "n_gt_zero_skipped", "n_unparsable_scored"}.
    """
    check_mode(mode)
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} GT scores but {len(pred)} predictions")
    y_true, y_pred, skipped, unparsable = [], [], 0, 0
    for g, p in zip(gt, pred):
        g = float(g)
        if math.isnan(g):
            raise ValueError("MSA ground truth contains NaN")
        if g == 0:
            skipped += 1
            continue
        t = g > 0
        if p is None:
            unparsable += 1
            pos = False if mode == "parity" else (not t)  # clean: the opposite class, i.e. always wrong
        else:
            pos = p > 0
        y_true.append(t)
        y_pred.append(pos)
    s = classification_scores(y_true, y_pred, labels=[False, True])
    return {"weighted_f1": 100 * s["weighted_f1"], "accuracy": 100 * s["accuracy"], "n_scored": len(y_true),
            "n_gt_zero_skipped": skipped, "n_unparsable_scored": unparsable}
