"""Label-classification scores (accuracy, per-class P/R/F1, weighted and macro averages) in numpy.

Semantics follow scikit-learn's `precision_recall_fscore_support` with `zero_division=0` (sklearn is not a
dependency): per label l, tp = #(t=l, p=l), fp = #(t!=l, p=l), fn = #(t=l, p!=l); a 0/0 ratio is 0;
"weighted" averages per-label values with weights = true support; "macro" is their plain mean. By default the
labels are the sorted union of true and predicted labels (sklearn's default); pass `labels` to restrict which
labels are averaged while predictions of other labels still count as errors.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_scores(y_true: Sequence[Hashable], y_pred: Sequence[Hashable],
                          labels: Sequence[Hashable] | None = None) -> dict:
    """Scores in [0, 1] for aligned label sequences of length N (N = 0 gives all zeros).

    Returns dict with accuracy, {weighted,macro}_{precision,recall,f1}, labels (list), and per-label arrays
    precision/recall/f1/support (lists aligned with labels).
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=str)
    labels = list(labels)
    t = np.array([str(x) for x in y_true], dtype=object)
    p = np.array([str(x) for x in y_pred], dtype=object)
    keys = [str(x) for x in labels]
    tp = np.array([np.sum((t == k) & (p == k)) for k in keys], dtype=np.float64)
    pred_n = np.array([np.sum(p == k) for k in keys], dtype=np.float64)
    support = np.array([np.sum(t == k) for k in keys], dtype=np.float64)
    precision = _ratio(tp, pred_n)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    n = len(t)
    total = support.sum()

    def weighted(v):
        return float((v * support).sum() / total) if total > 0 else 0.0

    def macro(v):
        return float(v.mean()) if len(v) else 0.0

    return {
        "accuracy": float(np.mean(t == p)) if n else 0.0,
        "weighted_precision": weighted(precision), "weighted_recall": weighted(recall), "weighted_f1": weighted(f1),
        "macro_precision": macro(precision), "macro_recall": macro(recall), "macro_f1": macro(f1),
        "labels": labels, "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": support.astype(int).tolist(),
    }
