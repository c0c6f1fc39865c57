"""MIR (MIntRec / MIntRec2.0): accuracy, weighted F1, weighted precision (the reference's numbers) plus macro F1
(MIntRec's official metric) and macro precision/recall (evaluation-and-data.md §1.7, paper-and-peers.md §3.2).

Clean: predictions are the parser's candidate labels (case, punctuation, -ise/-ize and extra words tolerated);
an unparsable answer is a miss (it counts against its true class, and is not itself a label in the macro
average). Parity: the raw answer string (stripped) is compared exactly and case-sensitively with the GT label,
and every distinct answer string becomes a label (sklearn's default label set). Values x100.
"""

from __future__ import annotations

from collections.abc import Sequence

from emox_jax.eval.classification import classification_scores
from emox_jax.eval.modes import check_mode

PARITY_QUIRKS = {
    "exact_case_sensitive_intent": "the raw answer must equal the capitalised GT label exactly: 'inform', "
                                   "'Inform.' or 'The intent is Inform' are wrong (clean: normalised parse)",
}
UNPARSABLE_LABEL = "<unparsable>"


def mir_scores(gt: Sequence[str], pred: Sequence[str | None], *, mode: str = "clean") -> dict:
    """gt[i]: intent label; pred[i]: parsed label (clean) / raw answer (parity); None = unparsable.

    Returns {"accuracy", "weighted_f1", "weighted_precision", "macro_f1", "macro_precision", "macro_recall",
    "n_scored"}.
    """
    check_mode(mode)
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} GT labels but {len(pred)} predictions")
    if mode == "parity":
        y_pred = [(p or "").strip() for p in pred]
        labels = None
    else:
        y_pred = [UNPARSABLE_LABEL if p is None else p for p in pred]
        labels = sorted(set(gt) | {p for p in pred if p is not None})
    s = classification_scores(list(gt), y_pred, labels=labels)
    keys = ("accuracy", "weighted_f1", "weighted_precision", "macro_f1", "macro_precision", "macro_recall")
    return {k: 100 * s[k] for k in keys} | {"n_scored": len(gt)}
